/**
 * A Server-Sent Events client that reconnects, resumes from `Last-Event-ID` and
 * drops replayed events, so each new event is emitted once across disconnects.
 *
 * Resume point: the tracker's `lastEventId`, read at every connect. It only moves
 * forward — to each new event's id and to each id-only block (`id: 5` and a blank
 * line) whose id is new — so a server cut in the middle of a replay is asked for
 * the same events again, never for older ones; an empty `id:` clears it (spec),
 * and the next request sends no `Last-Event-ID`.
 *
 * One stream is a loop of connections. Each connection builds its request, waits
 * for the answer (every redirect hop within `idleTimeout`), classifies it, then
 * reads the body under an idle watchdog, recording the parsed events in the
 * tracker; when it ends, the retry budget and the server's `retry:` or
 * `Retry-After` decide whether and when the next one starts. The caller's
 * `reconnectNow` ends a connection at any point, and the wait after one.
 *
 * Requests that must not be sent twice: a stream started by a method other
 * than GET, HEAD, OPTIONS or TRACE (a POST re-runs a tool, re-bills an LLM call)
 * is never re-sent as it is. A graceful close ends it; any other end fails with
 * `SseStreamDropped` and the resume point, unless `resumeWith` says how to
 * resume it and there is a resume point to resume from.
 */
import type * as Headers from "@effect/platform/Headers"
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import type * as Stream from "effect/Stream"
import * as Config from "effect/Config"
import type * as EventTracker from "./EventTracker.js"
import * as internal from "./internal/connection.js"
import { positiveDuration, positiveInt } from "../internal/settings.js"
import type { SseEvent } from "../wire/SseEvent.js"
import type { Reconnect, ReconnectReason, SseClientError } from "./SseClientError.js"
import type { ResumeWith } from "./internal/resume.js"

export {
  type Reconnect,
  type ReconnectReason,
  type RedirectFailure,
  type SseClientError,
  SseContentEncodingError,
  SseContentTypeError,
  SseHttpError,
  SseRedirectError,
  SseResumeGap,
  SseResumeIdError,
  SseRetriesExhausted,
  SseStreamDropped
} from "./SseClientError.js"
export { backoff } from "./internal/reconnect.js"
export { isTransientStatus } from "./internal/response.js"
export { isSafeMethod, resumeByGet, type ResumeWith } from "./internal/resume.js"

/** Connection changes, for people watching: progress lines, dashboards. */
export type ConnectionStatus =
  | { readonly state: "connecting"; readonly attempt: number; readonly lastEventId: string | undefined }
  | { readonly state: "connected"; readonly attempt: number; readonly status: number }
  | {
    readonly state: "reconnecting"
    readonly attempt: number
    readonly reason: ReconnectReason
    readonly delayMillis: number
    readonly status?: number
    /** Why the attempt ended, in words: `connect ECONNREFUSED 127.0.0.1:1`, `HTTP 503`, … */
    readonly cause: string
  }

// --- Settings ---

/** What a stream can be tuned with; each has a safe default (`defaults`) and an SSE_* variable (`config`). */
export interface Settings {
  /**
   * Reconnect when no byte arrives for this long: while waiting for an answer
   * (each redirect hop on its own) and while a read of the body waits. A slow
   * consumer does not count: only a read that is outstanding does.
   */
  readonly idleTimeout: Duration.DurationInput
  /** Consecutive attempts without a new event before the stream fails with `SseRetriesExhausted`. */
  readonly maxAttempts: number
  /**
   * Attempts allowed before the first one answered with an event stream (at most
   * `maxAttempts`); undefined: `maxAttempts`. 1 fails at once when the server
   * cannot be reached at all (a wrong port or host), as a command line wants.
   */
  readonly connectAttempts: number | undefined
  /** The most bytes one event may hold (data, id and event type); past it the stream fails with `SseEventTooLarge`. */
  readonly maxEventBytes: number
  /** The window of the tracker made when none is given: how many recent ids are de-duplicated. */
  readonly maxTracked: number
  /** First delay of the default backoff. */
  readonly initialDelay: Duration.DurationInput
  /** Cap of the default backoff. */
  readonly maxDelay: Duration.DurationInput
  /** Longest wait the server can ask for with `retry:` or `Retry-After` (a server asking for a day is not obeyed). */
  readonly maxRetryAfter: Duration.DurationInput
  /**
   * Redirects (301, 302, 303, 307, 308) followed per connection, the same on
   * every HttpClient layer; one more fails with `SseRedirectError`, as does a loop.
   */
  readonly maxRedirects: number
  /**
   * Follow a redirect to another origin (scheme, host or port differ from the
   * request's). Off (the default), it fails with `SseRedirectError` (reason
   * "crossOrigin") before anything is sent there, so no credential reaches it,
   * whoever added it. On, the hop is sent without `Authorization`,
   * `Proxy-Authorization` and `Cookie`, also those the HttpClient adds
   * (`HttpClient.mapRequest`); through a `FetchHttpClient.Fetch` of the caller's,
   * which may add any header, it still fails.
   */
  readonly crossOriginRedirects: boolean
  /**
   * Send the current trace as `traceparent`/`b3` headers. Off, a third-party
   * server sees no internal trace ids, and a browser makes no CORS preflight for them.
   */
  readonly tracePropagation: boolean
}

/** The default of every setting: a 60 s idle timeout, 10 attempts, 500 ms to 30 s backoff, 20 redirects, none to another origin, … */
export const defaults: Settings = internal.defaults

/** Settings from the environment (SSE_IDLE_TIMEOUT, SSE_MAX_ATTEMPTS, …), each defaulting to `defaults`. */
export const config: Config.Config<Settings> = Config.all({
  idleTimeout: positiveDuration(
    "SSE_IDLE_TIMEOUT",
    Duration.decode(defaults.idleTimeout),
    "Reconnect when no byte arrives for this long"
  ),
  maxAttempts: positiveInt(
    "SSE_MAX_ATTEMPTS",
    defaults.maxAttempts,
    "Consecutive attempts without a new event before giving up"
  ),
  connectAttempts: Config.integer("SSE_CONNECT_ATTEMPTS").pipe(
    Config.validate({ message: "must be a whole number ≥ 1", validation: (n) => n >= 1 }),
    Config.option,
    Config.map(Option.getOrUndefined),
    Config.withDescription("Attempts allowed before the first connection (default: SSE_MAX_ATTEMPTS)")
  ),
  maxEventBytes: positiveInt("SSE_MAX_EVENT_BYTES", defaults.maxEventBytes, "The most bytes one event may hold"),
  maxTracked: positiveInt("SSE_MAX_TRACKED", defaults.maxTracked, "How many recent event ids are de-duplicated"),
  initialDelay: positiveDuration(
    "SSE_INITIAL_DELAY",
    Duration.decode(defaults.initialDelay),
    "First delay of the reconnect backoff"
  ),
  maxDelay: positiveDuration("SSE_MAX_DELAY", Duration.decode(defaults.maxDelay), "Cap of the reconnect backoff"),
  maxRetryAfter: positiveDuration(
    "SSE_MAX_RETRY_AFTER",
    Duration.decode(defaults.maxRetryAfter),
    "Longest wait a server's retry: or Retry-After can ask for"
  ),
  maxRedirects: Config.integer("SSE_MAX_REDIRECTS").pipe(
    Config.validate({ message: "must be a whole number ≥ 0", validation: (n) => n >= 0 }),
    Config.withDefault(defaults.maxRedirects),
    Config.withDescription("Redirects followed per connection (0: none)")
  ),
  crossOriginRedirects: Config.boolean("SSE_CROSS_ORIGIN_REDIRECTS").pipe(
    Config.withDefault(defaults.crossOriginRedirects),
    Config.withDescription("Follow redirects to another origin (sent without credentials)")
  ),
  tracePropagation: Config.boolean("SSE_TRACE_PROPAGATION").pipe(
    Config.withDefault(defaults.tracePropagation),
    Config.withDescription("Send traceparent/b3 headers with every request")
  )
})

export interface Options<E = never, EH = never, RH = never> extends Partial<Settings> {
  /** Records every event, dropping replays; its callbacks' typed failures end the stream. Default: a new one of `maxTracked`. */
  readonly tracker?: EventTracker.EventTracker<E>
  /** Resume point for the first request, seeded into the tracker; default the tracker's `lastEventId`. */
  readonly lastEventId?: string
  /** Run before every attempt, so refreshed credentials are used on reconnect. */
  readonly headers?: Effect.Effect<Headers.Input, EH, RH>
  /**
   * Replaces the default backoff (`backoff`: from `initialDelay`, doubling,
   * capped at `maxDelay`). Its delay is raised to the server's `retry:`
   * and `Retry-After`; when it ends, the stream fails with `SseRetriesExhausted`.
   * It restarts after each attempt that delivered a new event.
   */
  readonly schedule?: Schedule.Schedule<unknown, Reconnect>
  /** Awaited on each connection change; must not fail. */
  readonly onConnection?: (status: ConnectionStatus) => Effect.Effect<void>
  /**
   * How a stream started by a method other than GET, HEAD, OPTIONS or TRACE is
   * resumed, never by re-sending it: `"get"` (MCP Streamable HTTP) is a GET to the
   * same URL with the original's headers minus the body's; a function builds any
   * other request from the original. Each attempt that has a resume point sends
   * it, with `Last-Event-ID` and `headers` added, under the same budget, backoff,
   * dedup and redirects; the first one too, when the stream starts from a resume
   * point (resuming a stream dropped earlier). A graceful close still ends the
   * stream, and a drop before any event id fails with `SseStreamDropped`.
   * Ignored for GET, HEAD, OPTIONS and TRACE, which reconnect as they are.
   */
  readonly resumeWith?: ResumeWith
  /**
   * Each element ends the current attempt (its request aborted), or the wait
   * after one, and reconnects at once from the resume point: no attempt of the
   * budget spent, no backoff, reported as `reconnecting` with reason
   * "requested". A stream that cannot be resumed (an unsafe method without
   * `resumeWith`, or no resume point yet) fails with `SseStreamDropped` instead.
   */
  readonly reconnectNow?: Stream.Stream<unknown>
  /**
   * What to do when a resumed response opens with a gap notice: an event of type
   * `gap` whose data is JSON `{"lastEventId": "<requested>", "firstAvailable":
   * "<id>"}`, which `SseServer` sends when its retention dropped events after
   * the requested `Last-Event-ID`. "fail" (the default) ends the stream with
   * `SseResumeGap`; "emit" hands the notice on as an event (type "gap") and goes
   * on. Only the first event of a response to a request that sent
   * `Last-Event-ID` is taken for one (id-only blocks before it aside), and only
   * with both fields strings: an event named "gap" anywhere else, or from a
   * server with its own meaning for it, is an ordinary event.
   */
  readonly onGap?: "fail" | "emit"
}

// --- Metrics ---

/** SSE reconnections scheduled. */
export const reconnects: Metric.Metric.Counter<number> = internal.reconnects
/** SSE connections that ended abnormally, tagged by reason (transport, idle, status). */
export const connectionErrors: Metric.Metric.Counter<number> = internal.connectionErrors
/** SSE events parsed, replays included. */
export const eventsReceived: Metric.Metric.Counter<number> = internal.eventsReceived
/** SSE body bytes received. */
export const bytesReceived: Metric.Metric.Counter<number> = internal.bytesReceived

// --- Streams ---

/**
 * Streams the events of `request`, reconnecting and resuming until the server
 * answers 204, a fatal error occurs or the retry budget runs out. A stream
 * started by an unsafe method (POST, …) also ends when the server closes it.
 */
export const stream: <E = never, EH = never, RH = never>(
  request: HttpClientRequest.HttpClientRequest,
  options?: Options<E, EH, RH>
) => Stream.Stream<SseEvent, SseClientError | E | EH, HttpClient.HttpClient | RH> = internal.stream
