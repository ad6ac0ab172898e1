/**
 * End to end against the MCP TypeScript SDK's own Streamable HTTP server on
 * loopback (test/support/McpServer.ts): what runs and what is sent is counted on
 * the server (tool runs, HTTP requests), cuts are sockets destroyed by the server.
 */
import { FetchHttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Duration, Effect, Fiber, Layer, Option, Schedule, Stream } from "effect"
import * as CursorStore from "../src/store/CursorStore.js"
import * as PersistenceWorker from "../src/session/PersistenceWorker.js"
import * as SessionManager from "../src/session/SessionManager.js"
import * as SseClient from "../src/client/SseClient.js"
import type { SseEvent } from "../src/wire/SseEvent.js"
import * as Example from "./examples/mcp.js"
import * as McpServer from "./support/McpServer.js"

const fast = { initialDelay: "10 millis", maxDelay: "50 millis", idleTimeout: "5 seconds" } as const
const accept = { accept: "application/json, text/event-stream" }

const getStream = (session: Example.McpSession) =>
  HttpClientRequest.get(session.url).pipe(HttpClientRequest.setHeaders({ ...accept, ...session.headers }))

const toolCall = (session: Example.McpSession, id: number) =>
  HttpClientRequest.post(session.url).pipe(
    HttpClientRequest.setHeaders({ ...accept, ...session.headers }),
    HttpClientRequest.bodyUnsafeJson({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "count", arguments: {} } })
  )

const messages = (events: ReadonlyArray<SseEvent>) => Example.messagesOf(Chunk.unsafeFromArray(events))

/** The numbers the tool's (or `broadcast`'s) notifications carried, in arrival order. */
const notified = (received: ReadonlyArray<Example.JsonRpcMessage>) =>
  received.filter((m) => m.method === "notifications/message").map((m) => (m.params as { data: number }).data)

const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

const toolCalls = (mcp: McpServer.McpServer) => mcp.requests.filter((r) => r.rpcMethod === "tools/call")
const gets = (mcp: McpServer.McpServer) => mcp.requests.filter((r) => r.method === "GET")

describe("MCP Streamable HTTP (the SDK's server)", () => {
  it.scopedLive("the GET stream, cut every 30 notifications, delivers every notification once, in order", () =>
    Effect.gen(function*() {
      const mcp = yield* McpServer.make({ notifications: 0, cutAfter: ({ method }) => method === "GET" ? 30 : undefined })
      const session = yield* Example.initialize(mcp.url)
      const connected = yield* Deferred.make<void>()
      const received = yield* SseClient.stream(getStream(session), {
        ...fast,
        onConnection: (status) => status.state === "connected" ? Deferred.succeed(connected, undefined) : Effect.void
      }).pipe(
        Stream.mapChunks((events) => Chunk.unsafeFromArray(messages(Chunk.toArray(events)))),
        Stream.take(200),
        Stream.runCollect,
        Effect.fork
      )
      // The standalone stream replays only after a Last-Event-ID: send once it is open.
      yield* Deferred.await(connected)
      yield* Effect.promise(() => mcp.broadcast(session.id, 200, 1))
      const all = Chunk.toArray(yield* Fiber.join(received).pipe(Effect.timeout("20 seconds")))

      expect(notified(all)).toEqual(oneTo(200))
      expect(mcp.cuts()).toBeGreaterThanOrEqual(5)
      // Every reconnect resumed (a GET without Last-Event-ID would open a new stream).
      expect(gets(mcp).slice(1).every((r) => r.lastEventId !== undefined)).toBe(true)
      expect(gets(mcp).length).toBe(mcp.cuts() + 1)
    }).pipe(Effect.provide(FetchHttpClient.layer)), 30_000)

  it.scopedLive("a tools/call POST stream cut mid-way resumes with GET and Last-Event-ID: the tool ran once, every notification and the result arrive once", () =>
    Effect.gen(function*() {
      const mcp = yield* McpServer.make({
        notifications: 100,
        notificationIntervalMillis: 2,
        cutAfter: ({ method, rpcMethod }) => method === "GET" ? 30 : rpcMethod === "tools/call" ? 20 : undefined
      })
      const session = yield* Example.initialize(mcp.url)
      const received: Array<SseEvent> = []
      yield* SseClient.stream(toolCall(session, 7), { ...fast, resumeWith: "get" }).pipe(
        Stream.tap((event) => Effect.sync(() => received.push(event))),
        // The SDK keeps a resumed stream open after replaying a result it had stored.
        Stream.takeUntil((event) => event.data !== "" && (JSON.parse(event.data) as Example.JsonRpcMessage).id === 7),
        Stream.runDrain,
        Effect.timeout("20 seconds")
      )
      const all = messages(received)

      expect(mcp.toolRuns()).toBe(1)
      expect(toolCalls(mcp)).toHaveLength(1)
      expect(notified(all)).toEqual(oneTo(100))
      expect(all.filter((m) => m.id === 7)).toEqual([{ jsonrpc: "2.0", id: 7, result: { content: [{ type: "text", text: "counted to 100" }] } }])
      expect(mcp.cuts()).toBeGreaterThanOrEqual(2)
      // Each resume is a GET from the last id received before its cut.
      expect(gets(mcp).length).toBe(mcp.cuts())
      expect(gets(mcp)[0]!.lastEventId).toBe(received[19]!.id)
      expect(gets(mcp).every((r) => r.lastEventId !== undefined && r.sessionId === session.id)).toBe(true)
    }).pipe(Effect.provide(FetchHttpClient.layer)), 30_000)

  it.scopedLive("the priming event (an id and `data: `) moves the resume point: a cut right after it resumes from it", () =>
    Effect.gen(function*() {
      const mcp = yield* McpServer.make({
        notifications: 20,
        notificationIntervalMillis: 5,
        cutAfter: ({ rpcMethod }) => rpcMethod === "tools/call" ? 1 : undefined
      })
      const session = yield* Example.initialize(mcp.url)
      const received = Chunk.toArray(
        yield* SseClient.stream(toolCall(session, 1), { ...fast, resumeWith: "get" }).pipe(
          Stream.takeUntil((event) => event.data !== "" && (JSON.parse(event.data) as Example.JsonRpcMessage).id === 1),
          Stream.runCollect,
          Effect.timeout("10 seconds")
        )
      )
      // SDK 1.32 sends `id: …\ndata: \n\n`: an empty data line, which the spec dispatches
      // as an event with empty data; it reaches the consumer, and messagesOf skips it.
      const priming = received[0]!
      expect(priming.data).toBe("")
      expect(mcp.cuts()).toBe(1)
      expect(gets(mcp).map((r) => r.lastEventId)).toEqual([priming.id])
      expect(notified(messages(received))).toEqual(oneTo(20))
      expect(mcp.toolRuns()).toBe(1)
      expect(toolCalls(mcp)).toHaveLength(1)
    }).pipe(Effect.provide(FetchHttpClient.layer)), 20_000)

  for (const resumeWith of [undefined, "get"] as const) {
    it.scopedLive(`a POST stream the server ends normally ends the stream, no second request (resumeWith ${resumeWith})`, () =>
      Effect.gen(function*() {
        const mcp = yield* McpServer.make({ notifications: 10 })
        const session = yield* Example.initialize(mcp.url)
        // No takeUntil: the stream must end by itself when the server closes it.
        const received = Chunk.toArray(
          yield* SseClient.stream(toolCall(session, 3), { ...fast, resumeWith }).pipe(
            Stream.runCollect,
            Effect.timeout("10 seconds")
          )
        )
        expect(notified(messages(received))).toEqual(oneTo(10))
        expect(messages(received).filter((m) => m.id === 3)).toHaveLength(1)
        // Time for a second request to show up, were one sent.
        yield* Effect.sleep("200 millis")
        expect(toolCalls(mcp)).toHaveLength(1)
        expect(gets(mcp)).toHaveLength(0)
        expect(mcp.toolRuns()).toBe(1)
      }).pipe(Effect.provide(FetchHttpClient.layer)), 20_000)
  }

  it.scopedLive("without resumeWith, a dropped POST stream fails with SseStreamDropped and its resume point, sent once; the caller resumes later from it", () =>
    Effect.gen(function*() {
      const mcp = yield* McpServer.make({
        notifications: 30,
        notificationIntervalMillis: 2,
        cutAfter: ({ rpcMethod }) => rpcMethod === "tools/call" ? 6 : undefined
      })
      const session = yield* Example.initialize(mcp.url)
      const received: Array<SseEvent> = []
      const dropped = yield* SseClient.stream(toolCall(session, 5), fast).pipe(
        Stream.runForEach((event) => Effect.sync(() => received.push(event))),
        Effect.timeout("10 seconds"),
        Effect.flip
      )
      expect(dropped).toBeInstanceOf(SseClient.SseStreamDropped)
      expect(dropped).toMatchObject({ method: "POST", url: session.url, lastEventId: received.at(-1)!.id })
      expect(received).toHaveLength(6)
      yield* Effect.sleep("200 millis")
      expect(toolCalls(mcp)).toHaveLength(1)
      expect(gets(mcp)).toHaveLength(0)

      // Later, from the resume point the error carried: the rest, and the tool still ran once.
      const rest = Chunk.toArray(
        yield* SseClient.stream(getStream(session), { ...fast, lastEventId: (dropped as SseClient.SseStreamDropped).lastEventId }).pipe(
          Stream.takeUntil((event) => event.data !== "" && (JSON.parse(event.data) as Example.JsonRpcMessage).id === 5),
          Stream.runCollect,
          Effect.timeout("10 seconds")
        )
      )
      expect(notified(messages([...received, ...rest]))).toEqual(oneTo(30))
      expect(mcp.toolRuns()).toBe(1)
      expect(toolCalls(mcp)).toHaveLength(1)
    }).pipe(Effect.provide(FetchHttpClient.layer)), 20_000)

  it.scopedLive("a gone MCP session: the GET stream's reconnect fails with SseHttpError 404, as does a new POST", () =>
    Effect.gen(function*() {
      const mcp = yield* McpServer.make({ notifications: 1 })
      const session = yield* Example.initialize(mcp.url)
      const connected = yield* Deferred.make<void>()
      const stream = yield* SseClient.stream(getStream(session), {
        ...fast,
        onConnection: (status) => status.state === "connected" ? Deferred.succeed(connected, undefined) : Effect.void
      }).pipe(Stream.runDrain, Effect.flip, Effect.fork)
      yield* Deferred.await(connected)
      // The server ends the session: it closes its streams and answers 404 from then on.
      yield* Effect.promise(() => mcp.endSession(session.id))
      const error = yield* Fiber.join(stream).pipe(Effect.timeout("10 seconds"))
      expect(error).toMatchObject({ _tag: "SseHttpError", status: 404, url: session.url })
      expect(gets(mcp).map((r) => r.status())).toEqual([200, 404])

      const post = yield* SseClient.stream(toolCall(session, 2), { ...fast, resumeWith: "get" }).pipe(Stream.runDrain, Effect.flip)
      expect(post).toMatchObject({ _tag: "SseHttpError", status: 404, attempt: 1 })
      expect(mcp.toolRuns()).toBe(0)
    }).pipe(Effect.provide(FetchHttpClient.layer)), 20_000)
})

describe("the README's MCP example (test/examples/mcp.ts)", () => {
  const persistence = SessionManager.layer().pipe(
    Layer.provideMerge(PersistenceWorker.layer({ flushInterval: Duration.millis(10) })),
    Layer.provideMerge(CursorStore.layerMemory)
  )

  it.scopedLive("callTool: one POST through cuts, the notifications and the result, and its cursor removed after", () =>
    Effect.gen(function*() {
      const mcp = yield* McpServer.make({ notifications: 50, notificationIntervalMillis: 1, cutAfter: ({ rpcMethod }) => rpcMethod === "initialize" ? undefined : 15 })
      const session = yield* Example.initialize(mcp.url)
      const received = yield* Example.callTool(session, 9, "count", {}).pipe(Effect.timeout("20 seconds"))
      expect(notified(received)).toEqual(oneTo(50))
      expect(received.at(-1)).toMatchObject({ id: 9, result: { content: [{ text: "counted to 50" }] } })
      expect(mcp.toolRuns()).toBe(1)
      expect(toolCalls(mcp)).toHaveLength(1)
      expect(mcp.cuts()).toBeGreaterThanOrEqual(2)
      const store = yield* CursorStore.CursorStore
      expect((yield* store.load(`${session.id}/9`))._tag).toBe("None")
    }).pipe(Effect.provide(Layer.merge(persistence, FetchHttpClient.layer))), 30_000)

  it.scopedLive("callTool after a restart: the stored cursor resumes the call with a GET, the POST is not sent again", () =>
    Effect.gen(function*() {
      const mcp = yield* McpServer.make({ notifications: 40, notificationIntervalMillis: 5 })
      const session = yield* Example.initialize(mcp.url)
      // The first process stops mid-call; its cursor is stored as its session closes.
      const first = yield* Example.callTool(session, 4, "count", {}).pipe(Effect.fork)
      yield* Effect.sleep("100 millis")
      yield* Fiber.interrupt(first)
      const resumeFrom = yield* (yield* CursorStore.CursorStore).load(`${session.id}/4`)
      expect(Option.isSome(resumeFrom)).toBe(true)

      const rest = yield* Example.callTool(session, 4, "count", {}).pipe(Effect.timeout("10 seconds"))
      const numbers = notified(rest)
      expect(numbers.at(-1)).toBe(40)
      expect(numbers).toEqual(oneTo(40).slice(40 - numbers.length))
      expect(rest.at(-1)).toMatchObject({ id: 4, result: { content: [{ text: "counted to 40" }] } })
      expect(toolCalls(mcp)).toHaveLength(1)
      expect(mcp.toolRuns()).toBe(1)
      expect(gets(mcp).map((r) => r.lastEventId)).toEqual([Option.getOrThrow(resumeFrom).lastEventId])
    }).pipe(Effect.provide(Layer.merge(persistence, FetchHttpClient.layer))), 30_000)

  it.scopedLive("followAcrossSessions: the server ends the session, a 404, its cursor dropped, a new session followed", () =>
    Effect.gen(function*() {
      const mcp = yield* McpServer.make({ notifications: 0 })
      const seen: Array<number> = []
      const follow = yield* Example.followAcrossSessions(mcp.url, (message) =>
        Effect.sync(() => seen.push((message.params as { data: number }).data))).pipe(Effect.fork)

      const sessionIds = () => [...new Set(gets(mcp).map((r) => r.sessionId!))]
      const openGets = (n: number) =>
        Effect.sync(() => gets(mcp).filter((r) => r.status() === 200).length >= n).pipe(
          Effect.repeat({ until: (open) => open, schedule: Schedule.spaced("10 millis") }),
          Effect.timeout("10 seconds")
        )
      yield* openGets(1)
      const first = sessionIds()[0]!
      yield* Effect.promise(() => mcp.broadcast(first, 3))
      yield* Effect.sync(() => seen.length).pipe(Effect.repeat({ until: (n) => n === 3, schedule: Schedule.spaced("10 millis") }))
      const store = yield* CursorStore.CursorStore
      yield* store.load(`${first}/get`).pipe(
        Effect.repeat({ until: Option.isSome, schedule: Schedule.spaced("10 millis") }),
        Effect.timeout("5 seconds")
      )

      yield* Effect.promise(() => mcp.endSession(first))
      yield* openGets(2)
      const second = sessionIds()[1]!
      expect(second).not.toBe(first)
      expect(gets(mcp).some((r) => r.sessionId === first && r.status() === 404)).toBe(true)
      expect((yield* store.load(`${first}/get`))._tag).toBe("None")
      yield* Effect.promise(() => mcp.broadcast(second, 2))
      yield* Effect.sync(() => seen.length).pipe(Effect.repeat({ until: (n) => n === 5, schedule: Schedule.spaced("10 millis") }))
      expect(seen).toEqual([1, 2, 3, 1, 2])
      yield* Fiber.interrupt(follow)
    }).pipe(Effect.provide(Layer.merge(persistence, FetchHttpClient.layer))), 30_000)
})
