/**
 * The request of one attempt: the caller's request and headers, with what SSE
 * adds — `Accept` unless the caller chose one, and the resume point as
 * `Last-Event-ID`. `Cache-Control` is added per hop in redirect.ts, where it can
 * be kept off fetch layers (a browser would preflight every cross-origin GET for it).
 */
import type * as Headers from "@effect/platform/Headers"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { Data, Either } from "effect"

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

const TAB = 0x09
const SPACE = 0x20
const DEL = 0x7f

const isWhitespace = (code: number) => code === SPACE || code === TAB

/**
 * The id as a header value, or undefined when none carries it exactly. Header
 * values are byte strings: an id beyond ASCII goes out as its UTF-8 bytes, as
 * browsers send it (fetch would otherwise refuse it, or send other bytes).
 */
export const lastEventIdHeader = (id: string): string | undefined => {
  if (isWhitespace(id.charCodeAt(0)) || isWhitespace(id.charCodeAt(id.length - 1))) return undefined
  let ascii = true
  for (let i = 0; i < id.length; i++) {
    const code = id.charCodeAt(i)
    if ((code < SPACE && code !== TAB) || code === DEL) return undefined
    if (code > DEL) ascii = false
  }
  if (ascii) return id
  const bytes = new TextEncoder().encode(id)
  let latin1 = ""
  for (let i = 0; i < bytes.length; i++) latin1 += String.fromCharCode(bytes[i]!)
  return latin1
}

/**
 * Builds the request of one attempt. `headers` are the caller's per-attempt
 * headers; `lastEventId` is the resume point (none: no header).
 */
export const attemptRequest = (
  request: HttpClientRequest.HttpClientRequest,
  headers: Headers.Input | undefined,
  lastEventId: string | undefined
): Either.Either<HttpClientRequest.HttpClientRequest, SseResumeIdError> => {
  let built = headers === undefined ? request : HttpClientRequest.setHeaders(request, headers)
  // MCP servers require `Accept: application/json, text/event-stream` and answer
  // 406 to anything else, so a caller's choice stands.
  if (built.headers["accept"] === undefined) built = HttpClientRequest.setHeader(built, "accept", "text/event-stream")
  if (lastEventId === undefined || lastEventId === "") return Either.right(built)
  const value = lastEventIdHeader(lastEventId)
  return value === undefined
    ? Either.left(new SseResumeIdError({ lastEventId, url: request.url }))
    : Either.right(HttpClientRequest.setHeader(built, "last-event-id", value))
}
