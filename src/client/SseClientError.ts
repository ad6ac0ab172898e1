/**
 * Every error an `SseClient` stream fails with, and the account of an ended
 * attempt they carry. Each is a `Data.TaggedError`: match them with
 * `Effect.catchTag`. Re-exported from `SseClient`.
 */
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import { causeText } from "./internal/causeText.js"
import type { SettingsError } from "../Settings.js"
import type * as Sse from "../wire/Sse.js"

/**
 * Why a connection ended: the server closed the body, the transport failed
 * (refused, reset, cut mid-body), no byte arrived within `idleTimeout`, the
 * server answered a transient status (408, 429, 500, 502, 503, 504), or the
 * caller asked for a reconnect (`reconnectNow`).
 */
export type ReconnectReason = "closed" | "transport" | "idle" | "status" | "requested"

/** One ended attempt, as the reconnect schedule sees it. */
export interface Reconnect {
  readonly reason: ReconnectReason
  /** 1-based count of attempts made by this stream. */
  readonly attempt: number
  readonly status?: number
  /** The server's `Retry-After` on 429 or 503. */
  readonly retryAfter?: Duration.Duration
  readonly cause?: unknown
}

/** The server answered with a status that retrying will not fix. */
export class SseHttpError extends Data.TaggedError("SseHttpError")<{
  readonly status: number
  readonly url: string
  /** The attempt (1-based) that received it. */
  readonly attempt: number
}> {
  override get message() {
    return `SSE request to ${this.url} failed with HTTP ${this.status}`
  }
}

/** The server answered 2xx but not with `text/event-stream`. */
export class SseContentTypeError extends Data.TaggedError("SseContentTypeError")<{
  readonly contentType: string | undefined
  readonly url: string
}> {
  override get message() {
    return `SSE response from ${this.url} has content type ${this.contentType ?? "(none)"}, not text/event-stream`
  }
}

/**
 * `maxAttempts` consecutive attempts delivered nothing new, `connectAttempts`
 * never reached the server, or the schedule gave up.
 */
export class SseRetriesExhausted extends Data.TaggedError("SseRetriesExhausted")<{
  /** Consecutive attempts without a new event. */
  readonly attempts: number
  /** How the last attempt ended. */
  readonly last: Reconnect
}> {
  /** Why the last attempt ended, in words: `connect ECONNREFUSED 127.0.0.1:1`, `HTTP 503`, … */
  get lastCause(): string {
    return causeText(this.last)
  }
  override get message() {
    return `SSE gave up after ${this.attempts} attempts; the last ended with ${this.last.reason}: ${this.lastCause}`
  }
}

/**
 * A stream started by an unsafe method (POST, …) was cut, and re-sending the
 * request could run it twice: the stream ends here. Resume it later from
 * `lastEventId` (e.g. `SseClient.stream(request, { resumeWith: "get", lastEventId })`),
 * or re-send it if you know that is safe. A transient status (`reason: "status"`)
 * answered the request itself, and the server may or may not have run it.
 */
export class SseStreamDropped extends Data.TaggedError("SseStreamDropped")<{
  /** The original request's method. */
  readonly method: string
  /** The original request's URL. */
  readonly url: string
  /** The resume point: the last new event id received; undefined when the cut came before any id. */
  readonly lastEventId: string | undefined
  readonly reason: ReconnectReason
  /** The transient status that answered, when `reason` is "status". */
  readonly status?: number
  /** The server's `Retry-After` on a 429 or 503. */
  readonly retryAfter?: Duration.Duration
}> {
  override get message() {
    const how = this.reason === "requested"
      ? "a reconnect was requested"
      : this.reason === "status"
      ? `the server answered HTTP ${this.status}`
      : `the connection ended (${this.reason})`
    const from = this.lastEventId === undefined ? "no event id was received" : `resume from ${JSON.stringify(this.lastEventId)}`
    return `SSE ${this.method} stream from ${this.url} dropped: ${how}; not re-sent (${from})`
  }
}

/**
 * The resume point is an id no HTTP header can carry exactly: a control character
 * (refused by every client) or a leading or trailing space or tab (which fetch
 * trims). Every reconnect would fail or resume from a different id, so the stream
 * ends at once rather than retrying in vain.
 */
export class SseResumeIdError extends Data.TaggedError("SseResumeIdError")<{
  readonly lastEventId: string
  readonly url: string
}> {
  override get message() {
    return `SSE cannot resume ${this.url}: the event id ${JSON.stringify(this.lastEventId)} cannot be sent ` +
      "as a Last-Event-ID header (control character, or space at either end)"
  }
}

/**
 * The server said, in the `gap` event that opened a resumed response, that it
 * no longer holds the events right after `lastEventId`: its oldest is
 * `firstAvailable`. Resuming would silently skip the ones between, so by
 * default (`onGap: "fail"`) the stream ends with this error instead.
 */
export class SseResumeGap extends Data.TaggedError("SseResumeGap")<{
  /** The resume point the request asked to continue after. */
  readonly lastEventId: string
  /** The oldest event id the server still has. */
  readonly firstAvailable: string
}> {
  override get message() {
    return `SSE server no longer holds the events after ${JSON.stringify(this.lastEventId)}: ` +
      `its oldest is ${JSON.stringify(this.firstAvailable)}, so resuming would skip events`
  }
}

export type RedirectFailure =
  | "loop"
  | "tooMany"
  | "noLocation"
  | "badLocation"
  | "bodyNotReplayable"
  | "hidden"
  | "crossOrigin"

export class SseRedirectError extends Data.TaggedError("SseRedirectError")<{
  readonly reason: RedirectFailure
  /** Every URL requested, the original first; for a loop, then the URL it leads back to. */
  readonly chain: ReadonlyArray<string>
  readonly status: number
  /** The `Location` header of the last answer, as sent. */
  readonly location: string | undefined
}> {
  override get message() {
    const last = this.chain[this.reason === "loop" ? this.chain.length - 2 : this.chain.length - 1]
    const why = {
      loop: "redirects in a loop",
      tooMany: `redirects more than ${this.chain.length - 1} times`,
      noLocation: "redirects without a Location header",
      badLocation: `redirects to an unusable Location ${JSON.stringify(this.location)}`,
      bodyNotReplayable: "redirects a streamed body, which cannot be sent again",
      hidden: "redirects, and this platform's fetch (a browser's) hides where to: " +
        "a request of a method that is not safe is not sent a second time to let fetch follow it",
      crossOrigin: `redirects to another origin (${JSON.stringify(this.location)}), not followed: ` +
        "a credential added by the caller's HttpClient or fetch could reach it (crossOriginRedirects)"
    }[this.reason]
    return `SSE request to ${last} ${why} (HTTP ${this.status}; chain: ${this.chain.join(" -> ")})`
  }
}

/** A response body that cannot be decoded from its `Content-Encoding`. */
export class SseContentEncodingError extends Data.TaggedError("SseContentEncodingError")<{
  /** The codings of `Content-Encoding` other than identity, lower-cased. */
  readonly encoding: string
  readonly url: string
  /** "unsupported": none of our decoders (br, zstd, unknown); "corrupt": invalid compressed data. */
  readonly reason: "unsupported" | "corrupt"
  readonly cause?: unknown
}> {
  override get message() {
    return this.reason === "unsupported"
      ? `SSE response from ${this.url} is ${this.encoding}-encoded, which this client cannot decode`
      : `SSE response from ${this.url} has corrupt ${this.encoding} data` +
        (this.cause instanceof Error ? `: ${this.cause.message}` : "")
  }
}

/** What an `SseClient` stream can fail with, besides the tracker callbacks' and the `headers` Effect's own errors. */
export type SseClientError =
  | SseHttpError
  | SseContentTypeError
  | SseRetriesExhausted
  | SseStreamDropped
  | SseResumeIdError
  | SseResumeGap
  | SseRedirectError
  | SseContentEncodingError
  | Sse.SseParseError
  /** A setting given in code that the client cannot run with (e.g. `maxAttempts: 0`). */
  | SettingsError
