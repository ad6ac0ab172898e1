/**
 * The request of one attempt: the caller's request and headers, with what SSE
 * adds — `Accept` unless the caller chose one, and the resume point as
 * `Last-Event-ID`. `Cache-Control` is added per hop in redirect.ts, where it can
 * be kept off fetch layers (a browser would preflight every cross-origin GET for it).
 */
import type * as Headers from "@effect/platform/Headers"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Either from "effect/Either"
import { SseResumeIdError } from "../SseClientError.js"


const TAB = 0x09
const SPACE = 0x20
const DEL = 0x7f

const isWhitespace = (code: number) => code === SPACE || code === TAB

/**
 * The id as a header value, or undefined when none carries it exactly. Header
 * values are byte strings: an id beyond ASCII goes out as its UTF-8 bytes, as
 * browsers send it (fetch would otherwise refuse it, or send other bytes).
 * @internal exported for its unit tests
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
