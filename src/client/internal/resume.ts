/**
 * Streams started by a request that must not be sent twice: a POST re-runs a
 * tool or re-bills an LLM call. Which methods may be re-sent, the error that
 * hands a dropped stream's resume point to the caller, and how the request that
 * resumes such a stream is built (`resumeWith`).
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Option from "effect/Option"

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

