/**
 * Sessions whose progress outlives the process: `open` restores a session's
 * EventTracker from its stored cursor and wires the tracker's async callback to the
 * PersistenceWorker, so every new id moves the durable cursor forward. A restarted
 * process resumes from the stored `Last-Event-ID`. Handing `session.tracker` to
 * `SseClient.stream` commits each chunk as it is received; to commit only what was
 * handled, give the client `EventTracker.copy(session.tracker)` and record handled
 * chunks into the session.
 *
 * A session is `open` (in memory), `hold`-ed by a scope (its lease taken, so one
 * process at a time consumes it), `close`d (cursor written, removed, lease
 * released), evicted (closed by the idle sweeper after `evictAfter` unused) or lost
 * (another owner took it: `SessionLost`).
 */
import type * as Cause from "effect/Cause"
import { Config, Context, Duration, Effect, Layer, type Option, type Scope } from "effect"
import type { ConfigError } from "effect/ConfigError"
import { type CursorCommit, CursorStore, type CursorStoreError, type SessionBusy, type SessionLost } from "../store/CursorStore.js"
import type * as EventTracker from "../client/EventTracker.js"
import { count, duration, positiveInt, renamedDuration, resolve } from "../internal/settings.js"
import { type PersistenceClosedError, PersistenceWorker } from "./PersistenceWorker.js"
import * as internal from "./internal/manager.js"
import * as leaseKeeper from "./internal/leaseKeeper.js"
import * as SessionOwnership from "./SessionOwnership.js"
import type { SseEvent } from "../wire/SseEvent.js"
import { SettingsError } from "../Settings.js"

// --- Settings ---

/** The manager's own settings, and those of session ownership (lease, renewal, owner name). */
export interface Settings extends SessionOwnership.Settings {
  /** Most sessions open at once. */
  readonly maxSessions: number
  /** A session unused for this long (and not held) is flushed and closed: evicted. */
  readonly evictAfter: Duration.Duration
  /**
   * Size of each session's de-duplication window. It is stored with every cursor
   * write, hence its own variable and a smaller default than SseClient's SSE_MAX_TRACKED.
   */
  readonly maxTracked: number
}

/** What `make` and `layer` take: any settings (the rest default), and the former names. */
export interface Options extends Partial<Settings> {
  /** @deprecated Use `evictAfter`. */
  readonly idleTtl?: Duration.Duration | undefined
}

export const defaults: Settings = {
  ...SessionOwnership.defaults,
  maxSessions: 10_000,
  evictAfter: Duration.minutes(30),
  maxTracked: 100
}

/** The manager's settings from the environment, each with its default. */
export const config: Config.Config<Settings> = Config.all({
  ownership: SessionOwnership.config,
  maxSessions: positiveInt("SSE_MAX_SESSIONS", defaults.maxSessions, "Most sessions open at once"),
  evictAfter: renamedDuration(
    "SSE_SESSION_EVICT_AFTER",
    "SSE_IDLE_TTL",
    defaults.evictAfter,
    "A session unused for this long is flushed and closed"
  ),
  maxTracked: positiveInt(
    "SSE_SESSION_MAX_TRACKED",
    defaults.maxTracked,
    "Ids in each session's de-duplication window, stored with every cursor"
  )
}).pipe(Config.map(({ ownership, ...manager }) => ({ ...ownership, ...manager })))

/**
 * A setting given to `make` or `layer` that the manager cannot run with.
 * @deprecated Every module's settings now fail with `Settings.SettingsError` (tag "SettingsError").
 */
export const SessionSettingsError = SettingsError
/** @deprecated Use `Settings.SettingsError`. */
export type SessionSettingsError = SettingsError

/**
 * The rules beside the types: a zero `evictAfter` would make the idle sweeper
 * spin, a zero count refuses everything; ownership brings its own.
 */
const resolveSettings = ({ idleTtl, ...options }: Options): Effect.Effect<Settings, SettingsError> =>
  resolve("SessionManager", defaults, { ...options, evictAfter: options.evictAfter ?? idleTtl }, {
    maxSessions: count,
    evictAfter: duration,
    maxTracked: count
  }, SessionOwnership.invalid)

// --- Service ---

/** `open` was asked for one session more than `maxSessions`. */
export interface SessionLimitError extends Cause.YieldableError {
  readonly _tag: "SessionLimitError"
  readonly sessionId: string
  readonly maxSessions: number
}
export const SessionLimitError: new(args: {
  readonly sessionId: string
  readonly maxSessions: number
}) => SessionLimitError = internal.SessionLimitError

/**
 * The session's stored cursor belongs to another stream than the one `open` or
 * `hold` was asked for: resuming would send one stream's `Last-Event-ID` to
 * another. Nothing was opened nor written.
 */
export interface SessionStreamMismatch extends Cause.YieldableError {
  readonly _tag: "SessionStreamMismatch"
  readonly sessionId: string
  /** The stream of the stored cursor (or of the session already open). */
  readonly stored: string
  /** The stream asked for. */
  readonly requested: string
}
export const SessionStreamMismatch: new(args: {
  readonly sessionId: string
  readonly stored: string
  readonly requested: string
}) => SessionStreamMismatch = internal.SessionStreamMismatch

/** Why a session could not be opened. */
export type OpenError = SessionLimitError | SessionStreamMismatch | CursorStoreError

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
  /** The stream the session resumes (`"<METHOD> <url>"`), if it was named by `open` or its stored cursor. */
  readonly stream: string | undefined
}

export interface OpenOptions {
  /**
   * The stream this session resumes, `"<METHOD> <url>"`. A stored cursor of another
   * stream fails the open with `SessionStreamMismatch`; one without a stream (written
   * before streams were recorded) is adopted. Every cursor the session writes carries it.
   */
  readonly stream?: string | undefined
}

/** Options naming no stream: no stored cursor is then refused, so no `SessionStreamMismatch`. */
export interface NoStream {
  readonly stream?: undefined
}

export interface HoldOptions extends OpenOptions {
  /** Wait (polling every `pollInterval`) while another owner holds the session, instead of failing with `SessionBusy`. */
  readonly wait?: boolean | undefined
}

export class SessionManager extends Context.Tag("effect-sse-resume/SessionManager")<SessionManager, {
  /** The open session, or one restored from its stored cursor (an empty one if none). */
  readonly open: {
    (sessionId: string, options: NoStream): Effect.Effect<Session, SessionLimitError | CursorStoreError>
    (sessionId: string, options: OpenOptions): Effect.Effect<Session, OpenError>
    // Last, so `Effect.forEach(ids, manager.open)` still infers this one.
    (sessionId: string): Effect.Effect<Session, SessionLimitError | CursorStoreError>
  }
  /**
   * `open`, and takes ownership: the session's lease in the store, exclusive across
   * every manager sharing the store, renewed until the scope closes; then the
   * cursor is written and the lease released. Restored from the newest stored
   * cursor, taken after the lease. Not evicted as idle while held. Another owner
   * makes it fail at once with `SessionBusy`, or wait with `{ wait: true }`.
   */
  readonly hold: {
    (
      sessionId: string,
      options: HoldOptions & NoStream
    ): Effect.Effect<Session, SessionLimitError | CursorStoreError | SessionBusy | SessionLost, Scope.Scope>
    (sessionId: string, options: HoldOptions): Effect.Effect<Session, OpenError | SessionBusy | SessionLost, Scope.Scope>
    (sessionId: string): Effect.Effect<Session, SessionLimitError | CursorStoreError | SessionBusy | SessionLost, Scope.Scope>
  }
  /** The session if it is open. */
  readonly get: (sessionId: string) => Effect.Effect<Option.Option<Session>>
  /**
   * Writes the session's cursor now, removes the session and releases its lease; a
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
   * A failed `commit` leaves the session as it was. `SessionLost` once the session is
   * lost.
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

/** Starts the manager in the current scope (with its idle sweeper); closing the scope stops loads in progress. */
export const make = (
  options: Options = {}
): Effect.Effect<SessionManager["Type"], SettingsError, PersistenceWorker | CursorStore | Scope.Scope> =>
  Effect.gen(function*() {
    const settings = yield* resolveSettings(options)
    const store = yield* CursorStore
    const worker = yield* PersistenceWorker
    return yield* internal.make(settings, store, worker, (clock) => leaseKeeper.make(settings, store, clock))
  })

/** The manager with the given settings (defaults for the rest). */
export const layer = (
  options: Options = {}
): Layer.Layer<SessionManager, SettingsError, PersistenceWorker | CursorStore> =>
  Layer.scoped(SessionManager, make(options))

/** The manager with its settings read from the environment (`config`). */
export const layerConfig: Layer.Layer<
  SessionManager,
  ConfigError | SettingsError,
  PersistenceWorker | CursorStore
> = Layer.unwrapEffect(Effect.map(config, layer))
