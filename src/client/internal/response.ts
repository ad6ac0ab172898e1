/**
 * What the answer to an SSE request means for the stream, decided from its status
 * and headers alone, before any byte of the body is read: read the events, stop
 * for good (204), retry later, or fail with a typed error.
 */
import * as Duration from "effect/Duration"
import { SseContentTypeError, SseHttpError } from "../SseClientError.js"



/**
 * The statuses a later attempt may fix, the same set as @effect/platform's
 * `isTransientResponse`. Everything else is final: 404/410 will not come back,
 * 401/403 need new credentials, 501/505 are the server's capabilities, and a
 * redirect that was not followed would only be answered again.
 */
export const isTransientStatus = (status: number): boolean =>
  status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504

/** `Retry-After` is either delay-seconds or an HTTP date; anything else is ignored.
 * @internal exported for its unit tests
 */
export const parseRetryAfter = (value: string | undefined, now: number): Duration.Duration | undefined => {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Duration.seconds(Number(trimmed))
  const date = Date.parse(trimmed)
  return Number.isNaN(date) ? undefined : Duration.millis(Math.max(0, date - now))
}

const isEventStream = (contentType: string | undefined): boolean =>
  contentType !== undefined && contentType.split(";")[0]!.trim().toLowerCase() === "text/event-stream"

export type Verdict =
  | { readonly _tag: "Read" }
  /** 204: the server says there is nothing more; the spec's "do not reconnect". */
  | { readonly _tag: "Stop" }
  | { readonly _tag: "Retry"; readonly status: number; readonly retryAfter: Duration.Duration | undefined }
  | { readonly _tag: "Fail"; readonly error: SseHttpError | SseContentTypeError }

const read: Verdict = { _tag: "Read" }
const stop: Verdict = { _tag: "Stop" }

/** Decides what to do with a response; `now` dates an HTTP-date `Retry-After`. */
export const classify = (
  response: { readonly status: number; readonly headers: Readonly<Record<string, string | undefined>> },
  context: { readonly url: string; readonly attempt: number; readonly now: number }
): Verdict => {
  const { headers, status } = response
  if (status === 204) return stop
  if (isTransientStatus(status)) {
    const retryAfter = status === 429 || status === 503 ? parseRetryAfter(headers["retry-after"], context.now) : undefined
    return { _tag: "Retry", status, retryAfter }
  }
  if (status < 200 || status >= 300) {
    return { _tag: "Fail", error: new SseHttpError({ status, url: context.url, attempt: context.attempt }) }
  }
  const contentType = headers["content-type"]
  if (!isEventStream(contentType)) return { _tag: "Fail", error: new SseContentTypeError({ contentType, url: context.url }) }
  return read
}
