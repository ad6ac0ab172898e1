/**
 * Redirects followed by the client itself, the same on every HttpClient layer:
 * undici and node:http hand a 3xx over as it is, fetch would follow it out of
 * sight (unbounded by our per-hop timeout). Each hop goes through the caller's
 * `execute`, so the caller's idle timeout and abort scope cover every hop, not
 * only the first. The rules are fetch's (WHATWG Fetch, "HTTP-redirect fetch").
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Headers from "@effect/platform/Headers"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as UrlParams from "@effect/platform/UrlParams"
import { Data, Effect, Either, ExecutionStrategy, Exit, Option, Scope } from "effect"

/** Fetch's limit, and the default of `maxRedirects`. */
export const defaultMaxRedirects = 20

export type RedirectFailure = "loop" | "tooMany" | "noLocation" | "badLocation" | "bodyNotReplayable" | "hidden"

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
        "a request of a method that is not safe is not sent a second time to let fetch follow it"
    }[this.reason]
    return `SSE request to ${last} ${why} (HTTP ${this.status}; chain: ${this.chain.join(" -> ")})`
  }
}

/** The statuses fetch follows; any other 3xx (300, 304, ...) is an answer. */
export const isRedirect = (status: number): boolean =>
  status === 301 || status === 302 || status === 303 || status === 307 || status === 308

export interface Followed {
  /** The first answer that is not a redirect. */
  readonly response: HttpClientResponse.HttpClientResponse
  /** The URL that gave `response`: the last of `chain`. */
  readonly url: string
  /** Every URL requested, the original first. */
  readonly chain: ReadonlyArray<string>
}

export interface FollowOptions<E, R> {
  /**
   * Sends one hop: the place for the per-hop timeout. It runs in a scope of its
   * own, closed as soon as its answer is a redirect (with a client from
   * `HttpClient.withScope`, that aborts the hop's request and frees its socket);
   * the last hop's scope stays open until the scope `follow` runs in closes.
   */
  readonly execute: (request: HttpClientRequest.HttpClientRequest) => Effect.Effect<HttpClientResponse.HttpClientResponse, E, R>
  /** Redirects followed before failing with reason "tooMany"; default 20. */
  readonly maxRedirects?: number
}

/**
 * Whether fetch hid a redirect: under `redirect: "manual"` a browser answers a 3xx
 * with an opaque-redirect response of status 0. A no-cors answer is opaque and of
 * status 0 too, so where the answer keeps its web Response (FetchHttpClient's, in
 * its `source`) the Response's type decides; elsewhere status 0 does.
 */
export const isHiddenRedirect = (response: HttpClientResponse.HttpClientResponse): boolean => {
  const source = (response as unknown as { readonly source?: unknown }).source
  return typeof Response !== "undefined" && source instanceof Response
    ? source.type === "opaqueredirect"
    : response.status === 0
}

const isSafeMethod = (method: string): boolean =>
  method === "GET" || method === "HEAD" || method === "OPTIONS" || method === "TRACE"

/** Credentials meant for one origin; fetch and undici drop them when a redirect leaves it. */
const originBoundHeaders = ["authorization", "proxy-authorization", "cookie", "host"]
/** Fetch's request-body-header names, dropped with the body when a request turns into a GET. */
export const bodyHeaders = ["content-encoding", "content-language", "content-location", "content-type", "content-length"]

const urlOf = (request: HttpClientRequest.HttpClientRequest): string =>
  Either.match(UrlParams.makeUrl(request.url, request.urlParams, request.hash), {
    onLeft: () => request.url,
    onRight: (url) => url.href
  })

/** The request for the hop a redirect answer points to, or why there is none. */
const nextHop = (
  request: HttpClientRequest.HttpClientRequest,
  response: HttpClientResponse.HttpClientResponse,
  chain: ReadonlyArray<string>
): Either.Either<HttpClientRequest.HttpClientRequest, SseRedirectError> => {
  const status = response.status
  const location = response.headers["location"]
  const fail = (reason: RedirectFailure) => Either.left(new SseRedirectError({ reason, chain, status, location }))
  if (location === undefined || location.trim() === "") return fail("noLocation")
  let from: URL
  let to: URL
  try {
    from = new URL(chain[chain.length - 1]!)
    to = new URL(location, from)
  } catch {
    return fail("badLocation")
  }
  if (to.protocol !== "http:" && to.protocol !== "https:") return fail("badLocation")
  const toGet = (status === 303 && request.method !== "GET" && request.method !== "HEAD") ||
    ((status === 301 || status === 302) && request.method === "POST")
  if (!toGet && request.body._tag === "Stream") return fail("bodyNotReplayable")
  let headers = request.headers
  if (to.origin !== from.origin) headers = Headers.remove(headers, originBoundHeaders)
  if (toGet) headers = Headers.remove(headers, bodyHeaders)
  return Either.right(
    HttpClientRequest.make(toGet ? "GET" : request.method)(to).pipe(
      HttpClientRequest.setHeaders(headers),
      HttpClientRequest.setBody(toGet ? HttpBody.empty : request.body)
    )
  )
}

/**
 * Sends `request` and follows 301, 302, 303, 307 and 308 answers, at most
 * `maxRedirects` times, as fetch does: 303 (and 301/302 to a POST) becomes a GET
 * without body, 307/308 resend method and body, `Location` is resolved against
 * the current URL, and credentials are dropped once the origin changes. A
 * redirect back to a URL already requested with the same method is a loop.
 *
 * On FetchHttpClient each hop runs with `RequestInit.redirect = "manual"`, merged
 * into the caller's `FetchHttpClient.RequestInit` if there is one, so fetch hands
 * us the 3xx. Node's fetch exposes its status and Location; a browser's answers an
 * opaque "opaqueredirect" response of status 0 instead (`isHiddenRedirect`). Then,
 * if `maxRedirects` allows one more redirect, a request of a safe method (GET,
 * HEAD, OPTIONS, TRACE) is sent again with the browser following the redirects
 * itself (fetch's own rules and limit of 20, the whole chain within one hop's
 * timeout); another method fails with reason "hidden", since sending it again
 * could do its work twice on the server.
 */
export const follow = <E, R>(
  request: HttpClientRequest.HttpClientRequest,
  options: FollowOptions<E, R>
): Effect.Effect<Followed, E | SseRedirectError, Exclude<R, Scope.Scope> | Scope.Scope> =>
  Effect.gen(function*() {
    const maxRedirects = options.maxRedirects ?? defaultMaxRedirects
    const init = Option.getOrUndefined(yield* Effect.serviceOption(FetchHttpClient.RequestInit))
    // `cache: "no-store"` as EventSource's own fetch: no HTTP cache answers, and the
    // browser (or undici) adds `Cache-Control: no-cache` itself, after its CORS check.
    const fetchInit: globalThis.RequestInit = { cache: "no-store", ...init }
    const manual: globalThis.RequestInit = { ...fetchInit, redirect: "manual" }
    const parent = yield* Effect.scope
    const chain: Array<string> = []
    const requested = new Set<string>()
    let current = request
    while (true) {
      const url = urlOf(current)
      chain.push(url)
      requested.add(`${current.method} ${url}`)
      const hop = yield* Scope.fork(parent, ExecutionStrategy.sequential)
      const response = yield* options.execute(current).pipe(
        Effect.provideService(FetchHttpClient.RequestInit, manual),
        Scope.extend(hop),
        Effect.onError((cause) => Scope.close(hop, Exit.failCause(cause)))
      )
      if (isHiddenRedirect(response)) {
        yield* Scope.close(hop, Exit.void)
        // At least one redirect more: the browser would follow it whatever our limit.
        if (chain.length > maxRedirects) {
          return yield* new SseRedirectError({ reason: "tooMany", chain: [...chain], status: 0, location: undefined })
        }
        if (!isSafeMethod(current.method)) {
          return yield* new SseRedirectError({ reason: "hidden", chain: [...chain], status: 0, location: undefined })
        }
        // The browser's answer hides the final URL too: `url` stays the one requested.
        const followed = yield* options.execute(current).pipe(
          Effect.provideService(FetchHttpClient.RequestInit, { ...fetchInit, redirect: "follow" }),
          Scope.extend(parent)
        )
        return { response: followed, url, chain: [...chain] }
      }
      if (!isRedirect(response.status)) return { response, url, chain: [...chain] }
      yield* Scope.close(hop, Exit.void)
      const next = yield* nextHop(current, response, [...chain])
      const fail = (reason: RedirectFailure, chain: ReadonlyArray<string>) =>
        new SseRedirectError({ reason, chain, status: response.status, location: response.headers["location"] })
      const nextUrl = urlOf(next)
      if (requested.has(`${next.method} ${nextUrl}`)) return yield* fail("loop", [...chain, nextUrl])
      if (chain.length > maxRedirects) return yield* fail("tooMany", [...chain])
      current = next
    }
  })
