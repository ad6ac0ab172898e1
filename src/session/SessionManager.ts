/**
 * Sessions whose progress outlives the process: `open` restores a session's
 * EventTracker from its stored cursor and wires the tracker's async callback to the
 * PersistenceWorker (the seed card's `create_event_tracker`), so every new id moves
 * the durable cursor forward. A restarted process resumes from the stored
 * `Last-Event-ID`. Handing `session.tracker` to `SseClient.stream` commits each
 * chunk as it is received; to commit only what was handled, give the client
 * `EventTracker.copy(session.tracker)` and record handled chunks into the session.
 */
import { type Clock, Config, Context, Data, Deferred, Duration, Effect, Exit, Fiber, FiberId, Layer, Option, type Scope } from "effect"
import type { ConfigError } from "effect/ConfigError"
import {
  type Cursor,
  type CursorCommit,
  CursorStore,
  type CursorStoreError,
  type Lease,
  type SessionBusy,
  SessionLost
} from "../store/CursorStore.js"
import * as EventTracker from "../client/EventTracker.js"
import { countRule, durationRule, isCount, isPositiveDuration, positiveDuration, positiveInt } from "../internal/settings.js"
import { type PersistenceClosedError, PersistenceWorker } from "./PersistenceWorker.js"
import * as SessionOwnership from "./SessionOwnership.js"
import * as leaseKeeper from "./internal/leaseKeeper.js"
import type { SseEvent } from "../wire/SseEvent.js"

// --- Settings ---

/** The manager's own settings, and those of session ownership (lease, renewal, owner name). */
export interface Settings extends SessionOwnership.Settings {
  /** Most sessions open at once. */
  readonly maxSessions: number
  /** A session without new events for this long (and not held) is flushed and closed. */
  readonly idleTtl: Duration.Duration
  /**
   * Size of each session's de-duplication window. It is stored with every cursor
   * write, hence its own variable and a smaller default than SseClient's SSE_MAX_TRACKED.
   */
  readonly maxTracked: number
}

export const defaults: Settings = {
  ...SessionOwnership.defaults,
  maxSessions: 10_000,
  idleTtl: Duration.minutes(30),
  maxTracked: 100
}

/** The manager's settings from the environment, each with its default. */
export const config: Config.Config<Settings> = Config.all({
  ownership: SessionOwnership.config,
  maxSessions: positiveInt("SSE_MAX_SESSIONS", defaults.maxSessions, "Most sessions open at once"),
  idleTtl: positiveDuration(
    "SSE_IDLE_TTL",
    defaults.idleTtl,
    "A session without new events for this long is flushed and closed"
  ),
  maxTracked: positiveInt(
    "SSE_SESSION_MAX_TRACKED",
    defaults.maxTracked,
    "Ids in each session's de-duplication window, stored with every cursor"
  )
}).pipe(Config.map(({ ownership, ...manager }) => ({ ...ownership, ...manager })))

/** A setting given to `make` or `layer` that the manager cannot run with. */
export class SessionSettingsError extends Data.TaggedError("SessionSettingsError")<{
  readonly setting: keyof Settings
  readonly value: unknown
  readonly reason: string
}> {}

/** The same rules as `config`: a zero TTL would make the idle sweeper spin, a zero count refuses everything. */
const validate = (settings: Settings): Effect.Effect<Settings, SessionSettingsError> => {
  const count = (setting: "maxSessions" | "maxTracked") => {
    const value = settings[setting]
    return isCount(value) ? undefined : new SessionSettingsError({ setting, value, reason: countRule })
  }
  const ttl = isPositiveDuration(settings.idleTtl)
    ? undefined
    : new SessionSettingsError({ setting: "idleTtl", value: settings.idleTtl, reason: durationRule })
  const broken = SessionOwnership.invalid(settings)
  const ownership = broken === undefined
    ? undefined
    : new SessionSettingsError({ ...broken, value: settings[broken.setting] })
  const error = count("maxSessions") ?? count("maxTracked") ?? ttl ?? ownership
  return error === undefined ? Effect.succeed(settings) : Effect.fail(error)
}

// --- Service ---

/** `open` was asked for one session more than `maxSessions`. */
export class SessionLimitError extends Data.TaggedError("SessionLimitError")<{
  readonly sessionId: string
  readonly maxSessions: number
}> {}

export interface Session {
  readonly sessionId: string
  /** Restored from the stored cursor; every new id it records is persisted. */
  readonly tracker: EventTracker.EventTracker<PersistenceClosedError | SessionLost>
  /** The session's counter of new ids: the stored cursor's `seq` plus the new ids since. */
  readonly seq: Effect.Effect<number>
  /** The lease epoch while held (the fencing token on its cursor writes); none while only open. */
  readonly epoch: Effect.Effect<Option.Option<number>>
  /**
   * Fails with `SessionLost` once this process has lost the session (its lease was
   * taken after expiring, or a write was fenced); never succeeds. A held stream
   * should end with it: `Stream.interruptWhen(session.lost)`.
   */
  readonly lost: Effect.Effect<never, SessionLost>
}

export interface HoldOptions {
  /** Wait (polling every `pollInterval`) while another owner holds the session, instead of failing with `SessionBusy`. */
  readonly wait?: boolean | undefined
}

export class SessionManager extends Context.Tag("effect-sse-resume/SessionManager")<SessionManager, {
  /** The open session, or one restored from its stored cursor (a fresh one if none). */
  readonly open: (sessionId: string) => Effect.Effect<Session, SessionLimitError | CursorStoreError>
  /**
   * `open`, and takes ownership: the session's lease in the store, exclusive across
   * every manager sharing the store, renewed until the scope closes; then the
   * cursor is written and the lease released. Restored from the newest stored
   * cursor, taken after the lease. Not evicted as idle while held. Another owner
   * makes it fail at once with `SessionBusy`, or wait with `{ wait: true }`.
   */
  readonly hold: (
    sessionId: string,
    options?: HoldOptions
  ) => Effect.Effect<Session, SessionLimitError | SessionBusy | SessionLost | CursorStoreError, Scope.Scope>
  /** The session if it is open. */
  readonly get: (sessionId: string) => Effect.Effect<Option.Option<Session>>
  /**
   * Writes the session's cursor now, forgets the session and releases its lease; a
   * no-op if it is not open. `SessionLost` if its cursor write was fenced.
   */
  readonly close: (sessionId: string) => Effect.Effect<void, CursorStoreError | SessionLost>
  /** How many sessions are open. */
  readonly size: Effect.Effect<number>
  /**
   * For consumers that commit the cursor with their own writes (`ExactlyOnce`): works
   * out what `events` add to the session (the events new to its tracker, and the
   * cursor after them), runs `commit` with that, and only once it succeeds moves
   * the session's tracker and `seq` to that cursor, with no PersistenceWorker write.
   * A failed `commit` leaves the session as it was. `SessionLost` once the session is lost.
   */
  readonly commitChunk: <E, R>(
    session: Session,
    events: Iterable<SseEvent>,
    commit: (chunk: ChunkCommit) => Effect.Effect<void, E, R>
  ) => Effect.Effect<void, E | SessionLost | CursorStoreError, R>
}>() {}

/** What a chunk adds to a session, for `commitChunk`'s caller to commit. */
export interface ChunkCommit extends CursorCommit {
  /** The chunk's events new to the session, in order, events without an id included. */
  readonly events: ReadonlyArray<SseEvent>
}

// --- Machinery ---

/**
 * A session's progress beside its tracker: what the next cursor write says. Kept
 * small: an idle session costs its tracker plus these few fields.
 */
class SessionState {
  /** Scopes holding the session open; a held session is never evicted. */
  holds = 0
  /** The session's lease while held. */
  lease: Lease | undefined = undefined
  /** Set once the lease is lost; the session is forgotten and every new event fails with it. */
  lost: SessionLost | undefined = undefined
  // The next two are made when first needed: a Deferred costs ~700 bytes and a
  // semaphore ~550 (its bound members), while most of the 10,000s of open sessions
  // are never held nor awaited (an idle session must stay under 2 KB).
  /** Completed by `lose`; made by the first wait on `session.lost`. */
  lostSignal: Deferred.Deferred<never, SessionLost> | undefined = undefined
  /** One ownership change at a time: holds in this process share one lease. Made by the first hold. */
  owning: Effect.Semaphore | undefined = undefined
  /**
   * A `commitChunk` ended without saying whether it committed (interrupted in its
   * COMMIT, a connection lost after it): the next one reads the stored cursor first.
   */
  uncertain = false
  constructor(
    public seq: number,
    /** The `seq` already in the store; nothing to flush while `seq` equals it. */
    public storedSeq: number,
    public lastEventId: string | undefined,
    public lastActive: number
  ) {}
}

/**
 * The caller's `Session`: its Effects are made on each read by prototype getters,
 * not stored, since three stored Effects and their closures cost ~450 bytes per
 * idle session.
 */
class SessionView implements Session {
  constructor(
    readonly sessionId: string,
    readonly tracker: EventTracker.EventTracker<PersistenceClosedError | SessionLost>,
    private readonly state: SessionState
  ) {}

  get seq(): Effect.Effect<number> {
    return Effect.sync(() => this.state.seq)
  }
  get epoch(): Effect.Effect<Option.Option<number>> {
    return Effect.sync(() => Option.fromNullable(this.state.lease?.epoch))
  }
  get lost(): Effect.Effect<never, SessionLost> {
    return Effect.suspend(() => {
      const { state } = this
      if (state.lost !== undefined) return Effect.fail(state.lost)
      return Deferred.await(state.lostSignal ??= Deferred.unsafeMake<never, SessionLost>(FiberId.none))
    })
  }
}

interface OpenSession {
  readonly session: Session
  readonly state: SessionState
}

/**
 * The window stored with cursor `upTo`: cut right after it, since an id recorded
 * after the cursor would be skipped as a duplicate once a restarted process
 * resumes from that cursor.
 */
const windowUpTo = (recentIds: ReadonlyArray<string>, upTo: string): ReadonlyArray<string> => {
  const end = recentIds.lastIndexOf(upTo)
  return end < 0 ? [] : end === recentIds.length - 1 ? recentIds : recentIds.slice(0, end + 1)
}

/** setTimeout's limit: Effect never fires a sleep longer than this. */
const longestTimerMillis = 2 ** 31 - 1

/** The manager's state and its rules in one place; `make` exposes its methods as the service. */
class Manager {
  readonly sessions = new Map<string, OpenSession>()
  /** Loads in progress, so two opens of one id share one load and one tracker. */
  readonly opening = new Map<string, Effect.Effect<Session, SessionLimitError | CursorStoreError>>()

  constructor(
    readonly settings: Settings,
    readonly store: CursorStore["Type"],
    readonly worker: PersistenceWorker["Type"],
    readonly clock: Clock.Clock,
    /** The manager's own scope: loads and the sweeper stop when it closes. */
    readonly scope: Scope.Scope,
    readonly keeper: leaseKeeper.Keeper
  ) {}

  // --- Opening: one shared load per session id, restored from its stored cursor ---

  open(sessionId: string): Effect.Effect<Session, SessionLimitError | CursorStoreError> {
    return Effect.suspend(() => {
      const open = this.sessions.get(sessionId)
      if (open !== undefined) {
        open.state.lastActive = this.clock.unsafeCurrentTimeMillis()
        return Effect.succeed(open.session)
      }
      const inProgress = this.opening.get(sessionId)
      if (inProgress !== undefined) return inProgress
      if (this.sessions.size + this.opening.size >= this.settings.maxSessions) {
        return Effect.fail(new SessionLimitError({ sessionId, maxSessions: this.settings.maxSessions }))
      }
      return this.startLoad(sessionId)
    })
  }

  /**
   * The load runs in its own fiber in the manager's scope: one opener giving up
   * (interrupted) does not interrupt the others waiting on it, and closing the
   * manager stops it.
   */
  startLoad(sessionId: string): Effect.Effect<Session, CursorStoreError> {
    const loading = Effect.ensuring(this.load(sessionId), Effect.sync(() => this.opening.delete(sessionId)))
    return Effect.flatMap(Effect.forkIn(loading, this.scope), (fiber) => {
      const shared = Fiber.join(fiber)
      this.opening.set(sessionId, shared)
      return shared
    })
  }

  load(sessionId: string): Effect.Effect<Session, CursorStoreError> {
    return Effect.flatMap(this.store.load(sessionId), (cursor) =>
      Effect.map(this.restore(sessionId, cursor), (open) => {
        this.sessions.set(sessionId, open)
        return open.session
      }))
  }

  /** A session as its stored cursor left it: its state first, then the tracker whose callback moves it. */
  restore(sessionId: string, cursor: Option.Option<Cursor>): Effect.Effect<OpenSession> {
    const stored = Option.getOrUndefined(cursor)
    const seq = stored?.seq ?? 0
    const state = new SessionState(seq, seq, stored?.lastEventId, this.clock.unsafeCurrentTimeMillis())
    return Effect.gen(this, function*() {
      const tracker: EventTracker.EventTracker<PersistenceClosedError | SessionLost> = yield* EventTracker.make({
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

  // --- Recording: every new id moves the durable cursor ---

  persistNew(
    sessionId: string,
    state: SessionState,
    tracker: EventTracker.EventTracker<PersistenceClosedError | SessionLost>,
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
    options: HoldOptions = {}
  ): Effect.Effect<Session, SessionLimitError | SessionBusy | SessionLost | CursorStoreError, Scope.Scope> {
    return Effect.suspend(() => {
      const wasOpen = this.sessions.has(sessionId)
      return Effect.flatMap(this.open(sessionId), (session) => {
        const open = this.sessions.get(sessionId)
        // Closed between its open and now: open it again.
        if (open?.session !== session) return this.hold(sessionId, options)
        const owned = Effect.acquireRelease(
          Effect.interruptible(this.own(sessionId, open, options.wait === true)),
          () => this.unhold(sessionId, open)
        )
        // A session this hold opened only to find it busy is not kept open.
        const dropIfUnused = Effect.suspend(() =>
          !wasOpen && open.state.holds === 0 && open.state.lease === undefined
            ? Effect.sync(() => this.forget(sessionId, open))
            : Effect.void
        )
        return Effect.as(Effect.tapError(owned, () => dropIfUnused), session)
      })
    })
  }

  /**
   * Counts a hold; the first takes the lease (waiting if asked) and then catches up
   * with the store, whose cursor may have moved since the session was loaded: the
   * previous owner's last write lands before it releases the lease.
   */
  own(
    sessionId: string,
    open: OpenSession,
    wait: boolean
  ): Effect.Effect<void, SessionBusy | SessionLost | CursorStoreError> {
    const { state } = open
    state.owning ??= Effect.unsafeMakeSemaphore(1)
    return state.owning.withPermits(1)(Effect.suspend((): Effect.Effect<
      void,
      SessionBusy | SessionLost | CursorStoreError
    > => {
      if (state.lost !== undefined) return Effect.fail(state.lost)
      if (state.lease !== undefined) return Effect.sync(() => void state.holds++)
      const taken = this.keeper.acquire(sessionId, wait, (lease, startedAt) => {
        state.lease = lease
        state.holds++
        this.keeper.keep(lease, startedAt, (lost) => this.lose(sessionId, state, lost))
      })
      return Effect.zipRight(taken, this.catchUp(sessionId, open)).pipe(
        Effect.onError(() => (state.holds > 0 ? this.unhold(sessionId, open) : Effect.void))
      )
    }))
  }

  /** Moves the session to the stored cursor if the store is ahead of it. */
  catchUp(sessionId: string, { session, state }: OpenSession): Effect.Effect<void, CursorStoreError> {
    return Effect.flatMap(this.store.load(sessionId), (cursor) => {
      if (Option.isNone(cursor) || cursor.value.seq <= state.seq) return Effect.void
      const stored = cursor.value
      state.seq = stored.seq
      state.storedSeq = stored.seq
      state.lastEventId = stored.lastEventId
      return session.tracker.restore({ lastEventId: Option.some(stored.lastEventId), recentIds: stored.recentIds ?? [] })
    })
  }

  /** The last hold of an owned session closes it: its cursor written, its lease released. */
  unhold(sessionId: string, open: OpenSession): Effect.Effect<void> {
    return Effect.suspend(() => {
      open.state.holds--
      open.state.lastActive = this.clock.unsafeCurrentTimeMillis()
      if (open.state.holds > 0 || open.state.lease === undefined) return Effect.void
      return this.close(sessionId).pipe(
        Effect.catchAll((error) =>
          Effect.zipRight(
            this.abandon(open.state),
            Effect.logWarning("SessionManager: closing a released session failed; its lease expires by itself", error)
              .pipe(Effect.annotateLogs({ sessionId }))
          )
        )
      )
    })
  }

  /** Ends ownership at once: the lease is no longer ours, and the session is forgotten. */
  lose(sessionId: string, state: SessionState, lost: SessionLost): void {
    // A notice about an older lease (a late write of a previous hold) changes nothing.
    if (state.lost !== undefined || state.lease?.epoch !== lost.epoch) return
    this.keeper.forget(state.lease)
    state.lease = undefined
    state.lost = lost
    if (state.lostSignal !== undefined) Deferred.unsafeDone(state.lostSignal, Exit.fail(lost))
    if (this.sessions.get(sessionId)?.state === state) this.sessions.delete(sessionId)
  }

  /** Releases the lease now (after the caller has written the session's cursor). */
  /**
   * Stops renewing a lease whose release failed: it then expires by itself within
   * `leaseTtl` and another process can take the session. Renewing it on would keep
   * the session from everyone until idle eviction.
   */
  abandon(state: SessionState | undefined): Effect.Effect<void> {
    return Effect.sync(() => {
      if (state?.lease === undefined) return
      this.keeper.forget(state.lease)
      state.lease = undefined
    })
  }

  disown(state: SessionState): Effect.Effect<void, CursorStoreError> {
    return Effect.suspend(() => {
      const lease = state.lease
      if (lease === undefined) return Effect.void
      state.lease = undefined
      return this.keeper.release(lease)
    })
  }

  get(sessionId: string): Effect.Effect<Option.Option<Session>> {
    return Effect.sync(() => {
      const open = this.sessions.get(sessionId)
      if (open === undefined) return Option.none()
      open.state.lastActive = this.clock.unsafeCurrentTimeMillis()
      return Option.some(open.session)
    })
  }

  // --- Committing: the cursor written by the caller's transaction, not the worker ---

  commitChunk<E, R>(
    session: Session,
    events: Iterable<SseEvent>,
    commit: (chunk: ChunkCommit) => Effect.Effect<void, E, R>
  ): Effect.Effect<void, E | SessionLost | CursorStoreError, R> {
    return Effect.suspend((): Effect.Effect<void, E | SessionLost | CursorStoreError, R> => {
      // Bracket access: `state` is private to the session's callers, not to its manager.
      const state = (session as SessionView)["state"]
      if (state.lost !== undefined) return Effect.fail(state.lost)
      // After a commit of unknown outcome, judge against what the store holds, or the
      // committed events would be judged new again (and every later compare-and-set refused).
      if (state.uncertain) {
        return this.catchUp(session.sessionId, { session, state }).pipe(
          Effect.tap(() => {
            state.uncertain = false
          }),
          Effect.zipRight(this.commitChunk(session, events, commit))
        )
      }
      let fresh = 0
      let lastNewId: string | undefined
      // A scratch tracker at the session's window judges the chunk: the session's own moves only after the commit.
      const judging = EventTracker.make({
        maxTracked: this.settings.maxTracked,
        onNewEvent: (id) => {
          fresh++
          lastNewId = id
        }
      }).pipe(Effect.orDie, Effect.tap((scratch) => scratch.restore(session.tracker.unsafeSnapshot())))
      return Effect.flatMap(judging, (scratch) =>
        Effect.flatMap(scratch.recordAll(events, { keepWithoutId: true }), (kept) => {
          const previousSeq = state.seq
          const epoch = state.lease?.epoch
          const cursor: Cursor | undefined = lastNewId === undefined ? undefined : {
            sessionId: session.sessionId,
            lastEventId: lastNewId,
            seq: previousSeq + fresh,
            recentIds: windowUpTo(scratch.unsafeSnapshot().recentIds, lastNewId),
            updatedAt: this.clock.unsafeCurrentTimeMillis(),
            epoch
          }
          return commit({ sessionId: session.sessionId, epoch, previousSeq, cursor, events: kept }).pipe(
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
              if (state.seq !== previousSeq) return Effect.void
              state.lastActive = this.clock.unsafeCurrentTimeMillis()
              if (cursor !== undefined) {
                state.seq = state.storedSeq = cursor.seq
                state.lastEventId = cursor.lastEventId
              }
              return session.tracker.restore(scratch.unsafeSnapshot())
            }))
          )
        }))
    })
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
      const recentIds = windowUpTo(session.tracker.unsafeSnapshot().recentIds, lastEventId)
      const cursor = {
        sessionId: session.sessionId,
        lastEventId,
        seq,
        recentIds,
        updatedAt: this.clock.unsafeCurrentTimeMillis(),
        epoch: state.lease?.epoch
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

  /** The public close: flush, then forget the session (unless it was replaced meanwhile). */
  close(sessionId: string): Effect.Effect<void, CursorStoreError | SessionLost> {
    return Effect.suspend(() => {
      const open = this.sessions.get(sessionId)
      if (open === undefined) return Effect.void
      return this.flush(open).pipe(
        Effect.tap(() => this.forget(sessionId, open)),
        Effect.zipRight(this.disown(open.state))
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
              this.abandon(this.sessions.get(sessionId)?.state),
              Effect.logWarning("SessionManager: closing an owned session failed; its lease expires by itself", error)
                .pipe(Effect.annotateLogs({ sessionId }))
            )
          )
        ), { discard: true })
    })
  }

  /**
   * Flushes a session idle since before `cutoff` and forgets it, if it is still idle
   * then: a session held or used while the flush ran stays open. A failed flush
   * keeps it for the next sweep (the worker also still holds its cursor).
   */
  evict(sessionId: string, open: OpenSession, cutoff: number): Effect.Effect<void> {
    const isIdle = (state: SessionState) => state.holds === 0 && state.lastActive <= cutoff
    return this.flush(open).pipe(
      Effect.zipRight(Effect.suspend(() => {
        if (!isIdle(open.state)) return Effect.void
        this.forget(sessionId, open)
        return this.disown(open.state)
      })),
      Effect.catchAll((error) =>
        Effect.logWarning("SessionManager: flush before eviction failed; session kept", error).pipe(
          Effect.annotateLogs({ sessionId })
        )
      )
    )
  }

  forget(sessionId: string, open: OpenSession): void {
    if (this.sessions.get(sessionId) === open) this.sessions.delete(sessionId)
  }

  evictIdle(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const cutoff = this.clock.unsafeCurrentTimeMillis() - Duration.toMillis(this.settings.idleTtl)
      const idle: Array<[string, OpenSession]> = []
      for (const entry of this.sessions) {
        if (entry[1].state.holds === 0 && entry[1].state.lastActive <= cutoff) idle.push(entry)
      }
      return Effect.forEach(idle, ([sessionId, open]) => this.evict(sessionId, open, cutoff), { discard: true })
    })
  }

  /**
   * Sweeping at a quarter of the TTL evicts a session at most 1.25 × idleTtl after
   * its last event. Capped at the longest timer, since a longer sleep never fires.
   */
  sweepForever(): Effect.Effect<never> {
    const period = Math.min(Duration.toMillis(this.settings.idleTtl) / 4, longestTimerMillis)
    return Effect.forever(Effect.zipRight(Effect.sleep(period), this.evictIdle()))
  }
}

/** Starts the manager in the current scope (with its idle sweeper); closing the scope stops loads in progress. */
export const make = (
  options: Partial<Settings> = {}
): Effect.Effect<
  SessionManager["Type"],
  SessionSettingsError,
  PersistenceWorker | CursorStore | Scope.Scope
> =>
  Effect.gen(function*() {
    const settings = yield* validate({ ...defaults, ...options })
    const store = yield* CursorStore
    const clock = yield* Effect.clock
    const manager = new Manager(
      settings,
      store,
      yield* PersistenceWorker,
      clock,
      yield* Effect.scope,
      yield* leaseKeeper.make(settings, store, clock)
    )
    // Added before the fibers are forked, so it runs after they stop. Bounded: the
    // leases expire by themselves anyway.
    yield* Effect.addFinalizer(() =>
      Effect.interruptible(manager.closeOwned()).pipe(Effect.timeoutOption(settings.leaseTtl))
    )
    yield* Effect.forkScoped(manager.sweepForever())
    yield* Effect.forkScoped(manager.keeper.renewForever())
    return SessionManager.of({
      open: (sessionId) => manager.open(sessionId),
      hold: (sessionId, options) => manager.hold(sessionId, options),
      get: (sessionId) => manager.get(sessionId),
      close: (sessionId) => manager.close(sessionId),
      size: Effect.sync(() => manager.sessions.size),
      commitChunk: (session, events, commit) => manager.commitChunk(session, events, commit)
    })
  })

/** The manager with the given settings (defaults for the rest). */
export const layer = (
  options: Partial<Settings> = {}
): Layer.Layer<SessionManager, SessionSettingsError, PersistenceWorker | CursorStore> =>
  Layer.scoped(SessionManager, make(options))

/** The manager with its settings read from the environment (`config`). */
export const layerConfig: Layer.Layer<
  SessionManager,
  ConfigError | SessionSettingsError,
  PersistenceWorker | CursorStore
> = Layer.unwrapEffect(Effect.map(config, layer))
