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
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { type RedirectFailure, SseRedirectError } from "../SseClientError.js"
import { sourceOf } from "./body.js"
import { bodyHeaders, isSafeMethod } from "./resume.js"

/** Fetch's limit, and the default of `maxRedirects`. */
export const defaultMaxRedirects = 20


/** The statuses fetch follows; any other 3xx (300, 304, ...) is an answer.
 * @internal exported for its unit tests
 */
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
  readonly execute: (
    request: HttpClientRequest.HttpClientRequest,
    hop: Hop
  ) => Effect.Effect<HttpClientResponse.HttpClientResponse, E, R>
  /** Redirects followed before failing with reason "tooMany"; default 20. */
  readonly maxRedirects?: number
  /**
   * Follow a redirect to another origin (scheme, host and port) than the first
   * request's. Off (the default), such a redirect fails with reason
   * "crossOrigin" before anything is sent there. On, `execute` is told the hop is
   * cross-origin and must send it without the credentials its client adds
   * (`withoutCredentials` after the client's own request mapping); a fetch of the
   * caller's (`FetchHttpClient.Fetch`) may add any header, so a cross-origin hop
   * through one still fails with reason "crossOrigin".
   */
  readonly crossOrigin?: boolean
}

/** What `execute` is told about a hop.
 * @internal exported for its unit tests
 */
export interface Hop {
  /** The hop goes to another origin than the first request's: it must carry none of its credentials. */
  readonly crossOrigin: boolean
}

const sameOriginHop: Hop = { crossOrigin: false }
const crossOriginHop: Hop = { crossOrigin: true }

/**
 * Whether fetch hid a redirect: under `redirect: "manual"` a browser answers a 3xx
 * with an opaque-redirect response of status 0. A no-cors answer is opaque and of
 * status 0 too, so where the answer keeps its web Response (FetchHttpClient's, in
 * its `source`) the Response's type decides; elsewhere status 0 does.
 */
const isHiddenRedirect = (response: HttpClientResponse.HttpClientResponse): boolean => {
  const source = sourceOf(response)
  return typeof Response !== "undefined" && source instanceof Response
    ? source.type === "opaqueredirect"
    : response.status === 0
}

/** Credentials meant for one origin; fetch and undici drop them when a redirect leaves it. */
const originBoundHeaders = ["authorization", "proxy-authorization", "cookie", "host"]

/**
 * `request` without the headers bound to its origin. Applied with
 * `HttpClient.mapRequest` on the caller's client, it runs after the client's own
 * request mapping, so a token added by `mapRequest(bearerToken(...))` is dropped too.
 */
export const withoutCredentials = (request: HttpClientRequest.HttpClientRequest): HttpClientRequest.HttpClientRequest =>
  HttpClientRequest.make(request.method)(request.url, {
    urlParams: request.urlParams,
    hash: Option.getOrUndefined(request.hash),
    headers: Headers.remove(request.headers, originBoundHeaders)
  }).pipe(HttpClientRequest.setBody(request.body))

/**
 * `Cache-Control: no-cache`, as EventSource sends it, on every layer that sends
 * the request's headers as they are (undici, node:http). Fetch layers must not
 * get it: not CORS-safelisted, it would make a browser preflight every
 * cross-origin GET; there `cache: "no-store"` makes fetch add it itself, after
 * its CORS check. So the hop's fetch (which only fetch layers call) removes it again.
 */
const noCache = "no-cache"

const withoutOurCacheControl = (fetch: typeof globalThis.fetch): typeof globalThis.fetch => (input, init) => {
  const headers = init?.headers as Record<string, string> | undefined
  if (headers === undefined || headers["cache-control"] !== noCache) return fetch(input, init)
  const rest: Record<string, string> = { ...headers }
  delete rest["cache-control"]
  return fetch(input, { ...init, headers: rest })
}

/** A RequestInit's headers without credentials, for a cross-origin hop. */
const initWithoutCredentials = (init: globalThis.RequestInit): globalThis.RequestInit => {
  if (init.headers === undefined) return init
  const headers = new globalThis.Headers(init.headers)
  for (const name of originBoundHeaders) headers.delete(name)
  return { ...init, headers }
}

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
    const callerFetch = Option.getOrUndefined(yield* Effect.serviceOption(FetchHttpClient.Fetch))
    // `cache: "no-store"` as EventSource's own fetch: no HTTP cache answers, and the
    // browser (or undici) adds `Cache-Control: no-cache` itself, after its CORS check.
    const fetchInit: globalThis.RequestInit = { cache: "no-store", ...init }
    const manual: globalThis.RequestInit = { ...fetchInit, redirect: "manual" }
    const hopFetch = withoutOurCacheControl(callerFetch ?? ((input, init) => globalThis.fetch(input, init)))
    const parent = yield* Effect.scope
    const chain: Array<string> = []
    const requested = new Set<string>()
    const origin = originOf(urlOf(request))
    let current = request
    let hop = sameOriginHop
    while (true) {
      const url = urlOf(current)
      chain.push(url)
      // The method is part of the key: a POST answered 303 to its own URL is followed by a GET, not a loop.
      requested.add(`${current.method} ${url}`)
      const hopScope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
      const response = yield* options.execute(withNoCache(current), hop).pipe(
        Effect.provideService(FetchHttpClient.RequestInit, hop.crossOrigin ? initWithoutCredentials(manual) : manual),
        Effect.provideService(FetchHttpClient.Fetch, hopFetch),
        Scope.extend(hopScope),
        Effect.onError((cause) => Scope.close(hopScope, Exit.failCause(cause)))
      )
      if (isHiddenRedirect(response)) {
        yield* Scope.close(hopScope, Exit.void)
        return yield* followHidden(current, { chain, url, maxRedirects, fetchInit, hopFetch, hop, parent, options })
      }
      if (!isRedirect(response.status)) return { response, url, chain: [...chain] }
      yield* Scope.close(hopScope, Exit.void)
      const next = yield* nextHop(current, response, [...chain])
      const fail = (reason: RedirectFailure, chain: ReadonlyArray<string>) =>
        new SseRedirectError({ reason, chain, status: response.status, location: response.headers["location"] })
      const nextUrl = urlOf(next)
      if (requested.has(`${next.method} ${nextUrl}`)) return yield* fail("loop", [...chain, nextUrl])
      if (chain.length > maxRedirects) return yield* fail("tooMany", [...chain])
      if (originOf(nextUrl) !== origin) {
        // A fetch of the caller's may add any header, and the client cannot take it off again.
        if (options.crossOrigin !== true || callerFetch !== undefined) return yield* fail("crossOrigin", [...chain, nextUrl])
        hop = crossOriginHop
      } else {
        hop = sameOriginHop
      }
      current = next
    }
  })

/** The origin (scheme, host and port) of a URL; a scheme change alone is another origin. */
const originOf = (url: string): string => {
  try {
    return new URL(url).origin
  } catch {
    return url
  }
}

/** The hop's request with `Cache-Control: no-cache` unless the caller chose one (see `withoutOurCacheControl`). */
const withNoCache = (request: HttpClientRequest.HttpClientRequest): HttpClientRequest.HttpClientRequest =>
  request.headers["cache-control"] === undefined ? HttpClientRequest.setHeader(request, "cache-control", noCache) : request

/**
 * A redirect a browser's fetch hid: if `maxRedirects` allows one more, a safe
 * request is sent again for the browser to follow (its own rules and limit, the
 * whole chain within one hop's timeout); another method fails with reason "hidden".
 */
const followHidden = <E, R>(
  current: HttpClientRequest.HttpClientRequest,
  state: {
    readonly chain: ReadonlyArray<string>
    readonly url: string
    readonly maxRedirects: number
    readonly fetchInit: globalThis.RequestInit
    readonly hopFetch: typeof globalThis.fetch
    readonly hop: Hop
    readonly parent: Scope.Scope
    readonly options: FollowOptions<E, R>
  }
): Effect.Effect<Followed, E | SseRedirectError, Exclude<R, Scope.Scope>> => {
  const { chain, fetchInit, hop, maxRedirects, options, parent, url } = state
  // At least one redirect more: the browser would follow it whatever our limit.
  if (chain.length > maxRedirects) {
    return Effect.fail(new SseRedirectError({ reason: "tooMany", chain: [...chain], status: 0, location: undefined }))
  }
  if (!isSafeMethod(current.method)) {
    return Effect.fail(new SseRedirectError({ reason: "hidden", chain: [...chain], status: 0, location: undefined }))
  }
  // The browser's answer hides the final URL too: `url` stays the one requested.
  return options.execute(withNoCache(current), hop).pipe(
    Effect.provideService(FetchHttpClient.RequestInit, { ...fetchInit, redirect: "follow" }),
    Effect.provideService(FetchHttpClient.Fetch, state.hopFetch),
    Scope.extend(parent),
    Effect.map((followed) => ({ response: followed, url, chain: [...chain] }))
  )
}
