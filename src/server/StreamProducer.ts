/**
 * Runs a source of events (an Effect `Stream`: an upstream LLM response read with
 * `SseClient`, a job's progress) into an `EventLog` stream, for `SseServer` to serve.
 *
 * The producer runs in a fiber of this service, not of any request: a reader
 * leaving, or the request that started it ending, does not stop it. It appends
 * with its `epoch`, so a newer producer of the same stream (a retry, another
 * instance) fences it: its next append writes nothing and it stops. When the
 * source ends the stream is completed; when it fails, failed with the reason.
 *
 * Appends are batched without waiting: while one append is in flight the source
 * goes on into a buffer of `maxBatch` events, and the next append takes all of
 * them (one transaction, one fan-out).
 *
 * `cancel(stream)` works from any instance, through the log: it writes the end
 * `Failed { reason: "cancelled" }`, which refuses the running producer's next
 * append (`StreamEnded`); the producer also looks at the stream's end every
 * `cancelPollInterval`, so a source that is silent is stopped too. Cancel is not
 * disconnect: readers leaving never cancel.
 *
 * A producer whose process dies leaves its stream open: readers wait (kept alive
 * by the server's comments) until a new producer with a higher epoch goes on, or
 * someone cancels the stream.
 */
import { type Cause, Config, Context, Duration, Effect, Either, Layer, Metric, Option, type Stream } from "effect"
import { count, finiteDuration, positiveDuration, positiveInt, resolve } from "../internal/settings.js"
import { SettingsError } from "../Settings.js"
import type { EventInput, EventLog, EventLogError, InvalidRequest, Retention, StreamEnd } from "./EventLog.js"
import * as internal from "./internal/producerLoop.js"

// --- Settings ---

export interface Settings {
  /** The most events one append writes; also how many the source may run ahead of the log. */
  readonly maxBatch: number
  /** How often a running producer looks for an end written by someone else (`cancel`). */
  readonly cancelPollInterval: Duration.Duration
  /** How long a producer being interrupted (its service shutting down) may take to fail its stream. */
  readonly shutdownTimeout: Duration.Duration
}

export const defaults: Settings = {
  maxBatch: 256,
  cancelPollInterval: Duration.seconds(1),
  shutdownTimeout: Duration.seconds(5)
}

/** The settings from the environment (SSE_PRODUCER_*), each defaulting to `defaults`. */
export const config: Config.Config<Settings> = Config.all({
  maxBatch: positiveInt("SSE_PRODUCER_MAX_BATCH", defaults.maxBatch, "The most events one append writes"),
  cancelPollInterval: positiveDuration(
    "SSE_PRODUCER_CANCEL_POLL_INTERVAL",
    defaults.cancelPollInterval,
    "How often a producer looks for a cancel written by another instance"
  ),
  shutdownTimeout: positiveDuration(
    "SSE_PRODUCER_SHUTDOWN_TIMEOUT",
    defaults.shutdownTimeout,
    "How long an interrupted producer may take to fail its stream"
  )
})

/**
 * A setting the producer cannot run with.
 * @deprecated Every module's settings now fail with `Settings.SettingsError` (tag "SettingsError").
 */
export const ProducerSettingsError = SettingsError
/** @deprecated Use `Settings.SettingsError`. */
export type ProducerSettingsError = SettingsError

// --- Service ---

/** The reason `cancel` writes. */
export const cancelledReason: string = internal.cancelledReason

/** The reason a producer interrupted by its service's shutdown fails its stream with. */
export const interruptedReason: string = internal.interruptedReason

export interface Options<E> extends Partial<Settings> {
  /**
   * The fencing token: higher than every earlier producer's of this stream. A new
   * stream per request can use 1; a producer that takes over a stream takes a lease
   * (`CursorStore.acquire` gives a rising epoch).
   */
  readonly epoch: number
  /** The stream's retention, if this producer creates it. */
  readonly retention?: Retention
  /** The one-line reason kept when the source fails; default the error's message. */
  readonly reason?: (cause: Cause.Cause<E>) => string
}

/** How a producer stopped. */
export type Outcome =
  /** The source ended; the producer completed the stream. */
  | { readonly _tag: "Completed"; readonly events: number }
  /** The source failed, or gave an event the log refuses; the producer failed the stream with `reason`. */
  | { readonly _tag: "Failed"; readonly reason: string; readonly events: number }
  /** Someone else ended the stream (`cancel`); the source was stopped. */
  | { readonly _tag: "Ended"; readonly end: StreamEnd; readonly events: number }
  /** A producer with a newer epoch took the stream over; this one wrote nothing more. */
  | { readonly _tag: "Fenced"; readonly current: number; readonly events: number }
  /** The stream was deleted while the producer ran. */
  | { readonly _tag: "Deleted"; readonly events: number }
  /** `interrupt`, or the service's shutdown: the stream was failed with `interruptedReason`. */
  | { readonly _tag: "Interrupted" }

export interface Running {
  readonly stream: string
  readonly epoch: number
  /**
   * How the producer stopped; fails if the log failed (the stream is then left open).
   */
  readonly await: Effect.Effect<Outcome, EventLogError | InvalidRequest>
  /** Stops this producer here (its stream is failed with `interruptedReason`); others are not told. */
  readonly interrupt: Effect.Effect<void>
}

export class StreamProducer extends Context.Tag("effect-sse-resume/StreamProducer")<StreamProducer, {
  /**
   * Creates `stream` if needed, then starts `source` into it in a fiber of this
   * service and returns: a reader sent once it returns finds the stream. Stopped by
   * the source's end, `cancel` from anywhere, a newer epoch, or the service's shutdown.
   */
  readonly start: <E, R>(
    stream: string,
    source: Stream.Stream<EventInput, E, R>,
    options: Options<E>
  ) => Effect.Effect<Running, SettingsError | EventLogError | InvalidRequest, R>
  /** Ends `stream` as `Failed { reason: "cancelled" }`, so its producer (on any instance) stops; a no-op on an ended stream. */
  readonly cancel: (stream: string) => Effect.Effect<void, EventLogError>
}>() {}

/**
 * A producer's settings over `defaults`, by the same rules as `config`; its epoch
 * must be a whole number ≥ 1 too.
 */
const resolveSettings = (options: Partial<Settings> & { readonly epoch: number }): Effect.Effect<Settings, SettingsError> =>
  resolve("StreamProducer", { epoch: options.epoch, ...defaults }, {
    maxBatch: options.maxBatch,
    cancelPollInterval: options.cancelPollInterval,
    shutdownTimeout: options.shutdownTimeout
  }, { epoch: count, maxBatch: count, cancelPollInterval: finiteDuration, shutdownTimeout: finiteDuration })

/**
 * The first setting out of its rule, if any.
 * @deprecated `start` checks its settings and fails with `Settings.SettingsError`.
 */
export const validate = (settings: Settings, epoch: number): SettingsError | undefined =>
  Option.getOrUndefined(Either.getLeft(Effect.runSync(Effect.either(resolveSettings({ ...settings, epoch })))))

/** The service; producers still running when its scope closes are interrupted. */
export const layer: Layer.Layer<StreamProducer, never, EventLog> = Layer.scoped(StreamProducer, internal.make(resolveSettings))

/** `cancel` without the service: what an instance that runs no producer needs. */
export const cancel: (stream: string) => Effect.Effect<void, EventLogError, EventLog> = internal.cancel

// --- Metrics ---

/** Producers running now in this process. */
export const running: Metric.Metric.Gauge<number> = internal.running

/** Events appended by producers. */
export const eventsAppended: Metric.Metric.Counter<number> = internal.eventsAppended

/** Producers stopped, by outcome (`outcome` label: an `Outcome`'s tag, or LogFailed). */
export const stopped: Metric.Metric.Counter<number> = internal.stopped

/** Events per append: how well appends are batched. */
export const batchSize: Metric.Metric.Histogram<number> = internal.batchSize
