/**
 * Sessions whose progress outlives the process: `open` restores a session's
 * EventTracker from its stored cursor and wires the tracker's async callback to the
 * PersistenceWorker (the seed card's `create_event_tracker`), so every new event
 * moves the durable cursor forward. A restarted process resumes from the stored
 * `Last-Event-ID`. Handing `session.tracker` to `SseClient.stream` commits each
 * chunk as it is received; to commit only what was handled, give the client
 * `EventTracker.copy(session.tracker)` and record handled chunks into the session.
 */
import { Config as C, Context, Data, Duration, Effect, Fiber, Layer, Option, type Scope } from "effect"
import type { ConfigError } from "effect/ConfigError"
import { CursorStore, type CursorStoreError } from "./CursorStore.js"
import * as EventTracker from "./EventTracker.js"
import { type PersistenceClosedError, PersistenceWorker } from "./PersistenceWorker.js"
import { positiveInt } from "./Settings.js"

/** `open` was asked for one session more than `maxSessions`. */
export class SessionLimitError extends Data.TaggedError("SessionLimitError")<{
  readonly sessionId: string
  readonly maxSessions: number
}> {}

export interface Session {
  readonly sessionId: string
  /** Restored from the stored cursor; every new event it records is persisted. */
  readonly tracker: EventTracker.EventTracker<PersistenceClosedError>
  /** The session's event counter: the stored cursor's `seq` plus the new events since. */
  readonly seq: Effect.Effect<number>
}

export interface Config {
  /** Most sessions open at once. */
  readonly maxSessions: number
  /** A session without new events for this long is flushed and closed. */
  readonly idleTtl: Duration.Duration
  /**
   * Size of each session's de-duplication window. It is stored with every cursor
   * write, hence its own variable and a smaller default than SseClient's SSE_MAX_TRACKED.
   */
  readonly maxTracked: number
}

export const defaults: Config = {
  maxSessions: 10_000,
  idleTtl: Duration.minutes(30),
  maxTracked: 100
}

/** The manager's options from the environment, each with its default. */
export const config: C.Config<Config> = C.all({
  maxSessions: positiveInt("SSE_MAX_SESSIONS", defaults.maxSessions),
  idleTtl: C.withDefault(C.duration("SSE_IDLE_TTL"), defaults.idleTtl),
  maxTracked: positiveInt("SSE_SESSION_MAX_TRACKED", defaults.maxTracked)
})

export class SessionManager extends Context.Tag("effect-sse-resume/SessionManager")<SessionManager, {
  /** The open session, or one restored from its stored cursor (a fresh one if none). */
  readonly open: (sessionId: string) => Effect.Effect<Session, SessionLimitError | CursorStoreError>
  /**
   * `open`, and the session is not evicted as idle until the scope closes: for a
   * stream that may go quiet for longer than `idleTtl` while it still runs.
   */
  readonly hold: (sessionId: string) => Effect.Effect<Session, SessionLimitError | CursorStoreError, Scope.Scope>
  /** The session if it is open. */
  readonly get: (sessionId: string) => Effect.Effect<Option.Option<Session>>
  /** Writes the session's cursor now and forgets the session; a no-op if it is not open. */
  readonly close: (sessionId: string) => Effect.Effect<void, CursorStoreError>
  /** How many sessions are open. */
  readonly size: Effect.Effect<number>
}>() {}

/**
 * Per-session state kept apart from the tracker, and small: an idle session costs
 * its tracker plus these few fields.
 */
class State {
  lastActive: number
  lastEventId: string | undefined
  /** Scopes holding the session open; a held session is never evicted. */
  holds = 0
  constructor(
    readonly session: Session,
    public seq: number,
    /** The `seq` already in the store; nothing to flush while `seq` equals it. */
    public storedSeq: number,
    now: number
  ) {
    this.lastActive = now
  }
}

/** Starts the manager in the current scope (with its idle sweeper). */
export const make = (
  options: Partial<Config> = {}
): Effect.Effect<SessionManager["Type"], never, PersistenceWorker | CursorStore | Scope.Scope> =>
  Effect.gen(function*() {
    const cfg: Config = { ...defaults, ...options }
    const store = yield* CursorStore
    const worker = yield* PersistenceWorker
    const clock = yield* Effect.clock
    const idleMillis = Duration.toMillis(cfg.idleTtl)
    const sessions = new Map<string, State>()
    // Opens in progress, so two opens of one id share one load and one tracker.
    const opening = new Map<string, Effect.Effect<Session, SessionLimitError | CursorStoreError>>()

    const recentIdsOf = (tracker: EventTracker.EventTracker<PersistenceClosedError>) => (upTo: string) => {
      const { recentIds } = Effect.runSync(tracker.snapshot)
      // Cut at the cursor: ids recorded after it must not be skipped after a restart.
      const end = recentIds.lastIndexOf(upTo)
      return end < 0 ? [] : end === recentIds.length - 1 ? recentIds : recentIds.slice(0, end + 1)
    }

    const load = (sessionId: string) =>
      Effect.gen(function*() {
        const cursor = yield* store.load(sessionId)
        let state: State | undefined = undefined
        const tracker = yield* EventTracker.make<PersistenceClosedError>({
          maxTracked: cfg.maxTracked,
          onNewEventAsync: (eventId) => {
            const s = state!
            const now = clock.unsafeCurrentTimeMillis()
            s.seq++
            s.lastEventId = eventId
            s.lastActive = now
            return worker.persist({ sessionId, eventId, seq: s.seq, attempt: 0, recordedAt: now, recentIds })
          }
        }).pipe(Effect.orDie)
        const recentIds = recentIdsOf(tracker)
        const seq = Option.match(cursor, { onNone: () => 0, onSome: (c) => c.seq })
        if (Option.isSome(cursor)) {
          yield* tracker.restore({
            lastEventId: Option.some(cursor.value.lastEventId),
            recentIds: cursor.value.recentIds ?? []
          })
        }
        const session: Session = { sessionId, tracker, seq: Effect.sync(() => state!.seq) }
        state = new State(session, seq, seq, clock.unsafeCurrentTimeMillis())
        state.lastEventId = Option.getOrUndefined(Option.map(cursor, (c) => c.lastEventId))
        sessions.set(sessionId, state)
        return session
      })

    const open = (sessionId: string): Effect.Effect<Session, SessionLimitError | CursorStoreError> =>
      Effect.suspend(() => {
        const open = sessions.get(sessionId)
        if (open !== undefined) {
          open.lastActive = clock.unsafeCurrentTimeMillis()
          return Effect.succeed(open.session)
        }
        const inProgress = opening.get(sessionId)
        if (inProgress !== undefined) return inProgress
        if (sessions.size + opening.size >= cfg.maxSessions) {
          return Effect.fail(new SessionLimitError({ sessionId, maxSessions: cfg.maxSessions }))
        }
        // The load runs in its own fiber, so one opener giving up (interrupted) does
        // not interrupt the others waiting on the same load.
        return Effect.flatMap(
          Effect.forkDaemon(Effect.ensuring(load(sessionId), Effect.sync(() => opening.delete(sessionId)))),
          (fiber) => {
            const shared = Fiber.join(fiber)
            opening.set(sessionId, shared)
            return shared
          }
        )
      })

    /**
     * Writes the session's newest cursor straight to the store. The store's seq
     * guard makes this safe beside the worker's own (older or equal) write.
     */
    const flush = (state: State): Effect.Effect<void, CursorStoreError> =>
      Effect.suspend(() => {
        const { seq, lastEventId } = state
        if (seq === state.storedSeq || lastEventId === undefined) return Effect.void
        const recentIds = recentIdsOf(state.session.tracker)(lastEventId)
        return store.saveAll([{
          sessionId: state.session.sessionId,
          lastEventId,
          seq,
          recentIds,
          updatedAt: clock.unsafeCurrentTimeMillis()
        }]).pipe(Effect.tap(() => {
          if (seq > state.storedSeq) state.storedSeq = seq
        }))
      })

    const close = (
      sessionId: string,
      stillEvictable: (state: State) => boolean = () => true
    ): Effect.Effect<void, CursorStoreError> =>
      Effect.suspend(() => {
        const state = sessions.get(sessionId)
        if (state === undefined) return Effect.void
        return Effect.tap(flush(state), () => {
          if (sessions.get(sessionId) === state && stillEvictable(state)) sessions.delete(sessionId)
        })
      })

    // A session whose flush fails stays open: the next sweep tries again (the worker
    // also still holds its cursor), so eviction never costs a cursor.
    const evictIdle = Effect.suspend(() => {
      const cutoff = clock.unsafeCurrentTimeMillis() - idleMillis
      const idle: Array<string> = []
      for (const [sessionId, state] of sessions) {
        if (state.holds === 0 && state.lastActive <= cutoff) idle.push(sessionId)
      }
      // Checked again after the flush: a session held or used while it ran stays open.
      const stillIdle = (state: State) => state.holds === 0 && state.lastActive <= cutoff
      return Effect.forEach(idle, (sessionId) =>
        close(sessionId, stillIdle).pipe(
          Effect.catchAll((error) =>
            Effect.logWarning("SessionManager: flush before eviction failed; session kept", error).pipe(
              Effect.annotateLogs({ sessionId })
            )
          )
        ), { discard: true })
    })

    // Sweeping at a quarter of the TTL evicts a session at most 1.25 × idleTtl after its last event.
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(Duration.toMillis(cfg.idleTtl) / 4), evictIdle)))

    // The open stays outside acquireRelease, whose acquire is uninterruptible: a stop
    // must not wait for a stalled load. Taking the hold itself is one synchronous step.
    const hold = (sessionId: string) =>
      Effect.flatMap(open(sessionId), (session) =>
        Effect.as(
          Effect.acquireRelease(
            Effect.sync(() => {
              const state = sessions.get(sessionId)
              if (state?.session !== session) return undefined
              state.holds++
              return state
            }),
            (state) =>
              Effect.sync(() => {
                if (state === undefined) return
                state.holds--
                state.lastActive = clock.unsafeCurrentTimeMillis()
              })
          ),
          session
        ))

    return SessionManager.of({
      open,
      hold,
      get: (sessionId) =>
        Effect.sync(() => {
          const state = sessions.get(sessionId)
          if (state === undefined) return Option.none()
          state.lastActive = clock.unsafeCurrentTimeMillis()
          return Option.some(state.session)
        }),
      close: (sessionId) => close(sessionId),
      size: Effect.sync(() => sessions.size)
    })
  })

/** The manager with the given options (defaults for the rest). */
export const layer = (
  options: Partial<Config> = {}
): Layer.Layer<SessionManager, never, PersistenceWorker | CursorStore> => Layer.scoped(SessionManager, make(options))

/** The manager with its options read from the environment (`config`). */
export const layerConfig: Layer.Layer<SessionManager, ConfigError, PersistenceWorker | CursorStore> = Layer
  .unwrapEffect(Effect.map(config, layer))
