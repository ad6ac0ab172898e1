import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import type * as HttpClient from "@effect/platform/HttpClient"
import { Chunk, ConfigProvider, Duration, Effect, Either, Queue, type Scope, Stream } from "effect"
import * as EventTracker from "../src/client/EventTracker.js"
import * as SseClient from "../src/client/SseClient.js"
import { SettingsError } from "../src/Settings.js"
import type { SseEvent } from "../src/wire/SseEvent.js"
import * as SseServer from "./support/SseServer.js"

const fast = { initialDelay: "5 millis", maxDelay: "20 millis" } as const

const ids = (events: Chunk.Chunk<SseEvent>) => Chunk.toReadonlyArray(events).map((e) => e.id)

const collect = <E, R>(stream: Stream.Stream<SseEvent, E, R>) => Stream.runCollect(stream).pipe(Effect.map(ids))

/** Real time and a real HTTP client: these tests talk to a loopback server. */
const live = <A, E>(name: string, body: () => Effect.Effect<A, E, HttpClient.HttpClient | Scope.Scope>) =>
  it.scopedLive(name, () => Effect.provide(body(), NodeHttpClient.layerUndici))

describe("SseClient over loopback", () => {
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
      ).pipe(Effect.timeout("5 seconds"))
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

  live("a consumer slower than idleTimeout, on events arriving in separate writes, is not idle", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make(async (_req, res) => {
        res.writeHead(200, SseServer.sseHeaders)
        // Each event its own write, within idleTimeout of the one before (so
        // later events are still on their way while the consumer is busy with
        // the first); then the connection stays open.
        for (let n = 1; n <= 6 && !res.destroyed; n++) {
          await SseServer.write(res, `id: ${n}\ndata: x\n\n`)
          await new Promise((resolve) => setTimeout(resolve, 60))
        }
      })
      const events = yield* SseClient.stream(HttpClientRequest.get(server.url), { ...fast, idleTimeout: "100 millis" }).pipe(
        Stream.tap(() => Effect.sleep("250 millis")),
        Stream.take(6),
        Stream.runCollect
      )
      expect(ids(events)).toEqual(["1", "2", "3", "4", "5", "6"])
      expect(server.requests.length).toBe(1)
    }))

  live("an id with a control character ends the stream at once, before any futile reconnect", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res) => {
        res.writeHead(200, SseServer.sseHeaders)
        res.end("id: a\x01b\ndata: x\n\n")
      })
      const started = performance.now()
      const result = yield* Effect.either(collect(SseClient.stream(HttpClientRequest.get(server.url), fast)))
      expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "SseResumeIdError", lastEventId: "a\x01b" })
      expect(server.requests.length).toBe(1)
      expect(performance.now() - started).toBeLessThan(2_000)
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
      })).pipe(Effect.timeout("5 seconds"))
      expect(reasons).toEqual(["idle"])
      yield* Effect.sleep("50 millis")
      expect(server.requests[0]!.closedAt).toBeDefined()
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  it.scopedLive("follows a redirect on node:http too, and resumes through it", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n === 5) return void res.writeHead(204).end()
        if (n % 2 === 1) return void res.writeHead(302, { location: "/moved" }).end()
        res.writeHead(200, SseServer.sseHeaders)
        res.end(`id: ${n}\ndata: x\n\n`)
      })
      const events = yield* collect(SseClient.stream(HttpClientRequest.get(server.url), fast)).pipe(Effect.timeout("5 seconds"))
      expect(events).toEqual(["2", "4"])
      expect(server.requests.map((r) => r.headers["last-event-id"])).toEqual([undefined, undefined, "2", "2", "4"])
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

  live("a tracker callback failing partway through a read: the events before it are delivered, then the failure (found in review)", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res) => {
        res.writeHead(200, SseServer.sseHeaders)
        res.end("id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: c\n\nid: 4\ndata: d\n\n")
      })
      const persisted: Array<string> = []
      const tracker = yield* EventTracker.make({
        maxTracked: 10,
        onNewEventAsync: (id: string) => id === "3" ? Effect.fail("store down" as const) : Effect.sync(() => void persisted.push(id))
      })
      const seen: Array<string> = []
      const result = yield* SseClient.stream(HttpClientRequest.get(server.url), { ...fast, tracker }).pipe(
        Stream.runForEach((event) => Effect.sync(() => void seen.push(event.id!))),
        Effect.either
      )
      expect(result).toStrictEqual(Either.left("store down"))
      // 1 and 2 were recorded and their cursors persisted: they must have reached the consumer.
      expect(persisted).toStrictEqual(["1", "2"])
      expect(seen).toStrictEqual(["1", "2"])
    }))
  // Interrupt, idle abort and backpressure on each HTTP layer: test/SseClientBody.test.ts.
})

describe("SseClient POST streams and reconnectNow over loopback", () => {
  const postOf = (url: string) =>
    HttpClientRequest.post(url, { headers: { accept: "application/json, text/event-stream", "mcp-session-id": "s1" } }).pipe(
      HttpClientRequest.bodyText("{\"method\":\"tools/call\"}", "application/json")
    )
  /** Long enough for a wrongly re-sent request to reach the server. */
  const quiet = Effect.sleep("100 millis")

  live("a POST stream the server ends is done: the server received one request", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res) => {
        res.writeHead(200, SseServer.sseHeaders)
        res.end("id: 1\ndata: result\n\n")
      })
      const events = yield* collect(SseClient.stream(postOf(server.url), fast)).pipe(Effect.timeout("5 seconds"))
      expect(events).toEqual(["1"])
      yield* quiet
      expect(server.requests.map((r) => [r.method, r.body])).toEqual([["POST", "{\"method\":\"tools/call\"}"]])
    }))

  live("a POST cut mid-body fails with SseStreamDropped and its resume point: the server received one request", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make(async (_req, res) => {
        res.writeHead(200, SseServer.sseHeaders)
        await SseServer.write(res, "id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: cu")
        SseServer.cut(res)
      })
      const seen: Array<string | undefined> = []
      const result = yield* SseClient.stream(postOf(server.url), fast).pipe(
        Stream.runForEach((e) => Effect.sync(() => seen.push(e.id))),
        Effect.either,
        Effect.timeout("5 seconds")
      )
      expect(seen).toEqual(["1", "2"])
      expect(Either.isLeft(result) && result.left).toMatchObject({
        _tag: "SseStreamDropped",
        method: "POST",
        url: server.url,
        lastEventId: "2",
        reason: "transport"
      })
      yield* quiet
      expect(server.requests.length).toBe(1)
    }))

  live("resumeWith get: a cut POST is resumed by a GET with Last-Event-ID and no body; the close ends it", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make(async (req, res, n) => {
        if (n > 2) return void res.writeHead(500).end()
        res.writeHead(200, SseServer.sseHeaders)
        if (n === 1) {
          await SseServer.write(res, "id: 1\ndata: a\n\nid: 2\ndata: b\n\n")
          return SseServer.cut(res)
        }
        res.end(`${req.headers["last-event-id"] === "2" ? "id: 2\ndata: b\n\n" : ""}id: 3\ndata: result\n\n`)
      })
      const events = yield* collect(SseClient.stream(postOf(server.url), { ...fast, resumeWith: "get" })).pipe(
        Effect.timeout("5 seconds")
      )
      expect(events).toEqual(["1", "2", "3"])
      yield* quiet
      expect(server.requests.map((r) => [r.method, r.body, r.headers["last-event-id"]])).toEqual([
        ["POST", "{\"method\":\"tools/call\"}", undefined],
        ["GET", "", "2"]
      ])
      const resumed = server.requests[1]!.headers
      expect(resumed["content-type"]).toBeUndefined()
      expect(resumed["content-length"]).toBeUndefined()
      expect(resumed["mcp-session-id"]).toBe("s1")
    }))

  live("reconnectNow on a GET closes the open connection and reconnects at once, with Last-Event-ID", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n === 2) return void res.writeHead(204).end()
        res.writeHead(200, SseServer.sseHeaders)
        res.write("id: 1\ndata: a\n\n")
      })
      const requests = yield* Queue.unbounded<void>()
      let requestedAt = 0
      // A backoff of 2 s would show: the requested reconnect waits for none.
      const events = yield* SseClient.stream(HttpClientRequest.get(server.url), {
        initialDelay: "2 seconds",
        maxDelay: "2 seconds",
        reconnectNow: Stream.fromQueue(requests)
      }).pipe(
        Stream.tap(() => Effect.zipRight(Effect.sync(() => void (requestedAt = performance.now())), Queue.offer(requests, undefined))),
        Stream.runCollect,
        Effect.map(ids),
        Effect.timeout("5 seconds")
      )
      expect(events).toEqual(["1"])
      expect(server.requests.map((r) => r.headers["last-event-id"])).toEqual([undefined, "1"])
      expect(server.requests[1]!.at - requestedAt).toBeLessThan(500)
      expect(server.requests[0]!.closedAt).toBeDefined()
      expect(server.requests[0]!.closedAt!).toBeLessThan(server.requests[1]!.at + 50)
    }))
})

describe("SseClient gap notices (issue 21)", () => {
  const gap = (lastEventId: string, firstAvailable: string) =>
    `event: gap\ndata: ${JSON.stringify({ lastEventId, firstAvailable })}\n\n`
  /** Response 1: events 1 and 2; response 2 (resumed from 2): a gap notice first, then 7; then 204. */
  const gapServer = SseServer.make(async (_req, res, n) => {
    if (n === 3) return void res.writeHead(204).end()
    res.writeHead(200, SseServer.sseHeaders)
    await SseServer.write(res, n === 1 ? "id: 1\ndata: a\n\nid: 2\ndata: b\n\n" : `${gap("2", "7")}id: 7\ndata: g\n\n`)
    res.end()
  })

  live("by default a resumed response opening with a gap notice fails the stream with SseResumeGap", () =>
    Effect.gen(function*() {
      const server = yield* gapServer
      const seen: Array<string | undefined> = []
      const error = yield* SseClient.stream(HttpClientRequest.get(server.url), fast).pipe(
        Stream.runForEach((event) => Effect.sync(() => seen.push(event.id))),
        Effect.flip
      )
      expect(error).toBeInstanceOf(SseClient.SseResumeGap)
      expect(error).toMatchObject({ _tag: "SseResumeGap", lastEventId: "2", firstAvailable: "7" })
      expect(seen).toEqual(["1", "2"])
      expect(server.requests[1]!.headers["last-event-id"]).toBe("2")
      expect(server.requests).toHaveLength(2)
    }))

  live("onGap: \"emit\" hands the notice on as an event of type gap and goes on", () =>
    Effect.gen(function*() {
      const server = yield* gapServer
      const events = yield* Stream.runCollect(SseClient.stream(HttpClientRequest.get(server.url), { ...fast, onGap: "emit" }))
      expect(Chunk.toReadonlyArray(events).map((e) => [e.event, e.id, e.data])).toEqual([
        ["message", "1", "a"],
        ["message", "2", "b"],
        ["gap", undefined, JSON.stringify({ lastEventId: "2", firstAvailable: "7" })],
        ["message", "7", "g"]
      ])
    }))

  live("an event named gap elsewhere is an ordinary event: first in a fresh response, or after the first in a resumed one", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make(async (_req, res, n) => {
        if (n === 3) return void res.writeHead(204).end()
        res.writeHead(200, SseServer.sseHeaders)
        await SseServer.write(res, n === 1 ? `${gap("0", "1")}id: 1\ndata: a\n\n` : `id: 2\ndata: b\n\n${gap("1", "9")}`)
        res.end()
      })
      const events = yield* Stream.runCollect(SseClient.stream(HttpClientRequest.get(server.url), fast))
      expect(Chunk.toReadonlyArray(events).map((e) => e.event)).toEqual(["gap", "message", "message", "gap"])
      expect(server.requests.map((r) => r.headers["last-event-id"])).toEqual([undefined, "1", "2"])
    }))
})

describe("SseClient settings given in code", () => {
  live("a setting it cannot run with fails with SettingsError before any request; undefined keeps the default", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_req, res, n) => {
        if (n === 2) return void res.writeHead(204).end()
        res.writeHead(200, SseServer.sseHeaders)
        res.end("id: 1\ndata: a\n\n")
      })
      const request = HttpClientRequest.get(server.url)
      for (
        const [setting, value] of [
          ["maxAttempts", 0],
          ["connectAttempts", 1.5],
          ["maxEventBytes", -1],
          ["maxTracked", 0],
          ["idleTimeout", "0 millis"],
          ["initialDelay", Duration.zero],
          ["maxDelay", "-1 seconds"],
          ["maxRetryAfter", 0],
          ["maxRedirects", -1],
          ["tracePropagation", "yes"]
        ] as const
      ) {
        const error = yield* Effect.flip(Stream.runDrain(SseClient.stream(request, { ...fast, [setting]: value })))
        expect(error, setting).toBeInstanceOf(SettingsError)
        expect(error).toMatchObject({ _tag: "SettingsError", module: "SseClient", setting, value })
      }
      expect(server.requests).toHaveLength(0)
      const events = yield* collect(SseClient.stream(request, { ...fast, maxAttempts: undefined, idleTimeout: undefined }))
      expect(events).toEqual(["1"])
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
      expect(defaults.tracePropagation).toBe(true)
      expect(defaults.maxRedirects).toBe(20)
      const quiet = yield* Effect.withConfigProvider(
        SseClient.config,
        ConfigProvider.fromMap(new Map([["SSE_TRACE_PROPAGATION", "false"], ["SSE_MAX_REDIRECTS", "0"]]))
      )
      expect(quiet.tracePropagation).toBe(false)
      expect(quiet.maxRedirects).toBe(0)
      for (
        const [name, value] of [
          ["SSE_IDLE_TIMEOUT", "0 seconds"],
          ["SSE_MAX_ATTEMPTS", "0"],
          ["SSE_MAX_EVENT_BYTES", "-1"],
          ["SSE_MAX_TRACKED", "0"],
          ["SSE_INITIAL_DELAY", "0 millis"],
          ["SSE_MAX_DELAY", "0 seconds"],
          ["SSE_MAX_RETRY_AFTER", "0 seconds"],
          ["SSE_MAX_REDIRECTS", "-1"],
          ["SSE_TRACE_PROPAGATION", "sometimes"]
        ]
      ) {
        const invalid = yield* Effect.withConfigProvider(SseClient.config, ConfigProvider.fromMap(new Map([[name!, value!]]))).pipe(Effect.either)
        expect(Either.isLeft(invalid), name).toBe(true)
      }
    }))
})
