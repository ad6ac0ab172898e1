/**
 * Streams started by a request that must not be sent twice: a POST re-runs a
 * tool or re-bills an LLM call. Which methods may be re-sent, the error that
 * hands a dropped stream's resume point to the caller, and how the request that
 * resumes such a stream is built (`resumeWith`).
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { Data, type Duration, Option } from "effect"
import type { ReconnectReason } from "./reconnect.js"

/**
 * The methods RFC 9110 calls safe (GET, HEAD, OPTIONS, TRACE): read-only, so a
 * reconnect may send them again as they are. Any other method (POST, PUT, PATCH,
 * DELETE, …) starts a stream that is resumed only by `resumeWith`, never re-sent.
 */
export const isSafeMethod = (method: string): boolean => {
  const upper = method.toUpperCase()
  return upper === "GET" || upper === "HEAD" || upper === "OPTIONS" || upper === "TRACE"
}

/** Fetch's request-body-header names, dropped with the body when a request turns into a GET. */
export const bodyHeaders = ["content-encoding", "content-language", "content-location", "content-type", "content-length"]

/**
 * How the request that resumes a stream started by an unsafe method is built
 * from the original: `"get"` (MCP Streamable HTTP) or the caller's own function.
 * The client adds `Last-Event-ID` and the per-attempt headers to what it returns.
 */
export type ResumeWith =
  | "get"
  | ((request: HttpClientRequest.HttpClientRequest) => HttpClientRequest.HttpClientRequest)

/**
 * A GET to the same URL with the original's headers, minus the body's: what MCP
 * Streamable HTTP specifies for resuming a cut POST stream.
 */
export const resumeByGet = (request: HttpClientRequest.HttpClientRequest): HttpClientRequest.HttpClientRequest =>
  HttpClientRequest.get(request.url, {
    urlParams: request.urlParams,
    hash: Option.getOrUndefined(request.hash),
    headers: Headers.remove(request.headers, bodyHeaders)
  })

export const resumeRequest = (
  request: HttpClientRequest.HttpClientRequest,
  resumeWith: ResumeWith
): HttpClientRequest.HttpClientRequest => resumeWith === "get" ? resumeByGet(request) : resumeWith(request)

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
