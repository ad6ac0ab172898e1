/**
 * An `EventLog` stream served as Server-Sent Events over @effect/platform's
 * HttpServer: a handler any router can mount.
 *
 * A reader resumes after the id it holds — the `Last-Event-ID` header, or a
 * `lastEventId` query parameter for a client that cannot set headers (a native
 * EventSource opened again after a page reload; the header wins when both come,
 * since that EventSource's own reconnects send the header with a newer id) — gets
 * the kept events after it, then new ones live; a reader with neither gets the
 * stream from its first kept event. Every event goes out with its log id and type.
 *
 * Everything that refuses a request is decided before any byte of the body: the
 * caller's `authorize` (401/403), a Last-Event-ID that is too long or that this
 * stream never issued (400), an unknown stream (404), too many readers (503 with
 * `Retry-After`), the log failing (503), the end of a completed stream (204, the
 * status that makes an EventSource stop). Refusals are one line of text.
 *
 * A reader behind retention gets an event of type `gapEvent` first, data
 * `{"lastEventId": "<requested>", "firstAvailable": "<id>"}`, then the stream from
 * its first kept event: a gap is said, never papered over by a silent replay.
 * A failed stream sends what is left, then an event of type `errorEvent` whose data
 * is the reason, then ends; it does so at every request past the last event, so a
 * reader stops at that event (an EventSource must `close()` there).
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Config, Data, Duration, Effect, Either, type Metric, Option, type Scope } from "effect"
import { count, finiteDuration, positiveDuration, positiveInt, resolve, type Rule } from "../internal/settings.js"
import { SettingsError } from "../Settings.js"
import type { EventLog } from "./EventLog.js"
import * as internal from "./internal/serveStream.js"

// --- Settings ---

export interface Settings {
  /** Sent as `retry:` at the start of every stream: how long a client waits before reconnecting. */
  readonly retry: Duration.Duration
  /** A comment is sent this often, so proxies and load balancers keep an idle connection open. */
  readonly keepAliveInterval: Duration.Duration
  /** Readers served at once by one handler; one more gets 503 with `Retry-After`. */
  readonly maxReaders: number
  /** The longest Last-Event-ID (header or query parameter) accepted, in UTF-8 bytes; a longer one gets 400. */
  readonly maxLastEventIdBytes: number
  /** The `Retry-After` of a 503 (too many readers, the log failing). */
  readonly retryAfter: Duration.Duration
  /** The type of the event that says a reader missed events trimmed by retention. */
  readonly gapEvent: string
  /** The type of the event that carries a failed stream's reason. */
  readonly errorEvent: string
}

export const defaults: Settings = {
  retry: Duration.seconds(1),
  keepAliveInterval: Duration.seconds(15),
  maxReaders: 10_000,
  maxLastEventIdBytes: 8 * 1024,
  retryAfter: Duration.seconds(5),
  gapEvent: "gap",
  errorEvent: "error"
}

/** The settings from the environment (SSE_SERVER_*), each defaulting to `defaults`. */
export const config: Config.Config<Settings> = Config.all({
  retry: positiveDuration("SSE_SERVER_RETRY", defaults.retry, "The retry: sent to readers: their reconnection delay"),
  keepAliveInterval: positiveDuration(
    "SSE_SERVER_KEEP_ALIVE_INTERVAL",
    defaults.keepAliveInterval,
    "How often a comment is sent so proxies keep an idle stream open"
  ),
  maxReaders: positiveInt("SSE_SERVER_MAX_READERS", defaults.maxReaders, "Readers served at once; one more gets 503"),
  maxLastEventIdBytes: positiveInt(
    "SSE_SERVER_MAX_LAST_EVENT_ID_BYTES",
    defaults.maxLastEventIdBytes,
    "The longest Last-Event-ID accepted, in bytes; a longer one gets 400"
  ),
  retryAfter: positiveDuration("SSE_SERVER_RETRY_AFTER", defaults.retryAfter, "The Retry-After of a 503"),
  gapEvent: Config.nonEmptyString("SSE_SERVER_GAP_EVENT").pipe(
    Config.withDefault(defaults.gapEvent),
    Config.withDescription("Type of the event that tells a reader it missed trimmed events")
  ),
  errorEvent: Config.nonEmptyString("SSE_SERVER_ERROR_EVENT").pipe(
    Config.withDefault(defaults.errorEvent),
    Config.withDescription("Type of the event that carries a failed stream's reason")
  )
})

/**
 * A setting the handler cannot run with.
 * @deprecated Every module's settings now fail with `Settings.SettingsError` (tag "SettingsError").
 */
export const SseServerSettingsError = SettingsError
/** @deprecated Use `Settings.SettingsError`. */
export type SseServerSettingsError = SettingsError

const lineBreak = /[\r\n]/

/** Event types must fit on their `event:` line. */
const eventType: Rule<string> = (type) =>
  type === "" || lineBreak.test(type) ? "must be a non-empty event type without a line break" : undefined

/** The same rules as `config`, for settings given in code. */
const rules = {
  retry: finiteDuration,
  keepAliveInterval: finiteDuration,
  retryAfter: finiteDuration,
  maxReaders: count,
  maxLastEventIdBytes: count,
  gapEvent: eventType,
  errorEvent: eventType
} as const

/**
 * The first setting out of its rule, if any.
 * @deprecated `make` checks its settings and fails with `Settings.SettingsError`.
 */
export const validate = (settings: Settings): SettingsError | undefined =>
  Option.getOrUndefined(Either.getLeft(Effect.runSync(Effect.either(resolve("SseServer", settings, undefined, rules)))))

// --- Access ---

/** `authorize` refused the request: 401 (who are you?) or 403 (not you); `reason` is the body's one line. */
export class SseAccessDenied extends Data.TaggedError("SseAccessDenied")<{
  readonly status: 401 | 403
  readonly reason: string
}> {}

/** Cross-origin reading: the preflight allows `Last-Event-ID`, the one header an EventSource adds. */
export interface Cors {
  /** Origins allowed to read (`Origin` compared exactly), or "*" for any. */
  readonly allowOrigins: "*" | ReadonlyArray<string>
  /** Allow cookies (`new EventSource(url, { withCredentials: true })`); with it the origin is echoed, never "*". */
  readonly allowCredentials?: boolean
  /** Request headers allowed besides `Last-Event-ID` (e.g. `authorization` for a fetch-based client). */
  readonly allowHeaders?: ReadonlyArray<string>
  /** How long a browser may cache the preflight; default 10 minutes. */
  readonly maxAge?: Duration.DurationInput
}

export interface Options<R = never> extends Partial<Settings> {
  /** The log stream this request reads: a name, or an Effect reading the request (a route parameter). */
  readonly stream: string | Effect.Effect<string, never, R | HttpServerRequest.HttpServerRequest>
  /** Decides whether the request may read `stream`, before anything else about it is told. */
  readonly authorize: (
    request: HttpServerRequest.HttpServerRequest,
    stream: string
  ) => Effect.Effect<void, SseAccessDenied, R>
  /** Answer CORS preflights and allow the listed origins; none: same-origin only (no CORS headers). */
  readonly cors?: Cors
}

// --- Metrics ---

/** Readers being served now, by every handler of the process. */
export const readersOpen: Metric.Metric.Gauge<number> = internal.readersOpen

/** Events written to readers (a replayed event counts again for each reader it goes to). */
export const eventsWritten: Metric.Metric.Counter<number> = internal.eventsWritten

/** Responses by status (`status` label): 200 streams, 204 ends, refusals. */
export const responses: Metric.Metric.Counter<number> = internal.responses

// --- Handler ---

/**
 * The handler: an `HttpApp` to mount on a GET route (it answers OPTIONS itself when
 * `cors` is set, and 405 for other methods). Each call counts its own readers
 * against `maxReaders`; a reader's place is freed when its response ends, however
 * it ends. Each request runs in a span `sse.serve`; each stream body in `sse.serve.body`.
 */
export const make = <R = never>(
  options: Options<R>
): Effect.Effect<HttpApp.Default<never, R | EventLog | Scope.Scope>, SettingsError> =>
  Effect.map(
    resolve("SseServer", defaults, {
      retry: options.retry,
      keepAliveInterval: options.keepAliveInterval,
      maxReaders: options.maxReaders,
      maxLastEventIdBytes: options.maxLastEventIdBytes,
      retryAfter: options.retryAfter,
      gapEvent: options.gapEvent,
      errorEvent: options.errorEvent
    }, rules),
    (settings) => internal.make(settings, options)
  )
