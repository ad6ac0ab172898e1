/**
 * Turns a stream of per-event cursor updates into few store writes without ever
 * losing a session's newest cursor. Producers wait on a bounded queue (that is the
 * backpressure); a producer that waits too long parks its cursor in a latest-only
 * slot per session instead of dropping it. One worker fiber
 * coalesces everything to the newest cursor per session (`PendingTable`) and writes
 * it with one `saveAll`, retrying failed writes with backoff while newer cursors
 * replace older.
 */
import type * as Cause from "effect/Cause"
import { Config, Context, Duration, Effect, Layer, type Scope } from "effect"
import type { ConfigError } from "effect/ConfigError"
import { CursorStore, type SessionLost } from "../store/CursorStore.js"
import { count, duration, positiveDuration, positiveInt, renamedInt, resolve } from "../internal/settings.js"
import * as internal from "./internal/worker.js"
import type { SettingsError } from "../Settings.js"

/** One new event of a session, on its way to the store. */
export interface PersistenceRequest {
  readonly sessionId: string
  readonly eventId: string
  /** The session's event counter at this event; the newest cursor has the highest. */
  readonly seq: number
  /** Epoch ms when the event was recorded: the start of its staleness. */
  readonly recordedAt: number
  /**
   * Reads the session's de-duplication window at write time, cut at `upTo`, so a
   * stored window never runs ahead of its stored cursor.
   */
  readonly recentIds?: ((upTo: string) => ReadonlyArray<string>) | undefined
  /** The session's lease epoch when owned: the store refuses the write once another owner has it. */
  readonly epoch?: number | undefined
  /** Told when the store refused the write for a stale epoch; such a write is final, never retried. */
  readonly onFenced?: ((lost: SessionLost) => void) | undefined
  /** The stream the session resumes, written with its cursor. */
  readonly stream?: string | undefined
}

/** The worker is closed: its scope is closing or closed, so the cursor cannot be taken. */
export interface PersistenceClosedError extends Cause.YieldableError {
  readonly _tag: "PersistenceClosedError"
  readonly sessionId: string
  readonly seq: number
}
export const PersistenceClosedError: new(args: {
  readonly sessionId: string
  readonly seq: number
}) => PersistenceClosedError = internal.PersistenceClosedError

export interface Settings {
  /** Capacity of the bounded queue between producers and the worker. */
  readonly maxPending: number
  /** Most cursors (coalesced, one per session) written by one `saveAll`. */
  readonly batchSize: number
  /** Longest a recorded cursor waits before the worker writes it. */
  readonly flushInterval: Duration.Duration
  /** How long a producer waits on a full queue before parking its cursor. */
  readonly offerTimeout: Duration.Duration
  /** Failed writes of one cursor before it is counted as failed (and still kept, and retried). */
  readonly maxSaveAttempts: number
  /** First retry delay of a cursor; doubles with each of its failed attempts (with jitter), up to 100×. */
  readonly retryBase: Duration.Duration
  /** How long closing the layer may spend writing what is left. */
  readonly shutdownTimeout: Duration.Duration
}

export const defaults: Settings = {
  maxPending: 1_000,
  batchSize: 1_000,
  flushInterval: Duration.millis(100),
  offerTimeout: Duration.millis(100),
  maxSaveAttempts: 5,
  retryBase: Duration.millis(100),
  shutdownTimeout: Duration.seconds(5)
}

/** The worker's settings from the environment, each with its default. */
export const config: Config.Config<Settings> = Config.all({
  maxPending: positiveInt("SSE_MAX_PENDING", defaults.maxPending, "Capacity of the queue between sessions and the writer"),
  batchSize: positiveInt("SSE_BATCH_SIZE", defaults.batchSize, "Most session cursors written by one store transaction"),
  flushInterval: positiveDuration(
    "SSE_FLUSH_INTERVAL",
    defaults.flushInterval,
    "Longest a recorded cursor waits before it is written"
  ),
  offerTimeout: positiveDuration(
    "SSE_PERSIST_TIMEOUT",
    defaults.offerTimeout,
    "How long a session waits on a full queue before parking its cursor"
  ),
  maxSaveAttempts: renamedInt(
    "SSE_PERSIST_MAX_SAVE_ATTEMPTS",
    "SSE_PERSIST_MAX_ATTEMPTS",
    defaults.maxSaveAttempts,
    "Failed writes of a cursor before it counts as failed (it is still kept and retried)"
  ),
  retryBase: positiveDuration(
    "SSE_PERSIST_RETRY_BASE",
    defaults.retryBase,
    "First retry delay of a failed write; doubles per attempt, up to 100 times"
  ),
  shutdownTimeout: positiveDuration(
    "SSE_SHUTDOWN_TIMEOUT",
    defaults.shutdownTimeout,
    "How long closing may spend writing the cursors that are left"
  )
})

/** What `make` and `layer` take: any settings (the rest default), and the former names. */
export interface Options extends Partial<Settings> {
  /** @deprecated Use `maxSaveAttempts`. */
  readonly maxAttempts?: number | undefined
}

/** Every count ≥ 1 and every duration longer than zero: a zero `flushInterval` or `retryBase` would spin. */
const resolveSettings = ({ maxAttempts, ...options }: Options): Effect.Effect<Settings, SettingsError> =>
  resolve("PersistenceWorker", defaults, { ...options, maxSaveAttempts: options.maxSaveAttempts ?? maxAttempts }, {
    maxPending: count,
    batchSize: count,
    flushInterval: duration,
    offerTimeout: duration,
    maxSaveAttempts: count,
    retryBase: duration,
    shutdownTimeout: duration
  })

export interface Stats {
  /** Requests in the bounded queue, counting producers blocked on offering one. */
  readonly queued: number
  /** Sessions with a parked cursor (their producer timed out on a full queue). */
  readonly parked: number
  /** Coalesced cursors taken by the worker and not yet durable. */
  readonly pending: number
  /** Offers that waited past `offerTimeout` and were parked, since this worker started. */
  readonly timedOut: number
}

export class PersistenceWorker extends Context.Tag("effect-sse-resume/PersistenceWorker")<PersistenceWorker, {
  /**
   * Hands a cursor to the worker, waiting up to `offerTimeout` while the queue is
   * full, then parking it; fails only once the worker is closing.
   */
  readonly persist: (request: PersistenceRequest) => Effect.Effect<void, PersistenceClosedError>
  /** Where cursors are right now, for health checks and tests. */
  readonly stats: Effect.Effect<Stats>
}>() {}

/** saveAll calls that succeeded. */
export const batches = internal.batches
/** Requests folded into a newer or older cursor of the same session instead of written. */
export const coalesced = internal.coalesced
/** Cursors whose write failed and is scheduled again. */
export const retries = internal.retries
/** Cursors that failed `maxSaveAttempts` writes in a row (still kept), or were left unwritten at shutdown. */
export const failures = internal.failures
/** Cursors refused by the store because their session has a newer owner (dropped, not retried). */
export const fenced = internal.fenced
/** Requests waiting in the persistence queue. */
export const queueDepth = internal.queueDepth
/** Milliseconds one saveAll took. */
export const batchLatency = internal.batchLatency
/** Milliseconds from the oldest event a write covers being recorded to the write being durable. */
export const cursorStaleness = internal.cursorStaleness

/** Starts the worker in the current scope; closing the scope drains it. */
export const make = (
  options: Options = {}
): Effect.Effect<PersistenceWorker["Type"], SettingsError, CursorStore | Scope.Scope> =>
  Effect.flatMap(resolveSettings(options), (settings) =>
    Effect.flatMap(CursorStore, (store) => internal.make(settings, store)))

/** The worker with the given settings (defaults for the rest). */
export const layer = (options: Options = {}): Layer.Layer<PersistenceWorker, SettingsError, CursorStore> =>
  Layer.scoped(PersistenceWorker, make(options))

/** The worker with its settings read from the environment (`config`). */
export const layerConfig: Layer.Layer<PersistenceWorker, ConfigError | SettingsError, CursorStore> = Layer.unwrapEffect(
  Effect.map(config, layer)
)
