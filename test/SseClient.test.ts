import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import type * as HttpClient from "@effect/platform/HttpClient"
import { Chunk, ConfigProvider, Duration, Effect, Either, Fiber, Option, type Scope, Stream } from "effect"
import * as EventTracker from "../src/EventTracker.js"
import * as SseClient from "../src/SseClient.js"
import type { SseEvent } from "../src/SseEvent.js"
import * as SseServer from "./support/SseServer.js"

const fast = { initialDelay: "5 millis", maxDelay: "20 millis" } as const

const ids = (events: Chunk.Chunk<SseEvent>) => Chunk.toReadonlyArray(events).map((e) => e.id)

const collect = <E, R>(stream: Stream.Stream<SseEvent, E, R>) => Stream.runCollect(stream).pipe(Effect.map(ids))

/** Real time and a real HTTP client: these tests talk to a loopback server. */
const live = <A, E>(name: string, body: () => Effect.Effect<A, E, HttpClient.HttpClient | Scope.Scope>) =>
  it.scopedLive(name, () => Effect.provide(body(), NodeHttpClient.layerUndici))

describe("SseClient over loopback", () => {
  live("sends Last-Event-ID after a dropped connection and resumes", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make(async (_req, res, n) => {
        if (n === 3) return void res.writeHead(204).end()
        res.writeHead(200, SseServer.sseHeaders)
        if (n === 1) {
          await SseServer.write(res, "id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: cut-mi")
          SseServer.cut(res)
        } else {
          // Replays from the id it was given, with overlap.
          await SseServer.write(res, "id: 2\ndata: b\n\nid: 3\ndata: c\n\n")
          res.end()
        }
      })
      const events = yield* collect(SseClient.stream(HttpClientRequest.get(server.url), fast))
      expect(events).toEqual(["1", "2", "3"])
      expect(server.requests.map((r) => r.headers["last-event-id"])).toEqual([undefined, "2", "3"])
      expect(server.requests[0]!.headers.accept).toBe("text/event-stream")
    }))

  live("an id beyond ASCII is resumed with its UTF-8 bytes, as browsers send it", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make(async (_req, res, n) => {
        if (n === 2) return void res.writeHead(204).end()
        res.writeHead(200, SseServer.sseHeaders)
        await SseServer.write(res, "id: café-☕-1\ndata: a\n\n")
        res.end()
      })
      const events = yield* collect(SseClient.stream(HttpClientRequest.get(server.url), fast))
      expect(events).toEqual(["café-☕-1"])
      // node:http hands header bytes over as latin1; decoded as UTF-8 they are the id.
      const sent = server.requests[1]!.headers["last-event-id"] as string
      expect(Buffer.from(sent, "latin1").toString("utf8")).toBe("café-☕-1")
    }))

  live("a Retry-After longer than maxRetryAfter waits only maxRetryAfter", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n === 1) return void res.writeHead(429, { "retry-after": "86400" }).end()
        res.writeHead(204).end()
      })
      yield* Stream.runDrain(SseClient.stream(HttpClientRequest.get(server.url), { ...fast, maxRetryAfter: "200 millis" }))
      const [first, second] = server.requests
      expect(second!.at - first!.at).toBeGreaterThanOrEqual(190)
      expect(second!.at - first!.at).toBeLessThan(5_000)
    }))

  live("an empty id: clears the Last-Event-ID buffer", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n === 2) return void res.writeHead(204).end()
        res.writeHead(200, SseServer.sseHeaders)
        res.end("id: 7\ndata: a\n\nid:\ndata: b\n\n")
      })
      const events = yield* collect(SseClient.stream(HttpClientRequest.get(server.url), fast))
      expect(events).toEqual(["7", ""])
      expect(server.requests[1]!.headers["last-event-id"]).toBeUndefined()
    }))

  live("starts from a restored tracker's lastEventId, or an explicit one", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res) => void res.writeHead(204).end())
      const tracker = yield* EventTracker.make({ maxTracked: 10 })
      yield* tracker.restore({ lastEventId: Option.some("41"), recentIds: ["40", "41"] })
      yield* Stream.runDrain(SseClient.stream(HttpClientRequest.get(server.url), { tracker }))
      yield* Stream.runDrain(SseClient.stream(HttpClientRequest.get(server.url), { lastEventId: "99" }))
      expect(server.requests.map((r) => r.headers["last-event-id"])).toEqual(["41", "99"])
    }))

  live("drops events the tracker has seen and passes on events without id", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n === 2) return void res.writeHead(204).end()
        res.writeHead(200, SseServer.sseHeaders)
        res.end("id: 40\ndata: old\n\ndata: no-id\n\nid: 41\ndata: old\n\nid: 42\ndata: new\n\n")
      })
      const tracker = yield* EventTracker.make({ maxTracked: 10 })
      yield* tracker.restore({ lastEventId: Option.some("41"), recentIds: ["40", "41"] })
      const events = yield* Stream.runCollect(SseClient.stream(HttpClientRequest.get(server.url), { ...fast, tracker }))
      expect(Chunk.toReadonlyArray(events).map((e) => e.data)).toEqual(["no-id", "new"])
      expect(yield* tracker.lastEventId).toEqual(Option.some("42"))
    }))

  live("waits at least the server's retry: before reconnecting", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n === 2) return void res.writeHead(204).end()
        res.writeHead(200, SseServer.sseHeaders)
        res.end("retry: 300\n\nid: 1\ndata: a\n\n")
      })
      yield* Stream.runDrain(SseClient.stream(HttpClientRequest.get(server.url), fast))
      const [first, second] = server.requests
      expect(second!.at - first!.at).toBeGreaterThanOrEqual(290)
    }))

  live("204 ends the stream without reconnecting", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res) => void res.writeHead(204).end())
      const events = yield* collect(SseClient.stream(HttpClientRequest.get(server.url), fast))
      expect(events).toEqual([])
      expect(server.requests.length).toBe(1)
    }))

  live("a 4xx other than 408 and 429 is fatal", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res) => void res.writeHead(401).end())
      const result = yield* Effect.either(collect(SseClient.stream(HttpClientRequest.get(server.url), fast)))
      expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "SseHttpError", status: 401, attempt: 1 })
      expect(server.requests.length).toBe(1)
    }))

  live("503 with Retry-After waits that long", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n === 1) return void res.writeHead(503, { "retry-after": "1" }).end()
        res.writeHead(204).end()
      })
      yield* Stream.runDrain(SseClient.stream(HttpClientRequest.get(server.url), fast))
      const [first, second] = server.requests
      expect(second!.at - first!.at).toBeGreaterThanOrEqual(990)
    }))

  live("429, 408 and 5xx are retried", () =>
    Effect.gen(function*() {
      const statuses = [429, 408, 500, 502]
      const server = yield* SseServer.make((_req, res, n) => {
        if (n <= statuses.length) return void res.writeHead(statuses[n - 1]!).end()
        res.writeHead(204).end()
      })
      yield* Stream.runDrain(SseClient.stream(HttpClientRequest.get(server.url), fast))
      expect(server.requests.length).toBe(5)
    }))

  live("a non-event-stream content type is fatal", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res) => void res.writeHead(200, { "content-type": "text/html" }).end("<p>"))
      const result = yield* Effect.either(collect(SseClient.stream(HttpClientRequest.get(server.url), fast)))
      expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "SseContentTypeError", contentType: "text/html" })
    }))

  live("runs the headers Effect before every attempt; sends method and body", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n === 3) return void res.writeHead(204).end()
        res.writeHead(500).end()
      })
      let token = 0
      const headers = Effect.sync(() => ({ authorization: `Bearer ${++token}` }))
      const request = HttpClientRequest.post(server.url).pipe(HttpClientRequest.bodyText("{\"q\":1}", "application/json"))
      yield* Stream.runDrain(SseClient.stream(request, { ...fast, headers }))
      expect(server.requests.map((r) => r.headers.authorization)).toEqual(["Bearer 1", "Bearer 2", "Bearer 3"])
      expect(server.requests.map((r) => [r.method, r.body])).toEqual(Array(3).fill(["POST", "{\"q\":1}"]))
    }))

  live("fails with SseRetriesExhausted after maxAttempts attempts without a new event", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n % 2 === 1) return void res.writeHead(500).end()
        // A graceful close that delivers nothing new does not reset the budget.
        res.writeHead(200, SseServer.sseHeaders)
        res.end(": idle\n\nid: 1\ndata: replayed\n\n")
      })
      const tracker = yield* EventTracker.make({ maxTracked: 10 })
      yield* tracker.restore({ lastEventId: Option.some("1"), recentIds: ["1"] })
      const result = yield* Effect.either(
        collect(SseClient.stream(HttpClientRequest.get(server.url), { ...fast, tracker, maxAttempts: 4 }))
      )
      expect(Either.isLeft(result) && result.left).toMatchObject({
        _tag: "SseRetriesExhausted",
        attempts: 4,
        last: { reason: "closed", attempt: 4 }
      })
      expect(server.requests.length).toBe(4)
    }))

  live("an attempt that delivers a new event resets the budget", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n === 10) return void res.writeHead(204).end()
        if (n % 3 !== 0) return void res.writeHead(503).end()
        res.writeHead(200, SseServer.sseHeaders)
        res.end(`id: ${n}\ndata: x\n\n`)
      })
      const events = yield* collect(SseClient.stream(HttpClientRequest.get(server.url), { ...fast, maxAttempts: 3 }))
      expect(events).toEqual(["3", "6", "9"])
    }))

  live("reconnects when no byte arrives within idleTimeout", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n === 3) return void res.writeHead(204).end()
        res.writeHead(200, SseServer.sseHeaders)
        // Keeps the connection open and silent.
        res.write(`id: ${n}\ndata: x\n\n`)
      })
      const events = yield* collect(
        SseClient.stream(HttpClientRequest.get(server.url), { ...fast, idleTimeout: "150 millis" })
      )
      expect(events).toEqual(["1", "2"])
      expect(server.requests.map((r) => r.headers["last-event-id"])).toEqual([undefined, "1", "2"])
      // The silent connection was closed by the client, not left hanging.
      yield* Effect.sleep("50 millis")
      expect(server.requests[0]!.closedAt).toBeDefined()
    }))

  live("a consumer slower than idleTimeout is not mistaken for a silent server", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res) => {
        res.writeHead(200, SseServer.sseHeaders)
        res.write("id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: c\n\n")
      })
      const events = yield* SseClient.stream(HttpClientRequest.get(server.url), { ...fast, idleTimeout: "100 millis" }).pipe(
        Stream.rechunk(1),
        Stream.tap(() => Effect.sleep("150 millis")),
        Stream.take(3),
        Stream.runCollect
      )
      expect(ids(events)).toEqual(["1", "2", "3"])
      expect(server.requests.length).toBe(1)
    }))

  it.scopedLive("idle timeout also covers a server that never answers, on node:http too", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n === 2) return void res.writeHead(204).end()
        // Never answers the first request.
      })
      const reasons: Array<string> = []
      yield* Stream.runDrain(SseClient.stream(HttpClientRequest.get(server.url), {
        ...fast,
        idleTimeout: "150 millis",
        onConnection: (s) => Effect.sync(() => s.state === "reconnecting" && reasons.push(s.reason))
      }))
      expect(reasons).toEqual(["idle"])
      yield* Effect.sleep("50 millis")
      expect(server.requests[0]!.closedAt).toBeDefined()
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  live("an oversized event fails cleanly without reconnecting", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make(async (_req, res) => {
        res.writeHead(200, SseServer.sseHeaders)
        await SseServer.write(res, "id: 1\ndata: ok\n\n")
        const block = "data: " + "x".repeat(64 * 1024) + "\n"
        for (let i = 0; i < 64 && !res.destroyed; i++) await SseServer.write(res, block)
        res.end("\n")
      })
      const seen: Array<string | undefined> = []
      const result = yield* SseClient.stream(HttpClientRequest.get(server.url), { ...fast, maxEventBytes: 1 << 20 }).pipe(
        Stream.runForEach((e) => Effect.sync(() => seen.push(e.id))),
        Effect.either
      )
      expect(seen).toEqual(["1"])
      expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "SseEventTooLarge", maxEventBytes: 1 << 20 })
      expect(server.requests.length).toBe(1)
    }))

  live("interrupting the stream closes the connection at once", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res) => {
        res.writeHead(200, SseServer.sseHeaders)
        res.write("id: 1\ndata: a\n\n")
      })
      const fiber = yield* Effect.fork(Stream.runDrain(SseClient.stream(HttpClientRequest.get(server.url), fast)))
      while (server.requests.length === 0) yield* Effect.sleep("5 millis")
      yield* Effect.sleep("20 millis")
      const before = performance.now()
      yield* Fiber.interrupt(fiber)
      yield* Effect.sleep("50 millis")
      const closedAt = server.requests[0]!.closedAt
      expect(closedAt).toBeDefined()
      expect(closedAt! - before).toBeLessThan(50)
    }))

  live("reports connection changes to onConnection", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n === 1) return void res.writeHead(503).end()
        if (n === 3) return void res.writeHead(204).end()
        res.writeHead(200, SseServer.sseHeaders)
        res.end("id: 1\ndata: a\n\n")
      })
      const seen: Array<SseClient.ConnectionStatus> = []
      yield* Stream.runDrain(SseClient.stream(HttpClientRequest.get(server.url), {
        ...fast,
        onConnection: (status) => Effect.sync(() => seen.push(status))
      }))
      expect(seen.map((s) => s.state === "reconnecting" ? [s.state, s.reason, s.status] : [s.state, s.attempt])).toEqual([
        ["connecting", 1],
        ["reconnecting", "status", 503],
        ["connecting", 2],
        ["connected", 2],
        ["reconnecting", "closed", undefined],
        ["connecting", 3]
      ])
      expect(seen[4]).toMatchObject({ state: "reconnecting", attempt: 2 })
      expect(seen[5]).toMatchObject({ lastEventId: "1" })
    }))

  live("a slow consumer slows the read: the server's writes back up", () =>
    Effect.gen(function*() {
      let written = 0
      let blocked = false
      const server = yield* SseServer.make(async (_req, res) => {
        res.writeHead(200, SseServer.sseHeaders)
        const event = `data: ${"z".repeat(1000)}\n\n`
        for (let i = 0; i < 100_000 && !res.destroyed; i++) {
          written++
          if (!res.write(`id: ${i}\n${event}`)) {
            blocked = true
            await new Promise((resolve) => res.once("drain", resolve))
          }
        }
      })
      const taken = yield* SseClient.stream(HttpClientRequest.get(server.url), fast).pipe(
        Stream.tap(() => Effect.sleep("2 millis")),
        Stream.take(50),
        Stream.runCount
      )
      expect(taken).toBe(50)
      expect(blocked).toBe(true)
      // Socket and parser buffers hold some events, never the whole stream.
      expect(written).toBeLessThan(20_000)
    }))
})

describe("SseClient.config", () => {
  it.effect("reads defaults and the environment", () =>
    Effect.gen(function*() {
      const defaults = yield* SseClient.config
      expect(defaults.maxAttempts).toBe(10)
      expect(defaults.maxEventBytes).toBe(10 * 1024 * 1024)
      const fromEnv = yield* Effect.withConfigProvider(
        SseClient.config,
        ConfigProvider.fromMap(new Map([["SSE_IDLE_TIMEOUT", "15 seconds"], ["SSE_MAX_ATTEMPTS", "3"]]))
      )
      expect(Duration.toMillis(fromEnv.idleTimeout)).toBe(15_000)
      expect(fromEnv.maxAttempts).toBe(3)
      for (const [name, value] of [["SSE_IDLE_TIMEOUT", "0 seconds"], ["SSE_MAX_ATTEMPTS", "0"], ["SSE_MAX_EVENT_BYTES", "-1"], ["SSE_MAX_TRACKED", "0"]]) {
        const invalid = yield* Effect.withConfigProvider(SseClient.config, ConfigProvider.fromMap(new Map([[name!, value!]]))).pipe(Effect.either)
        expect(Either.isLeft(invalid), name).toBe(true)
      }
    }))
})
