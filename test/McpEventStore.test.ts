/**
 * McpEventStore under the MCP SDK's own Streamable HTTP server on loopback
 * (test/support/mcpStoreServer.ts), on a real SQLite file: resumes by the SDK's
 * client and by SseClient, a server process killed and started again on the same
 * file (a child process, test/support/mcpStoreChild.ts), sessions kept apart, and
 * order within one millisecond.
 */
import { FetchHttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import type { EventStore } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js"
import { Chunk, Deferred, Effect, Fiber, Layer, Schedule, Stream } from "effect"
import { build } from "esbuild"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { beforeAll } from "vitest"
import * as SseClient from "../src/client/SseClient.js"
import * as SqliteEventLog from "../src/engines/SqliteEventLog.js"
import * as EventLog from "../src/server/EventLog.js"
import * as McpEventStore from "../src/server/McpEventStore.js"
import type { SseEvent } from "../src/wire/SseEvent.js"
import * as Example from "./examples/mcp.js"
import * as McpStoreServer from "./support/mcpStoreServer.js"

const fast = { initialDelay: "10 millis", maxDelay: "50 millis", idleTimeout: "5 seconds" } as const
const accept = { accept: "application/json, text/event-stream" }
const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

const toolCall = (session: Example.McpSession, id: number) =>
  HttpClientRequest.post(session.url).pipe(
    HttpClientRequest.setHeaders({ ...accept, ...session.headers }),
    HttpClientRequest.bodyUnsafeJson({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "count", arguments: {} } })
  )
const getStream = (session: Example.McpSession) =>
  HttpClientRequest.get(session.url).pipe(HttpClientRequest.setHeaders({ ...accept, ...session.headers }))

const messages = (events: ReadonlyArray<SseEvent>) => Example.messagesOf(Chunk.unsafeFromArray(events))
const notified = (received: ReadonlyArray<Example.JsonRpcMessage>) =>
  received.filter((m) => m.method === "notifications/message").map((m) => (m.params as { data: number }).data)
const isResult = (id: number) => (event: SseEvent) =>
  event.data !== "" && (JSON.parse(event.data) as Example.JsonRpcMessage).id === id

/** A fresh SQLite file's event log, removed with the scope. */
const sqliteLog = Layer.unwrapScoped(
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "mcp-event-store-"))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  ).pipe(Effect.map((dir) => SqliteEventLog.layer(join(dir, "events.db"))))
)

/** The SDK's server with McpEventStore, for the scope. */
const served = (options: Omit<McpStoreServer.Options, "eventStoreFor">) =>
  Effect.gen(function*() {
    const eventStoreFor = yield* McpEventStore.forSessions
    return yield* Effect.acquireRelease(
      Effect.promise(() => McpStoreServer.start({ ...options, eventStoreFor })),
      (server) => Effect.promise(() => server.close())
    )
  })

const env = Layer.merge(sqliteLog, FetchHttpClient.layer)

describe("McpEventStore under the SDK's server", () => {
  it.scopedLive("the SDK's own client: a tools/call stream cut twice resumes; every notification and the result once, in order", () =>
    Effect.gen(function*() {
      const server = yield* served({
        notifications: 100,
        notificationIntervalMillis: 2,
        cutAfter: ({ method, rpcMethod }) => method === "GET" ? 30 : rpcMethod === "tools/call" ? 20 : undefined
      })
      const client = new Client({ name: "sdk-client", version: "1.0.0" })
      const numbers: Array<number> = []
      client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void numbers.push(n.params.data as number))
      const transport = new StreamableHTTPClientTransport(new URL(server.url), {
        reconnectionOptions: { initialReconnectionDelay: 10, maxReconnectionDelay: 50, reconnectionDelayGrowFactor: 1.5, maxRetries: 20 }
      })
      yield* Effect.acquireRelease(Effect.promise(() => client.connect(transport)), () => Effect.promise(() => client.close()))
      const result = yield* Effect.promise(() => client.callTool({ name: "count", arguments: {} })).pipe(Effect.timeout("20 seconds"))

      expect(result.content).toEqual([{ type: "text", text: "counted to 100" }])
      expect(numbers).toEqual(oneTo(100))
      expect(server.toolRuns()).toBe(1)
      expect(server.requests.filter((r) => r.rpcMethod === "tools/call")).toHaveLength(1)
      const resumes = server.requests.filter((r) => r.method === "GET" && r.lastEventId !== undefined)
      expect(server.cuts()).toBeGreaterThanOrEqual(2)
      expect(resumes.length).toBeGreaterThanOrEqual(2)
      expect(resumes.every((r) => r.status() === 200)).toBe(true)
    }).pipe(Effect.provide(env)), 30_000)

  it.scopedLive("SseClient (resumeWith get): a tools/call stream cut every 20 blocks; every notification and the result once, in order", () =>
    Effect.gen(function*() {
      const server = yield* served({
        notifications: 100,
        notificationIntervalMillis: 2,
        cutAfter: ({ method, rpcMethod }) => method === "GET" ? 20 : rpcMethod === "tools/call" ? 20 : undefined
      })
      const session = yield* Example.initialize(server.url)
      const received: Array<SseEvent> = []
      yield* SseClient.stream(toolCall(session, 7), { ...fast, resumeWith: "get" }).pipe(
        Stream.tap((event) => Effect.sync(() => received.push(event))),
        // The SDK keeps a resumed stream open after the stored result: stop at it.
        Stream.takeUntil(isResult(7)),
        Stream.runDrain,
        Effect.timeout("20 seconds")
      )
      const all = messages(received)

      expect(notified(all)).toEqual(oneTo(100))
      expect(all.filter((m) => m.id === 7)).toEqual([{ jsonrpc: "2.0", id: 7, result: { content: [{ type: "text", text: "counted to 100" }] } }])
      expect(server.toolRuns()).toBe(1)
      const gets = server.requests.filter((r) => r.method === "GET")
      expect(server.cuts()).toBeGreaterThanOrEqual(3)
      expect(gets.length).toBe(server.cuts())
      expect(gets[0]!.lastEventId).toBe(received[19]!.id)
      expect(gets.every((r) => r.status() === 200 && r.sessionId === session.id)).toBe(true)
    }).pipe(Effect.provide(env)), 30_000)

  it.scopedLive("session B given an event id of session A's GET stream replays nothing of A: 400, and the store rejects it", () =>
    Effect.gen(function*() {
      const server = yield* served({ notifications: 0 })
      const a = yield* Example.initialize(server.url)
      const b = yield* Example.initialize(server.url)
      // Both sessions' GET streams have the SDK's one stream id, `_GET_stream`; B's holds an event too.
      yield* Effect.promise(() => server.broadcast(b.id, 1))
      const connected = yield* Deferred.make<void>()
      const ofA = yield* SseClient.stream(getStream(a), {
        ...fast,
        onConnection: (status) => status.state === "connected" ? Deferred.succeed(connected, undefined) : Effect.void
      }).pipe(Stream.take(3), Stream.runCollect, Effect.fork)
      yield* Deferred.await(connected)
      yield* Effect.promise(() => server.broadcast(a.id, 3))
      const idsOfA = Chunk.toArray(yield* Fiber.join(ofA).pipe(Effect.timeout("10 seconds"))).map((e) => e.id!)

      const resume = (session: Example.McpSession, lastEventId: string, until?: string) =>
        Effect.promise(async () => {
          const response = await fetch(session.url, {
            headers: { accept: "text/event-stream", ...session.headers, "last-event-id": lastEventId }
          })
          if (response.status !== 200) return { status: response.status, body: await response.text() }
          // A replay's stream stays open: read until what the replay wrote is in, then let go.
          const reader = response.body!.getReader()
          let body = ""
          // Without `until`, the first chunk: enough to show a replay was answered with 200.
          while (until === undefined ? body === "" : !body.includes(until)) {
            const chunk = await reader.read()
            if (chunk.done) break
            body += new TextDecoder().decode(chunk.value)
          }
          await reader.cancel()
          return { status: response.status, body }
        })

      const other = yield* resume(b, idsOfA[0]!)
      expect(other.status).toBe(400)
      expect(other.body).not.toContain("notifications/message")
      for (const made of ["nonsense", "1-1.x", `999999-1.${encodeURIComponent("_GET_stream")}`, "%%.%"]) {
        expect((yield* resume(b, made)).status).toBe(400)
      }

      // Control: the id resumes in its own session (once the server has seen A's first GET go: 409 till then).
      const own = yield* resume(a, idsOfA[0]!, `id: ${idsOfA[2]}`).pipe(
        Effect.filterOrFail((r) => r.status !== 409),
        Effect.retry(Schedule.spaced("20 millis")),
        Effect.timeout("10 seconds")
      )
      expect(own.status).toBe(200)
      expect(own.body).toContain(`id: ${idsOfA[1]}`)

      // The store itself: B's rejects A's id and sends nothing; A's own replays after it.
      const storeFor = yield* McpEventStore.forSessions
      const sent: Array<unknown> = []
      const send = async (_id: string, message: unknown) => void sent.push(message)
      const storeB: EventStore = storeFor(b.id)
      expect(yield* Effect.promise(() => storeB.getStreamIdForEventId!(idsOfA[0]!))).toBeUndefined()
      const rejection = yield* Effect.promise(() => storeB.replayEventsAfter(idsOfA[0]!, { send }).then(() => undefined, (e) => e))
      expect(rejection).toMatchObject({ _tag: "UnknownMcpEventId", sessionId: b.id, reason: "not-in-session" })
      expect(sent).toEqual([])
      expect(yield* Effect.promise(() => storeFor(a.id).replayEventsAfter(idsOfA[0]!, { send }))).toBe("_GET_stream")
      expect(sent.map((m) => (m as { params: { data: number } }).params.data)).toEqual([2, 3])
    }).pipe(Effect.provide(env)), 30_000)
})

describe("McpEventStore on its own", () => {
  it.scopedLive("1,000 events stored in the same millisecond replay in the order stored, priming events kept as resume points but not sent", () =>
    Effect.gen(function*() {
      const storeFor = yield* McpEventStore.forSessions
      const store = storeFor("session-1")
      const priming = yield* Effect.promise(() => store.storeEvent("s", {}))
      // Started in one tick: no await between them, so the clock cannot order them.
      const ids = yield* Effect.promise(() =>
        Promise.all(oneTo(1_000).map((n) => store.storeEvent("s", { jsonrpc: "2.0", method: "notifications/message", params: { data: n } })))
      )
      const log = yield* EventLog.EventLog
      const stamps = (yield* log.read(McpEventStore.streamName("session-1", "s"))).events.map((e) => e.appendedAt)
      expect(new Set(stamps).size).toBeLessThan(stamps.length)

      const sent: Array<{ readonly id: string; readonly n: number }> = []
      const streamId = yield* Effect.promise(() =>
        store.replayEventsAfter(priming, { send: async (id, m) => void sent.push({ id, n: (m as { params: { data: number } }).params.data }) })
      )
      expect(streamId).toBe("s")
      expect(sent.map((e) => e.n)).toEqual(oneTo(1_000))
      expect(sent.map((e) => e.id)).toEqual(ids)
      // From the middle: the rest, in order.
      sent.length = 0
      yield* Effect.promise(() => store.replayEventsAfter(ids[499]!, { send: async (id, m) => void sent.push({ id, n: (m as { params: { data: number } }).params.data }) }))
      expect(sent.map((e) => e.n)).toEqual(oneTo(1_000).slice(500))
      expect(yield* Effect.promise(() => store.getStreamIdForEventId(priming))).toBe("s")
      // A priming event stored later in the stream is a resume point, never a message.
      const primingLater = yield* Effect.promise(() => store.storeEvent("s", {}))
      const last = yield* Effect.promise(() => store.storeEvent("s", { jsonrpc: "2.0", method: "notifications/message", params: { data: 1_001 } }))
      sent.length = 0
      yield* Effect.promise(() => store.replayEventsAfter(ids[998]!, { send: async (id, m) => void sent.push({ id, n: (m as { params: { data: number } }).params.data }) }))
      expect(sent).toEqual([{ id: ids[999], n: 1_000 }, { id: last, n: 1_001 }])
      expect(yield* Effect.promise(() => store.getStreamIdForEventId(primingLater))).toBe("s")
    }).pipe(Effect.provide(sqliteLog)), 30_000)
})

// --- The server process killed and started again on the same SQLite file ---

const child = join(import.meta.dirname, "..", "node_modules", ".cache", "sse-resume-test", "mcpStoreChild.mjs")

beforeAll(async () => {
  await build({
    entryPoints: [join(import.meta.dirname, "support", "mcpStoreChild.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    outfile: child,
    logLevel: "warning"
  })
})

const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = createServer()
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })

const startChild = (db: string, port: number, notifications: number) =>
  Effect.acquireRelease(
    Effect.async<ChildProcess, Error>((resume) => {
      const proc = spawn(process.execPath, [child, db, String(port), String(notifications)], { stdio: ["ignore", "pipe", "pipe"] })
      let err = ""
      proc.stderr.on("data", (data: Buffer) => (err += data.toString()))
      proc.stdout.on("data", (data: Buffer) => {
        if (data.toString().includes("ready")) resume(Effect.succeed(proc))
      })
      proc.on("exit", (code, signal) => {
        if (signal !== "SIGKILL") resume(Effect.fail(new Error(`child exited ${code}: ${err}`)))
      })
    }),
    (proc) => Effect.sync(() => proc.kill("SIGKILL"))
  )

const killed = (proc: ChildProcess) =>
  Effect.async<void>((resume) => {
    proc.once("exit", () => resume(Effect.void))
    proc.kill("SIGKILL")
  })

describe("McpEventStore across a server restart (a child process, SIGKILL)", () => {
  it.scopedLive("events stored before the kill are replayed by the server started again on the same file, with the same ids", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "mcp-restart-"))),
        (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
      )
      const db = join(dir, "events.db")
      const port = yield* Effect.promise(freePort)
      const url = `http://127.0.0.1:${port}/mcp`

      const first = yield* startChild(db, port, 20)
      const session = yield* Example.initialize(url)
      const before = Chunk.toArray(
        yield* SseClient.stream(toolCall(session, 1), fast).pipe(Stream.runCollect, Effect.timeout("10 seconds"))
      )
      expect(notified(messages(before))).toEqual(oneTo(20))
      yield* killed(first)

      yield* startChild(db, port, 20)
      const replay = (lastEventId: string) =>
        SseClient.stream(getStream(session), { ...fast, lastEventId }).pipe(
          Stream.takeUntil(isResult(1)),
          Stream.runCollect,
          Effect.map(Chunk.toArray),
          Effect.timeout("10 seconds")
        )
      // before[0] is the priming event, before[n] the n-th notification.
      const after5 = yield* replay(before[5]!.id!)
      expect(notified(messages(after5))).toEqual(oneTo(20).slice(5))
      expect(after5.map((e) => e.id)).toEqual(before.slice(6).map((e) => e.id))
      expect(messages(after5).at(-1)).toMatchObject({ id: 1, result: { content: [{ text: "counted to 20" }] } })
      const fromPriming = yield* replay(before[0]!.id!)
      expect(notified(messages(fromPriming))).toEqual(oneTo(20))
    }).pipe(Effect.provide(FetchHttpClient.layer)), 60_000)
})
