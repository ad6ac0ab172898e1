import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Data, type Duration, Effect, Layer, type Scope, Stream } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Redirect from "../src/client/internal/redirect.js"
import * as SseClient from "../src/client/SseClient.js"

interface Seen {
  readonly method: string
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
  /** Set when the client's connection closed. */
  closed: boolean
}

interface Server {
  /** `http://127.0.0.1:PORT` */
  readonly origin: string
  readonly seen: Array<Seen>
}

/** A loopback server that records each request with its path; the route answers. */
const serve = (route: (seen: Seen, res: Http.ServerResponse) => void): Effect.Effect<Server, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ server: Http.Server; state: Server }>((resume) => {
      const seen: Array<Seen> = []
      const server = Http.createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (chunk: Buffer) => chunks.push(chunk))
        req.on("end", () => {
          const request: Seen = {
            method: req.method!,
            path: req.url!,
            headers: req.headers,
            body: Buffer.concat(chunks).toString(),
            closed: false
          }
          res.on("close", () => {
            request.closed = true
          })
          seen.push(request)
          route(request, res)
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({ server, state: { origin: `http://127.0.0.1:${port}`, seen } }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ state }) => state))

const redirect = (res: Http.ServerResponse, status: number, location: string) =>
  res.writeHead(status, { location }).end("moved")

const ok = (res: Http.ServerResponse) => res.writeHead(200, { "content-type": "text/plain" }).end("ok")

/**
 * Follows with a scoped client, as SseClient does; `perHop` bounds each hop,
 * `crossOrigin` lets hops leave the first request's origin (credentials taken off).
 */
const follow = (
  request: HttpClientRequest.HttpClientRequest,
  perHop?: Duration.DurationInput,
  crossOrigin = false
) =>
  Effect.gen(function*() {
    const client = HttpClient.withScope(yield* HttpClient.HttpClient)
    const withoutCredentials = HttpClient.mapRequest(client, Redirect.withoutCredentials)
    return yield* Redirect.follow(request, {
      crossOrigin,
      execute: (request, hop) => {
        const hopClient = hop.crossOrigin ? withoutCredentials : client
        return perHop === undefined
          ? hopClient.execute(request)
          : Effect.timeoutFail(hopClient.execute(request), { duration: perHop, onTimeout: () => new HopTimeout() })
      }
    })
  })

class HopTimeout extends Data.TaggedError("HopTimeout") {}

const failure = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flip(effect).pipe(Effect.orElse(() => Effect.die("expected a failure")))

const layers: ReadonlyArray<readonly [string, Layer.Layer<HttpClient.HttpClient>]> = [
  ["FetchHttpClient.layer", FetchHttpClient.layer],
  ["NodeHttpClient.layerUndici", NodeHttpClient.layerUndici],
  ["NodeHttpClient.layer", NodeHttpClient.layer]
]

layers.forEach(([name, layer]) =>
  describe(`Redirect.follow on ${name}`, () => {
    const live = <A, E>(title: string, body: () => Effect.Effect<A, E, HttpClient.HttpClient | Scope.Scope>) =>
      it.scopedLive(title, () => Effect.provide(body(), layer))

    live("follows 301, 302, 303, 307 and 308, resolving a relative Location", () =>
      Effect.gen(function*() {
        const server = yield* serve((req, res) =>
          req.path.startsWith("/from/") ? redirect(res, Number(req.path.slice(6)), "../to?x=1") : ok(res)
        )
        for (const status of [301, 302, 303, 307, 308]) {
          const followed = yield* follow(HttpClientRequest.get(`${server.origin}/from/${status}`))
          expect(followed.response.status).toBe(200)
          expect(yield* followed.response.text).toBe("ok")
          expect(followed.url).toBe(`${server.origin}/to?x=1`)
          expect(followed.chain).toEqual([`${server.origin}/from/${status}`, `${server.origin}/to?x=1`])
        }
        expect(server.seen.map((r) => r.path)).toEqual(
          [301, 302, 303, 307, 308].flatMap((status) => [`/from/${status}`, "/to?x=1"])
        )
      }))

    live("a relative Location is resolved against the URL of the hop that sent it", () =>
      Effect.gen(function*() {
        const server = yield* serve((req, res) => {
          if (req.path === "/one/start") return redirect(res, 302, "/two/next")
          if (req.path === "/two/next") return redirect(res, 302, "final")
          ok(res)
        })
        const followed = yield* follow(HttpClientRequest.get(`${server.origin}/one/start`))
        expect(followed.url).toBe(`${server.origin}/two/final`)
      }))

    live("a POST becomes a GET without body on 303, 301 and 302; 307 and 308 resend method and body", () =>
      Effect.gen(function*() {
        const server = yield* serve((req, res) =>
          req.path.startsWith("/from/") ? redirect(res, Number(req.path.slice(6)), "/to") : ok(res)
        )
        for (const status of [301, 302, 303, 307, 308]) {
          const request = HttpClientRequest.post(`${server.origin}/from/${status}`).pipe(
            HttpClientRequest.bodyText("{\"q\":1}", "application/json"),
            HttpClientRequest.setHeader("content-language", "en")
          )
          yield* follow(request)
          const final = server.seen[server.seen.length - 1]!
          if (status === 307 || status === 308) {
            expect(final).toMatchObject({ method: "POST", body: "{\"q\":1}" })
            expect(final.headers).toMatchObject({ "content-type": "application/json", "content-language": "en" })
          } else {
            expect(final).toMatchObject({ method: "GET", body: "" })
            expect(final.headers["content-type"]).toBeUndefined()
            expect(final.headers["content-length"]).toBeUndefined()
            expect(final.headers["content-language"]).toBeUndefined()
          }
        }
      }))

    live("300 and 304 are answers, not redirects", () =>
      Effect.gen(function*() {
        const server = yield* serve((req, res) => redirect(res, req.path === "/300" ? 300 : 304, "/elsewhere"))
        for (const status of [300, 304]) {
          const followed = yield* follow(HttpClientRequest.get(`${server.origin}/${status}`))
          expect(followed.response.status).toBe(status)
          expect(followed.chain).toHaveLength(1)
        }
        expect(server.seen).toHaveLength(2)
      }))

    live("a loop is a typed error naming the chain", () =>
      Effect.gen(function*() {
        const server = yield* serve((req, res) => redirect(res, 302, req.path === "/a" ? "/b" : "/a"))
        const error = yield* failure(follow(HttpClientRequest.get(`${server.origin}/a`)))
        expect(error).toMatchObject({
          _tag: "SseRedirectError",
          reason: "loop",
          chain: [`${server.origin}/a`, `${server.origin}/b`, `${server.origin}/a`]
        })
        expect(error.message).toContain(`${server.origin}/a -> ${server.origin}/b -> ${server.origin}/a`)
        expect(server.seen).toHaveLength(2)
      }))

    live("20 redirects are followed; the 21st is a typed error", () =>
      Effect.gen(function*() {
        // /hop/N/LIMIT redirects to hop N+1 until N reaches LIMIT.
        const server = yield* serve((req, res) => {
          const [, , n, limit] = req.path.split("/").map(Number)
          return n! < limit! ? redirect(res, 307, `/hop/${n! + 1}/${limit}`) : ok(res)
        })
        const twenty = yield* follow(HttpClientRequest.get(`${server.origin}/hop/0/20`))
        expect(twenty.response.status).toBe(200)
        expect(twenty.chain).toHaveLength(21)
        const error = yield* failure(follow(HttpClientRequest.get(`${server.origin}/hop/0/21`)))
        expect(error).toMatchObject({ _tag: "SseRedirectError", reason: "tooMany" })
        if (error._tag !== "SseRedirectError") return
        expect(error.chain).toHaveLength(21)
        expect(error.chain[20]).toBe(`${server.origin}/hop/20/21`)
        expect(server.seen).toHaveLength(21 + 21)
      }))

    live("Authorization and Cookie are dropped when the origin changes, kept when it does not", () =>
      Effect.gen(function*() {
        const other = yield* serve((_req, res) => ok(res))
        const server = yield* serve((req, res) =>
          req.path === "/same" ? redirect(res, 302, "/final") : redirect(res, 302, `${other.origin}/final`)
        )
        const request = (path: string) =>
          HttpClientRequest.get(`${server.origin}${path}`).pipe(
            HttpClientRequest.setHeaders({ authorization: "Bearer secret", cookie: "s=1", "x-trace": "t", "last-event-id": "7" })
          )
        yield* follow(request("/same"), undefined, true)
        expect(server.seen[1]!.headers).toMatchObject({ authorization: "Bearer secret", cookie: "s=1", "x-trace": "t" })
        const followed = yield* follow(request("/cross"), undefined, true)
        expect(followed.url).toBe(`${other.origin}/final`)
        const crossed = other.seen[0]!.headers
        expect(crossed.authorization).toBeUndefined()
        expect(crossed.cookie).toBeUndefined()
        expect(crossed).toMatchObject({ "x-trace": "t", "last-event-id": "7" })
      }))

    live("a 3xx without a usable Location is a typed error", () =>
      Effect.gen(function*() {
        const server = yield* serve((req, res) =>
          req.path === "/none" ? res.writeHead(302).end() : redirect(res, 302, "ftp://127.0.0.1/x")
        )
        const none = yield* failure(follow(HttpClientRequest.get(`${server.origin}/none`)))
        expect(none).toMatchObject({ _tag: "SseRedirectError", reason: "noLocation", status: 302 })
        const bad = yield* failure(follow(HttpClientRequest.get(`${server.origin}/bad`)))
        expect(bad).toMatchObject({ _tag: "SseRedirectError", reason: "badLocation", location: "ftp://127.0.0.1/x" })
      }))

    live("a redirect's own request is aborted once it is followed, even if its body never ends", () =>
      Effect.gen(function*() {
        const server = yield* serve((req, res) => {
          if (req.path === "/final") return void res.writeHead(200).write("open")
          res.writeHead(302, { location: "/final" }).write("a body that never ends")
        })
        const followed = yield* follow(HttpClientRequest.get(`${server.origin}/start`))
        expect(followed.response.status).toBe(200)
        yield* Effect.sleep("200 millis")
        expect(server.seen.map((r) => r.closed)).toEqual([true, false])
      }))

    live("each hop is bounded by the execute wrapper: a hop that never answers times out", () =>
      Effect.gen(function*() {
        const slow = (res: Http.ServerResponse, then: () => void) => setTimeout(() => !res.destroyed && then(), 350)
        const server = yield* serve((req, res) => {
          if (req.path === "/hang") return // never answers
          if (req.path === "/slow-a") return slow(res, () => redirect(res, 302, "/slow-b"))
          slow(res, () => ok(res))
        })
        // Two hops of 350 ms each pass a 600 ms bound per hop, though together they take longer.
        const passed = yield* follow(HttpClientRequest.get(`${server.origin}/slow-a`), "600 millis")
        expect(passed.chain).toHaveLength(2)
        const hang = yield* serve((_req, res) => redirect(res, 302, `${server.origin}/hang`))
        const started = Date.now()
        const error = yield* failure(follow(HttpClientRequest.get(`${hang.origin}/start`), "600 millis", true))
        expect(error._tag).toBe("HopTimeout")
        expect(Date.now() - started).toBeLessThan(2_000)
        yield* Effect.sleep("100 millis")
        expect(server.seen[server.seen.length - 1]).toMatchObject({ path: "/hang", closed: true })
      }))
  })
)

describe("Redirect.follow on FetchHttpClient", () => {
  it.scopedLive("keeps the caller's RequestInit and only sets redirect to manual", () =>
    Effect.gen(function*() {
      const server = yield* serve((req, res) => req.path === "/a" ? redirect(res, 302, "/b") : ok(res))
      const followed = yield* follow(HttpClientRequest.get(`${server.origin}/a`)).pipe(
        Effect.provideService(FetchHttpClient.RequestInit, { headers: { "x-from-init": "yes" }, redirect: "follow" })
      )
      expect(followed.chain).toHaveLength(2)
      expect(server.seen.map((r) => r.headers["x-from-init"])).toEqual(["yes", "yes"])
    }).pipe(Effect.provide(FetchHttpClient.layer)))

  it.scopedLive("asks fetch for no caching (cache: no-store, so fetch adds its own Cache-Control), unless the caller chose", () =>
    Effect.gen(function*() {
      const server = yield* serve((req, res) => req.path === "/a" ? redirect(res, 302, "/b") : ok(res))
      yield* follow(HttpClientRequest.get(`${server.origin}/a`))
      expect(server.seen.map((r) => [r.headers["cache-control"], r.headers["pragma"]])).toEqual([
        ["no-cache", "no-cache"],
        ["no-cache", "no-cache"]
      ])
      yield* follow(HttpClientRequest.get(`${server.origin}/b`)).pipe(
        Effect.provideService(FetchHttpClient.RequestInit, { cache: "default" })
      )
      expect(server.seen[2]!.headers["cache-control"]).toBeUndefined()
    }).pipe(Effect.provide(FetchHttpClient.layer)))

  /** A status-0 answer of this web Response type, as only a browser's fetch makes them. */
  const opaque = (type: "opaqueredirect" | "opaque"): Response =>
    Object.defineProperty(Response.error(), "type", { value: type })

  /**
   * Node's fetch as a browser's behaves under `redirect: "manual"`: every 3xx
   * becomes an opaque-redirect answer of status 0 (Chromium itself: test/Browser.test.ts).
   */
  const browserLikeFetch: typeof globalThis.fetch = async (input, init) => {
    const response = await globalThis.fetch(input, init)
    return init?.redirect === "manual" && Redirect.isRedirect(response.status) ? opaque("opaqueredirect") : response
  }

  it.scopedLive("a hidden redirect counts against maxRedirects: with 0 it fails tooMany instead of letting the browser follow", () =>
    Effect.gen(function*() {
      const server = yield* serve((req, res) => req.path === "/old" ? redirect(res, 307, "/events") : ok(res))
      const client = yield* HttpClient.HttpClient
      const error = yield* failure(Redirect.follow(HttpClientRequest.get(`${server.origin}/old`), {
        maxRedirects: 0,
        execute: (hop) => client.execute(hop)
      }))
      expect(error).toMatchObject({ _tag: "SseRedirectError", reason: "tooMany", status: 0, chain: [`${server.origin}/old`] })
      expect(server.seen.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /old"])
      // One allowed: the browser follows.
      const followed = yield* Redirect.follow(HttpClientRequest.get(`${server.origin}/old`), {
        maxRedirects: 1,
        execute: (hop) => client.execute(hop)
      })
      expect(followed.response.status).toBe(200)
    }).pipe(Effect.provide(FetchHttpClient.layer), Effect.provideService(FetchHttpClient.Fetch, browserLikeFetch)))

  it.scopedLive("an opaque no-cors answer (status 0 too) is the answer, not a hidden redirect: sent once", () =>
    Effect.gen(function*() {
      const server = yield* serve((_, res) => ok(res))
      const noCors: typeof globalThis.fetch = async (input, init) => {
        await (await globalThis.fetch(input, init)).arrayBuffer()
        return opaque("opaque")
      }
      const followed = yield* follow(HttpClientRequest.get(`${server.origin}/events`)).pipe(
        Effect.provideService(FetchHttpClient.Fetch, noCors)
      )
      expect(followed.response.status).toBe(0)
      expect(server.seen).toHaveLength(1)
    }).pipe(Effect.provide(FetchHttpClient.layer)))

  it.scopedLive("a redirect fetch hides (a browser's) is sent again for fetch to follow, for a safe method only", () =>
    Effect.gen(function*() {
      const server = yield* serve((req, res) => req.path === "/old" ? redirect(res, 307, "/events") : ok(res))
      const followed = yield* follow(HttpClientRequest.get(`${server.origin}/old`))
      expect(followed.response.status).toBe(200)
      expect(yield* followed.response.text).toBe("ok")
      expect(server.seen.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /old", "GET /old", "GET /events"])

      const error = yield* failure(follow(HttpClientRequest.post(`${server.origin}/old`).pipe(
        HttpClientRequest.bodyText("{}", "application/json")
      )))
      expect(error).toMatchObject({ _tag: "SseRedirectError", reason: "hidden", status: 0 })
      expect(error.message).toContain("not sent a second time")
      // The POST was sent once, never resent.
      expect(server.seen.filter((r) => r.method === "POST")).toHaveLength(1)
    }).pipe(Effect.provide(FetchHttpClient.layer), Effect.provideService(FetchHttpClient.Fetch, browserLikeFetch)))

})

describe("Redirect.follow, scripted", () => {
  /** Answers every request with `status` and Location /next, except /next: 200. */
  const scriptedClient = (status: number) => {
    const requested: Array<string> = []
    const client = HttpClient.make((request) =>
      Effect.sync(() => {
        requested.push(`${request.method} ${request.url}`)
        const answer = request.url.endsWith("/next") ? new Response("ok") : new Response(null, {
          status,
          headers: { location: "/next" }
        })
        return HttpClientResponse.fromWeb(request, answer)
      })
    )
    return { requested, execute: (request: HttpClientRequest.HttpClientRequest) => client.execute(request) }
  }
  const streamed = HttpClientRequest.post("http://scripted.test/start").pipe(
    HttpClientRequest.bodyStream(Stream.make(new TextEncoder().encode("once")))
  )

  it.scoped("a streamed body cannot be sent twice: 307 on it is a typed error, 303 drops it", () =>
    Effect.gen(function*() {
      const temporary = scriptedClient(307)
      const error = yield* failure(Redirect.follow(streamed, { execute: temporary.execute }))
      expect(error).toMatchObject({ _tag: "SseRedirectError", reason: "bodyNotReplayable", status: 307 })
      expect(temporary.requested).toEqual(["POST http://scripted.test/start"])
      const seeOther = scriptedClient(303)
      const followed = yield* Redirect.follow(streamed, { execute: seeOther.execute })
      expect(followed.url).toBe("http://scripted.test/next")
      expect(seeOther.requested).toEqual(["POST http://scripted.test/start", "GET http://scripted.test/next"])
    }))
})

const sse = (res: Http.ServerResponse) =>
  res.writeHead(200, { "content-type": "text/event-stream" }).end("id: 1\ndata: x\n\n")

/** The caller's client, adding a token and a cookie to every request it sends, as `mapRequest` does. */
const withCredentials = <E, R>(layer: Layer.Layer<HttpClient.HttpClient, E, R>) =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.map(
      HttpClient.HttpClient,
      HttpClient.mapRequest((request) =>
        request.pipe(HttpClientRequest.bearerToken("secret"), HttpClientRequest.setHeader("cookie", "s=1"))
      )
    )
  ).pipe(Layer.provide(layer))

/** The first event of a stream from `url`, or its failure; one attempt. */
const firstEvent = (url: string, options: SseClient.Options = {}) =>
  SseClient.stream(HttpClientRequest.get(url), { maxAttempts: 1, ...options }).pipe(
    Stream.take(1),
    Stream.runCollect,
    Effect.map(Chunk.map((event) => event.id)),
    Effect.either
  )

layers.forEach(([name, layer]) =>
  describe(`SseClient redirects on ${name} (issue 19)`, () => {
    const live = <A, E>(title: string, body: () => Effect.Effect<A, E, HttpClient.HttpClient | Scope.Scope>) =>
      it.scopedLive(title, () => Effect.provide(body(), withCredentials(layer)))

    live("a redirect to another origin is refused by default: nothing reaches it, not even the client's own credentials", () =>
      Effect.gen(function*() {
        const other = yield* serve((_req, res) => sse(res))
        const server = yield* serve((_req, res) => redirect(res, 307, `${other.origin}/events`))
        const result = yield* firstEvent(`${server.origin}/events`, {
          headers: Effect.succeed({ "x-api-key": "k" })
        })
        expect(result).toMatchObject({
          _tag: "Left",
          left: { _tag: "SseRedirectError", reason: "crossOrigin", chain: [`${server.origin}/events`, `${other.origin}/events`] }
        })
        expect(other.seen).toEqual([])
        // The first origin got the credentials meant for it.
        expect(server.seen[0]!.headers).toMatchObject({ authorization: "Bearer secret", cookie: "s=1" })
      }))

    live("opted in (crossOriginRedirects): the other origin gets no Authorization or Cookie, whoever added them", () =>
      Effect.gen(function*() {
        const other = yield* serve((_req, res) => sse(res))
        const server = yield* serve((req, res) =>
          req.path === "/same" ? redirect(res, 307, "/events") : redirect(res, 307, `${other.origin}/events`)
        )
        const request = HttpClientRequest.get(`${server.origin}/start`).pipe(
          HttpClientRequest.setHeaders({ "proxy-authorization": "Basic p", "x-trace": "t" })
        )
        const events = yield* SseClient.stream(request, {
          crossOriginRedirects: true,
          maxAttempts: 1,
          headers: Effect.succeed({ authorization: "Bearer from-headers", cookie: "h=1" })
        }).pipe(Stream.take(1), Stream.runCollect)
        expect(Chunk.toReadonlyArray(events).map((e) => e.id)).toEqual(["1"])
        const crossed = other.seen[0]!.headers
        expect(crossed.authorization).toBeUndefined()
        expect(crossed.cookie).toBeUndefined()
        expect(crossed["proxy-authorization"]).toBeUndefined()
        expect(crossed["x-trace"]).toBe("t")
        // A same-origin hop keeps them: the client's mapping added them again, for the origin they are for.
        yield* firstEvent(`${server.origin}/same`, { crossOriginRedirects: true })
        expect(server.seen.at(-1)).toMatchObject({ path: "/events" })
        expect(server.seen.at(-1)!.headers).toMatchObject({ authorization: "Bearer secret", cookie: "s=1" })
      }))

    live("a scheme change alone (http to https, same host and port) is another origin: refused before connecting", () =>
      Effect.gen(function*() {
        // Its own host and port, over https.
        const server = yield* serve((req, res) => redirect(res, 302, `https://${req.headers.host}/events`))
        const result = yield* firstEvent(`${server.origin}/old`)
        expect(result).toMatchObject({
          _tag: "Left",
          left: { _tag: "SseRedirectError", reason: "crossOrigin", chain: [`${server.origin}/old`, `${server.origin.replace("http:", "https:")}/events`] }
        })
        // Refused before connecting: no TLS handshake reached the server.
        expect(server.seen).toHaveLength(1)
      }))

    live("a fetch of the caller's may add any header: a cross-origin hop through one is refused even when opted in", () =>
      Effect.gen(function*() {
        const other = yield* serve((_req, res) => sse(res))
        const server = yield* serve((_req, res) => redirect(res, 307, `${other.origin}/events`))
        // An EventSource-style wrapper (the `eventsource` package's `fetch` option) adding the token.
        const withToken: typeof globalThis.fetch = (input, init) =>
          globalThis.fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: "Bearer wrapped" } })
        for (const crossOriginRedirects of [false, true]) {
          const result = yield* firstEvent(`${server.origin}/events`, { crossOriginRedirects }).pipe(
            Effect.provideService(FetchHttpClient.Fetch, withToken)
          )
          expect(result).toMatchObject({ _tag: "Left", left: { _tag: "SseRedirectError", reason: "crossOrigin" } })
        }
        expect(other.seen).toEqual([])
      }))

    live("a POST answered 303 to its own URL is followed by a GET there, not taken for a loop", () =>
      Effect.gen(function*() {
        const server = yield* serve((req, res) => req.method === "POST" ? redirect(res, 303, req.path) : sse(res))
        const request = HttpClientRequest.post(`${server.origin}/events`).pipe(HttpClientRequest.bodyText("{}", "application/json"))
        const events = yield* SseClient.stream(request, { maxAttempts: 1 }).pipe(Stream.take(1), Stream.runCollect)
        expect(Chunk.toReadonlyArray(events).map((e) => e.id)).toEqual(["1"])
        expect(server.seen.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /events", "GET /events"])
      }))

    live("Cache-Control: no-cache is sent on every hop (a caller's own value stands)", () =>
      Effect.gen(function*() {
        const server = yield* serve((req, res) => req.path === "/old" ? redirect(res, 307, "/events") : sse(res))
        yield* firstEvent(`${server.origin}/old`)
        expect(server.seen.map((r) => r.headers["cache-control"])).toEqual(["no-cache", "no-cache"])
        const own = HttpClientRequest.get(`${server.origin}/events`).pipe(HttpClientRequest.setHeader("cache-control", "max-age=0"))
        yield* SseClient.stream(own, { maxAttempts: 1 }).pipe(Stream.take(1), Stream.runDrain)
        expect(server.seen[2]!.headers["cache-control"]).toBe("max-age=0")
      }))
  })
)

layers.forEach(([name, layer]) =>
  describe(`SseClient on ${name}: a server that cannot be reached (issue 19)`, () => {
    it.scopedLive("connectAttempts: 1 fails at once, naming the cause; onConnection is told it too", () =>
      Effect.gen(function*() {
        const causes: Array<string> = []
        // A port just freed: nothing listens (fetch refuses port 1 itself, as a "bad port").
        const free = yield* Effect.scoped(serve((_req, res) => ok(res)))
        const refused = `${free.origin}/events`
        const address = free.origin.slice("http://".length)
        const started = Date.now()
        const error = yield* SseClient.stream(HttpClientRequest.get(refused), {
          maxAttempts: 5,
          connectAttempts: 1,
          initialDelay: "5 seconds",
          onConnection: (status) => Effect.sync(() => status.state === "reconnecting" && causes.push(status.cause))
        }).pipe(Stream.runDrain, Effect.flip)
        expect(error).toMatchObject({ _tag: "SseRetriesExhausted", attempts: 1 })
        if (error._tag !== "SseRetriesExhausted") return
        expect(error.lastCause).toContain(`ECONNREFUSED ${address}`)
        expect(error.message).toContain(`ECONNREFUSED ${address}`)
        // No backoff waited: the first refusal ended it.
        expect(Date.now() - started).toBeLessThan(4_000)
        // With the default (maxAttempts), the hook hears each refusal, in words.
        const second = yield* SseClient.stream(HttpClientRequest.get(refused), {
          maxAttempts: 2,
          initialDelay: "5 millis",
          onConnection: (status) => Effect.sync(() => status.state === "reconnecting" && causes.push(status.cause))
        }).pipe(Stream.runDrain, Effect.flip)
        expect(second).toMatchObject({ _tag: "SseRetriesExhausted", attempts: 2 })
        expect(causes).toHaveLength(1)
        expect(causes[0]).toContain(`ECONNREFUSED ${address}`)
      }).pipe(Effect.provide(layer)))
  })
)

describe("SseClient on FetchHttpClient: no Cache-Control of ours (issue 19)", () => {
  it.scopedLive("fetch adds its own after its CORS check (cache: no-store); with another cache mode, none is sent", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => sse(res))
      yield* firstEvent(`${server.origin}/events`).pipe(
        Effect.provideService(FetchHttpClient.RequestInit, { cache: "default" })
      )
      expect(server.seen[0]!.headers["cache-control"]).toBeUndefined()
    }).pipe(Effect.provide(FetchHttpClient.layer)))
})

describe("Redirect.follow, https to http (scripted: a TLS server adds nothing to the origin rule)", () => {
  /** Answers https://site.test/start with a 307 to the same host and port over http. */
  const downgrade = () => {
    const hops: Array<{ readonly url: string; readonly crossOrigin: boolean }> = []
    const client = HttpClient.make((request) =>
      Effect.sync(() =>
        HttpClientResponse.fromWeb(
          request,
          request.url.startsWith("https:")
            ? new Response(null, { status: 307, headers: { location: "http://site.test/events" } })
            : new Response("ok")
        )
      )
    )
    return {
      hops,
      execute: (request: HttpClientRequest.HttpClientRequest, hop: Redirect.Hop) => {
        hops.push({ url: request.url, crossOrigin: hop.crossOrigin })
        return client.execute(request)
      }
    }
  }

  it.scoped("refused by default; opted in, the hop is sent as a cross-origin one (without credentials)", () =>
    Effect.gen(function*() {
      const refused = downgrade()
      const error = yield* failure(Redirect.follow(HttpClientRequest.get("https://site.test/start"), { execute: refused.execute }))
      expect(error).toMatchObject({ _tag: "SseRedirectError", reason: "crossOrigin" })
      expect(refused.hops).toEqual([{ url: "https://site.test/start", crossOrigin: false }])
      const allowed = downgrade()
      yield* Redirect.follow(HttpClientRequest.get("https://site.test/start"), { execute: allowed.execute, crossOrigin: true })
      expect(allowed.hops).toEqual([
        { url: "https://site.test/start", crossOrigin: false },
        { url: "http://site.test/events", crossOrigin: true }
      ])
    }))
})
