/**
 * The SessionManager's machinery: its state and its rules in one class, `Manager`,
 * whose methods `make` exposes as the service.
 *
 * The words, one per idea:
 * - open: the session is in memory, restored from its stored cursor (`open`).
 * - hold: a scope holds the session; the first hold takes its lease (`hold`,
 *   `takeLease`), the last one to end (`release`) closes it.
 * - close: flush the cursor, remove the session from memory, release its lease (`close`).
 * - evict: the idle sweeper's close, only of a session unused since the cutoff (`evict`).
 * - lose: another owner has the session (`SessionLost`); it is removed at once, nothing flushed (`lose`).
 * - A lease ends either released in the store (`releaseLease`) or, when that
 *   failed, dropped: no longer renewed, so it expires by itself (`dropLease`).
 */
import { type Clock, Data, Deferred, Duration, Effect, Exit, Fiber, Option, type Scope } from "effect"
import { type Cursor, type CursorStore, type CursorStoreError, type SessionBusy, SessionLost } from "../../store/CursorStore.js"
import * as EventTracker from "../../client/EventTracker.js"
import type { PersistenceClosedError, PersistenceWorker } from "../PersistenceWorker.js"
import type * as SessionManager from "../SessionManager.js"
import type { Keeper } from "./leaseKeeper.js"
import { maxSleepMillis } from "../../internal/timers.js"
import type { SseEvent } from "../../wire/SseEvent.js"
import { SessionState, SessionView, windowUpTo } from "./sessionState.js"

// The public module declares these errors' types and re-exports their constructors.
export class SessionLimitError extends Data.TaggedError("SessionLimitError")<{
  readonly sessionId: string
  readonly maxSessions: number
}> {}

export class SessionStreamMismatch extends Data.TaggedError("SessionStreamMismatch")<{
  readonly sessionId: string
  readonly stored: string
  readonly requested: string
}> {
  override get message() {
    return `session ${this.sessionId} resumes ${this.stored}, not ${this.requested}`
  }
}

type Tracker = EventTracker.EventTracker<PersistenceClosedError | SessionLost>
type OpenError = SessionManager.OpenError

interface OpenSession {
  readonly session: SessionManager.Session
  readonly state: SessionState
}

/** The stream the session resumes, or a mismatch if `requested` is another one. */
const checkStream = (sessionId: string, current: string | undefined, requested: string | undefined) =>
  current === undefined || requested === undefined || current === requested
    ? undefined
    : new SessionStreamMismatch({ sessionId, stored: current, requested })

class Manager {
  readonly sessions = new Map<string, OpenSession>()
  /** Loads in progress, so two opens of one id share one load and one tracker. */
  readonly opening = new Map<string, Effect.Effect<SessionManager.Session, OpenError>>()

  constructor(
    readonly settings: SessionManager.Settings,
    readonly store: CursorStore["Type"],
    readonly worker: PersistenceWorker["Type"],
    readonly clock: Clock.Clock,
    /** The manager's own scope: loads and the sweeper stop when it closes. */
    readonly scope: Scope.Scope,
    readonly keeper: Keeper
  ) {}

  // --- Opening: one shared load per session id, restored from its stored cursor ---

  open(sessionId: string, options: SessionManager.OpenOptions = {}): Effect.Effect<SessionManager.Session, OpenError> {
    return Effect.suspend(() => {
      const open = this.sessions.get(sessionId)
      if (open !== undefined) return this.reopen(sessionId, open, options.stream)
      const inProgress = this.opening.get(sessionId)
      // A load in progress was asked for no stream or another: check once it is open.
      if (inProgress !== undefined) return Effect.zipRight(inProgress, this.open(sessionId, options))
      if (this.sessions.size + this.opening.size >= this.settings.maxSessions) {
        return Effect.fail(new SessionLimitError({ sessionId, maxSessions: this.settings.maxSessions }))
      }
      return this.startLoad(sessionId, options.stream)
    })
  }

  /** An open session asked for again: the same stream, or none named on either side (then adopted). */
  reopen(sessionId: string, open: OpenSession, stream: string | undefined) {
    const mismatch = checkStream(sessionId, open.state.stream, stream)
    if (mismatch !== undefined) return Effect.fail(mismatch)
    open.state.stream ??= stream
    open.state.lastActive = this.clock.unsafeCurrentTimeMillis()
    return Effect.succeed(open.session)
  }

  /**
   * The load runs in its own fiber in the manager's scope: one opener giving up
   * (interrupted) does not interrupt the others waiting on it, and closing the
   * manager stops it.
   */
  startLoad(sessionId: string, stream: string | undefined): Effect.Effect<SessionManager.Session, OpenError> {
    const loading = Effect.ensuring(this.load(sessionId, stream), Effect.sync(() => this.opening.delete(sessionId)))
    return Effect.flatMap(Effect.forkIn(loading, this.scope), (fiber) => {
      const shared = Fiber.join(fiber)
      this.opening.set(sessionId, shared)
      return shared
    })
  }

  /** A stored cursor of another stream fails the load before anything is kept. */
  load(sessionId: string, stream: string | undefined): Effect.Effect<SessionManager.Session, OpenError> {
    return Effect.flatMap(this.store.load(sessionId), (cursor) => {
      const stored = Option.getOrUndefined(cursor)
      const mismatch = checkStream(sessionId, stored?.stream, stream)
      if (mismatch !== undefined) return Effect.fail(mismatch)
      return Effect.map(this.restore(sessionId, stored, stream), (open) => {
        this.sessions.set(sessionId, open)
        return open.session
      })
    })
  }

  /** A session as its stored cursor left it: its state first, then the tracker whose callback moves it. */
  restore(sessionId: string, stored: Cursor | undefined, stream: string | undefined): Effect.Effect<OpenSession> {
    const seq = stored?.seq ?? 0
    const now = this.clock.unsafeCurrentTimeMillis()
    const state = new SessionState(seq, seq, stored?.lastEventId, now, stored?.stream ?? stream)
    return Effect.gen(this, function*() {
      const tracker: Tracker = yield* EventTracker.make({
        maxTracked: this.settings.maxTracked,
        // Runs only once make has returned, so `tracker` is set by then.
        onNewEventAsync: (eventId: string) => this.persistNew(sessionId, state, tracker, eventId)
      }).pipe(Effect.orDie) // maxTracked was validated by `make`
      if (stored !== undefined) {
        yield* tracker.restore({ lastEventId: Option.some(stored.lastEventId), recentIds: stored.recentIds ?? [] })
      }
      return { session: new SessionView(sessionId, tracker, state), state }
    })
  }

  get(sessionId: string): Effect.Effect<Option.Option<SessionManager.Session>> {
    return Effect.sync(() => {
      const open = this.sessions.get(sessionId)
      if (open === undefined) return Option.none()
      open.state.lastActive = this.clock.unsafeCurrentTimeMillis()
      return Option.some(open.session)
    })
  }

  // --- Recording: every new id moves the durable cursor ---

  persistNew(
    sessionId: string,
    state: SessionState,
    tracker: Tracker,
    eventId: string
  ): Effect.Effect<void, PersistenceClosedError | SessionLost> {
    if (state.lost !== undefined) return Effect.fail(state.lost)
    const now = this.clock.unsafeCurrentTimeMillis()
    state.seq++
    state.lastEventId = eventId
    state.lastActive = now
    return this.worker.persist({
      sessionId,
      eventId,
      seq: state.seq,
      recordedAt: now,
      epoch: state.lease?.epoch,
      stream: state.stream,
      onFenced: (lost) => this.lose(sessionId, state, lost),
      // Read at write time, so the stored window is the newest one cut at the written cursor.
      recentIds: (upTo) => windowUpTo(tracker.unsafeSnapshot().recentIds, upTo)
    })
  }

  // --- Holding: ownership of the session, and no idle eviction ---

  /**
   * The open stays outside acquireRelease, whose acquire is uninterruptible: a stop
   * must not wait for a stalled load, nor for a busy session it waits on.
   */
  hold(
    sessionId: string,
    options: SessionManager.HoldOptions = {}
  ): Effect.Effect<SessionManager.Session, OpenError | SessionBusy | SessionLost, Scope.Scope> {
    return Effect.suspend(() => {
      const wasOpen = this.sessions.has(sessionId)
      return Effect.flatMap(this.open(sessionId, options), (session) => {
        const open = this.sessions.get(sessionId)
        // Closed between its open and now: open it again.
        if (open?.session !== session) return this.hold(sessionId, options)
        const held = Effect.acquireRelease(
          Effect.interruptible(this.takeLease(sessionId, open, options.wait === true)),
          () => this.release(sessionId, open)
        )
        // A session this hold opened only to find it busy is not kept open.
        const removeIfUnused = Effect.suspend(() =>
          !wasOpen && open.state.holds === 0 && open.state.lease === undefined
            ? Effect.sync(() => this.remove(sessionId, open))
            : Effect.void
        )
        return Effect.as(Effect.tapError(held, () => removeIfUnused), session)
      })
    })
  }

  /**
   * Counts a hold; the first takes the lease (waiting if asked) and then catches up
   * with the store, whose cursor may have moved since the session was loaded: the
   * previous owner's last write lands before it releases the lease.
   */
  takeLease(
    sessionId: string,
    open: OpenSession,
    wait: boolean
  ): Effect.Effect<void, SessionBusy | SessionLost | SessionStreamMismatch | CursorStoreError> {
    const { state } = open
    state.owning ??= Effect.unsafeMakeSemaphore(1)
    return state.owning.withPermits(1)(Effect.suspend((): Effect.Effect<
      void,
      SessionBusy | SessionLost | SessionStreamMismatch | CursorStoreError
    > => {
      if (state.lost !== undefined) return Effect.fail(state.lost)
      if (state.lease !== undefined) return Effect.sync(() => void state.holds++)
      const taken = this.keeper.acquire(sessionId, wait, (lease, startedAt) => {
        state.lease = lease
        state.holds++
        this.keeper.keep(lease, startedAt, (lost) => this.lose(sessionId, state, lost))
      })
      return Effect.zipRight(taken, this.catchUp(sessionId, open, true)).pipe(
        Effect.onError(() => (state.holds > 0 ? this.release(sessionId, open) : Effect.void))
      )
    }))
  }

  /**
   * Moves the session to the stored cursor if the store is ahead of it. When taking
   * the lease, a cursor another process wrote for another stream meanwhile is a
   * mismatch; while held, only this process writes.
   */
  catchUp<Checked extends boolean>(
    sessionId: string,
    { session, state }: OpenSession,
    checkStored: Checked
  ): Effect.Effect<void, (Checked extends true ? SessionStreamMismatch : never) | CursorStoreError> {
    return Effect.flatMap(this.store.load(sessionId), (cursor) => {
      if (Option.isNone(cursor) || cursor.value.seq <= state.seq) return Effect.void
      const stored = cursor.value
      const mismatch = checkStored ? checkStream(sessionId, stored.stream, state.stream) : undefined
      if (mismatch !== undefined) return Effect.fail(mismatch as Checked extends true ? SessionStreamMismatch : never)
      state.seq = stored.seq
      state.storedSeq = stored.seq
      state.lastEventId = stored.lastEventId
      return session.tracker.restore({ lastEventId: Option.some(stored.lastEventId), recentIds: stored.recentIds ?? [] })
    })
  }

  /** A hold ends; the last hold of an owned session closes it: its cursor written, its lease released. */
  release(sessionId: string, open: OpenSession): Effect.Effect<void> {
    return Effect.suspend(() => {
      open.state.holds--
      open.state.lastActive = this.clock.unsafeCurrentTimeMillis()
      if (open.state.holds > 0 || open.state.lease === undefined) return Effect.void
      return this.close(sessionId).pipe(
        Effect.catchAll((error) =>
          Effect.zipRight(
            this.dropLease(open.state),
            Effect.logWarning("SessionManager: closing a released session failed; its lease expires by itself", error)
              .pipe(Effect.annotateLogs({ sessionId }))
          )
        )
      )
    })
  }

  /** Ends ownership at once: the lease is no longer ours, and the session is removed. */
  lose(sessionId: string, state: SessionState, lost: SessionLost): void {
    // A notice about an older lease (a late write of a previous hold) changes nothing.
    if (state.lost !== undefined || state.lease?.epoch !== lost.epoch) return
    this.keeper.forget(state.lease)
    state.lease = undefined
    state.lost = lost
    if (state.lostSignal !== undefined) Deferred.unsafeDone(state.lostSignal, Exit.fail(lost))
    if (this.sessions.get(sessionId)?.state === state) this.sessions.delete(sessionId)
  }

  /** Releases the lease in the store (after the caller has written the session's cursor). */
  releaseLease(state: SessionState): Effect.Effect<void, CursorStoreError> {
    return Effect.suspend(() => {
      const lease = state.lease
      if (lease === undefined) return Effect.void
      state.lease = undefined
      return this.keeper.release(lease)
    })
  }

  /**
   * Stops renewing a lease whose release failed: it then expires by itself within
   * `leaseTtl` and another process can take the session. Renewing it on would keep
   * the session from everyone until idle eviction.
   */
  dropLease(state: SessionState | undefined): Effect.Effect<void> {
    return Effect.sync(() => {
      if (state?.lease === undefined) return
      this.keeper.forget(state.lease)
      state.lease = undefined
    })
  }

  // --- Committing: the cursor written by the caller's transaction, not the worker ---

  commitChunk<E, R>(
    session: SessionManager.Session,
    events: Iterable<SseEvent>,
    commit: (chunk: SessionManager.ChunkCommit) => Effect.Effect<void, E, R>
  ): Effect.Effect<void, E | SessionLost | CursorStoreError, R> {
    return Effect.suspend(() => {
      const state = SessionView.stateOf(session)
      if (state.lost !== undefined) return Effect.fail(state.lost)
      // After a commit of unknown outcome, judge against what the store holds, or the
      // committed events would be judged new again (and every later compare-and-set refused).
      if (state.uncertain) {
        return this.catchUp(session.sessionId, { session, state }, false).pipe(
          Effect.tap(() => {
            state.uncertain = false
          }),
          Effect.zipRight(this.commitChunk(session, events, commit))
        )
      }
      return Effect.flatMap(this.judge(session, state, events), (judged) => this.commitJudged(session, state, judged, commit))
    })
  }

  /**
   * What `events` add to the session, judged by a scratch tracker at the session's
   * window: the session's own tracker moves only after the commit.
   */
  judge(session: SessionManager.Session, state: SessionState, events: Iterable<SseEvent>) {
    let newIds = 0
    let lastNewId: string | undefined
    const judging = EventTracker.make({
      maxTracked: this.settings.maxTracked,
      onNewEvent: (id) => {
        newIds++
        lastNewId = id
      }
    }).pipe(Effect.orDie, Effect.tap((scratch) => scratch.restore(session.tracker.unsafeSnapshot())))
    return Effect.flatMap(judging, (scratch) =>
      Effect.map(scratch.recordAll(events, { keepWithoutId: true }), (kept) => {
        const previousSeq = state.seq
        const epoch = state.lease?.epoch
        const cursor: Cursor | undefined = lastNewId === undefined ? undefined : {
          sessionId: session.sessionId,
          lastEventId: lastNewId,
          seq: previousSeq + newIds,
          recentIds: windowUpTo(scratch.unsafeSnapshot().recentIds, lastNewId),
          updatedAt: this.clock.unsafeCurrentTimeMillis(),
          epoch,
          stream: state.stream
        }
        const chunk: SessionManager.ChunkCommit = { sessionId: session.sessionId, epoch, previousSeq, cursor, events: kept }
        return { chunk, scratch }
      }))
  }

  /** Runs the caller's commit; only once it succeeds does the session move to the chunk's cursor. */
  commitJudged<E, R>(
    session: SessionManager.Session,
    state: SessionState,
    { chunk, scratch }: { readonly chunk: SessionManager.ChunkCommit; readonly scratch: EventTracker.EventTracker },
    commit: (chunk: SessionManager.ChunkCommit) => Effect.Effect<void, E, R>
  ): Effect.Effect<void, E, R> {
    return commit(chunk).pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          if (Exit.isFailure(exit)) state.uncertain = true
        })
      ),
      Effect.tapError((error) =>
        Effect.sync(() => {
          if (error instanceof SessionLost) this.lose(session.sessionId, state, error)
        })
      ),
      Effect.zipRight(Effect.suspend(() => {
        // Only from the state the chunk was judged against: a commit that raced it has moved it.
        if (state.seq !== chunk.previousSeq) return Effect.void
        state.lastActive = this.clock.unsafeCurrentTimeMillis()
        if (chunk.cursor !== undefined) {
          state.seq = state.storedSeq = chunk.cursor.seq
          state.lastEventId = chunk.cursor.lastEventId
        }
        return session.tracker.restore(scratch.unsafeSnapshot())
      }))
    )
  }

  // --- Closing and idle eviction: both flush first, so neither costs a cursor ---

  /**
   * Writes the session's newest cursor straight to the store. The store's seq
   * guard makes this safe beside the worker's own (older or equal) write.
   */
  flush({ session, state }: OpenSession): Effect.Effect<void, CursorStoreError | SessionLost> {
    return Effect.suspend(() => {
      if (state.lost !== undefined) return Effect.fail(state.lost)
      const { lastEventId, seq } = state
      if (seq === state.storedSeq || lastEventId === undefined) return Effect.void
      const cursor: Cursor = {
        sessionId: session.sessionId,
        lastEventId,
        seq,
        recentIds: windowUpTo(session.tracker.unsafeSnapshot().recentIds, lastEventId),
        updatedAt: this.clock.unsafeCurrentTimeMillis(),
        epoch: state.lease?.epoch,
        stream: state.stream
      }
      return Effect.flatMap(this.store.saveAll([cursor]), (lost) => {
        if (lost.length > 0) {
          this.lose(session.sessionId, state, lost[0]!)
          return Effect.fail(lost[0]!)
        }
        if (seq > state.storedSeq) state.storedSeq = seq
        return Effect.void
      })
    })
  }

  /** The public close: flush, then remove the session (unless it was replaced meanwhile) and release its lease. */
  close(sessionId: string): Effect.Effect<void, CursorStoreError | SessionLost> {
    return Effect.suspend(() => {
      const open = this.sessions.get(sessionId)
      if (open === undefined) return Effect.void
      return this.flush(open).pipe(
        Effect.tap(() => this.remove(sessionId, open)),
        Effect.zipRight(this.releaseLease(open.state))
      )
    })
  }

  /** On the manager's close: every owned session written and released, so waiting owners start at once. */
  closeOwned(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const owned = Array.from(this.sessions).filter(([, open]) => open.state.lease !== undefined)
      return Effect.forEach(owned, ([sessionId]) =>
        this.close(sessionId).pipe(
          Effect.catchAll((error) =>
            Effect.zipRight(
              this.dropLease(this.sessions.get(sessionId)?.state),
              Effect.logWarning("SessionManager: closing an owned session failed; its lease expires by itself", error)
                .pipe(Effect.annotateLogs({ sessionId }))
            )
          )
        ), { discard: true })
    })
  }

  /**
   * Flushes a session idle since before `cutoff` and removes it, if it is still idle
   * then: a session held or used while the flush ran stays open. A failed flush
   * keeps it for the next sweep (the worker also still holds its cursor).
   */
  evict(sessionId: string, open: OpenSession, cutoff: number): Effect.Effect<void> {
    return this.flush(open).pipe(
      Effect.zipRight(Effect.suspend(() => {
        if (!open.state.isIdleSince(cutoff)) return Effect.void
        this.remove(sessionId, open)
        return this.releaseLease(open.state)
      })),
      Effect.catchAll((error) =>
        Effect.logWarning("SessionManager: flush before eviction failed; session kept", error).pipe(
          Effect.annotateLogs({ sessionId })
        )
      )
    )
  }

  /** Drops the session from memory, unless another open of the same id replaced it. */
  remove(sessionId: string, open: OpenSession): void {
    if (this.sessions.get(sessionId) === open) this.sessions.delete(sessionId)
  }

  evictIdle(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const cutoff = this.clock.unsafeCurrentTimeMillis() - Duration.toMillis(this.settings.evictAfter)
      const idle: Array<[string, OpenSession]> = []
      for (const entry of this.sessions) if (entry[1].state.isIdleSince(cutoff)) idle.push(entry)
      return Effect.forEach(idle, ([sessionId, open]) => this.evict(sessionId, open, cutoff), { discard: true })
    })
  }

  /**
   * Sweeping at a quarter of `evictAfter` evicts a session at most 1.25 × evictAfter
   * after its last event. Capped at the longest timer, since a longer sleep never fires.
   */
  sweepForever(): Effect.Effect<never> {
    const period = Math.min(Duration.toMillis(this.settings.evictAfter) / 4, maxSleepMillis)
    return Effect.forever(Effect.zipRight(Effect.sleep(period), this.evictIdle()))
  }
}

/** Starts the manager in the current scope (with its idle sweeper and lease renewal). */
export const make = (
  settings: SessionManager.Settings,
  store: CursorStore["Type"],
  worker: PersistenceWorker["Type"],
  keeper: (clock: Clock.Clock) => Effect.Effect<Keeper>
): Effect.Effect<SessionManager.SessionManager["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const manager = new Manager(settings, store, worker, clock, yield* Effect.scope, yield* keeper(clock))
    // Added before the fibers are forked, so it runs after they stop. Bounded: the
    // leases expire by themselves anyway.
    yield* Effect.addFinalizer(() =>
      Effect.interruptible(manager.closeOwned()).pipe(Effect.timeoutOption(settings.leaseTtl))
    )
    yield* Effect.forkScoped(manager.sweepForever())
    yield* Effect.forkScoped(manager.keeper.renewForever())
    // The overloads only narrow the error when no stream is named (then none is refused).
    return {
      open: ((sessionId: string, options?: SessionManager.OpenOptions) =>
        manager.open(sessionId, options)) as SessionManager.SessionManager["Type"]["open"],
      hold: ((sessionId: string, options?: SessionManager.HoldOptions) =>
        manager.hold(sessionId, options)) as SessionManager.SessionManager["Type"]["hold"],
      get: (sessionId) => manager.get(sessionId),
      close: (sessionId) => manager.close(sessionId),
      size: Effect.sync(() => manager.sessions.size),
      commitChunk: (session, events, commit) => manager.commitChunk(session, events, commit)
    }
  })
