/**
 * The body read directly from each HttpClient layer's own body (internal/body.ts):
 * undici's Node Readable, node:http's IncomingMessage and fetch's web
 * ReadableStream, each over loopback, and a body it does not recognise, pulled
 * from the response's Stream. The same contract for all four; the other
 * SseClient tests run mostly on undici, and the Chromium test on a browser's fetch.
 */
import { FetchHttpClient } from "@effect/platform"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Queue, Stream } from "effect"
import { directBody } from "../src/client/internal/body.js"
import * as SseClient from "../src/client/SseClient.js"
import * as SseServer from "./support/SseServer.js"
import * as Net from "node:net"
import * as Zlib from "node:zlib"

const fast = { initialDelay: "5 millis", maxDelay: "20 millis" } as const

/** Body Streams of `layerUnrecognised` that ended and ran their finalizers. */
let releasedStreams = 0

/** undici's responses with their `source` hidden, as a client wrapping them would: read through their Stream. */
const layerUnrecognised = Layer.effect(
  HttpClient.HttpClient,
  Effect.map(HttpClient.HttpClient, (client) =>
    HttpClient.transformResponse(client, Effect.map((response) =>
      new Proxy(response, {
        get: (target, key) =>
          key === "source"
            ? undefined
            : key === "stream"
            ? Stream.ensuring(target.stream, Effect.sync(() => releasedStreams++))
            : Reflect.get(target, key, target)
      }))))
).pipe(Layer.provide(NodeHttpClient.layerUndici))

const layers: ReadonlyArray<readonly [string, Layer.Layer<HttpClient.HttpClient>, boolean]> = [
  ["undici", NodeHttpClient.layerUndici, true],
  ["node:http", NodeHttpClient.layer, true],
  ["fetch", FetchHttpClient.layer, true],
  ["undici, unrecognised", layerUnrecognised, false]
]

/**
 * A server on a bare socket, to cut a response right after its last bytes: `answer`
 * gets each request's socket once its head is in (n from 1).
 */
const rawServer = (answer: (socket: Net.Socket, n: number) => void) =>
  Effect.acquireRelease(
    Effect.async<{ server: Net.Server; url: string; lastEventIds: Array<string | undefined> }>((resume) => {
      const lastEventIds: Array<string | undefined> = []
      const server = Net.createServer((socket) => {
        let head = ""
        socket.on("data", (bytes) => {
          if (head.includes("\r\n\r\n")) return
          head += bytes.toString("latin1")
          if (!head.includes("\r\n\r\n")) return
          lastEventIds.push(/last-event-id: *([^\r]*)/i.exec(head)?.[1])
          answer(socket, lastEventIds.length)
        })
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({ server, url: `http://127.0.0.1:${(server.address() as Net.AddressInfo).port}/`, lastEventIds })))
    }),
    ({ server }) => Effect.sync(() => server.close())
  )

/** Waits for a condition the server sets, at most `ms`. */
const until = (condition: () => boolean, ms = 5_000) =>
  Effect.gen(function*() {
    const start = performance.now()
    while (!condition() && performance.now() - start < ms) yield* Effect.sleep("5 millis")
  })

layers.forEach(([name, layer, direct]) =>
  describe(`SseClient body, ${name}`, () => {
    const live = <A, E>(title: string, body: () => Effect.Effect<A, E, any>) =>
      it.scopedLive(title, () => Effect.provide(body(), layer) as Effect.Effect<A, E>)

    live(direct ? "the layer's body is one read directly, not through its Stream" : "the body is not one read directly", () =>
      Effect.gen(function*() {
        const server = yield* SseServer.make((_req, res) => {
          res.writeHead(200, SseServer.sseHeaders)
          res.end("id: 1\ndata: a\n\n")
        })
        // Scoped as SseClient's client is: the layers hand over their own response then, not a wrapper.
        const client = HttpClient.withScope(yield* HttpClient.HttpClient)
        const response = yield* client.get(server.url)
        expect((yield* directBody(response)) !== undefined).toBe(direct)
      }))

    live("events over several writes, the body's end, then the next connection", () =>
      Effect.gen(function*() {
        const server = yield* SseServer.make(async (_req, res, n) => {
          if (n === 2) return void res.writeHead(204).end()
          res.writeHead(200, SseServer.sseHeaders)
          await SseServer.write(res, "id: 1\ndata: a\n\nid: 2\nda")
          await SseServer.write(res, "ta: b\n\n")
          res.end("id: 3\ndata: c\n\n")
        })
        const reasons: Array<string> = []
        const events = yield* SseClient.stream(HttpClientRequest.get(server.url), {
          ...fast,
          onConnection: (s) => Effect.sync(() => s.state === "reconnecting" && reasons.push(s.reason))
        }).pipe(Stream.runCollect, Effect.timeout("5 seconds"))
        expect(Chunk.toReadonlyArray(events).map((e) => [e.id, e.data])).toEqual([["1", "a"], ["2", "b"], ["3", "c"]])
        expect(reasons).toEqual(["closed"])
      }))

    live("a body cut mid-event is a transport failure: the events before it delivered, resumed after the last", () =>
      Effect.gen(function*() {
        const server = yield* SseServer.make(async (_req, res, n) => {
          if (n === 2) return void res.writeHead(204).end()
          res.writeHead(200, SseServer.sseHeaders)
          await SseServer.write(res, "id: 1\ndata: a\n\nid: 2\ndata: cut he")
          SseServer.cut(res)
        })
        const reasons: Array<string> = []
        const events = yield* SseClient.stream(HttpClientRequest.get(server.url), {
          ...fast,
          onConnection: (s) => Effect.sync(() => s.state === "reconnecting" && reasons.push(s.reason))
        }).pipe(Stream.runCollect, Effect.timeout("5 seconds"))
        expect(Chunk.toReadonlyArray(events).map((e) => e.id)).toEqual(["1"])
        expect(reasons).toEqual(["transport"])
        expect(server.requests[1]!.headers["last-event-id"]).toBe("1")
      }))

    live("a body silent for idleTimeout is aborted as idle, its socket closed", () =>
      Effect.gen(function*() {
        const server = yield* SseServer.make((_req, res, n) => {
          if (n === 2) return void res.writeHead(204).end()
          res.writeHead(200, SseServer.sseHeaders)
          res.write("id: 1\ndata: a\n\n")
        })
        const reasons: Array<string> = []
        yield* Stream.runDrain(SseClient.stream(HttpClientRequest.get(server.url), {
          ...fast,
          idleTimeout: "150 millis",
          onConnection: (s) => Effect.sync(() => s.state === "reconnecting" && reasons.push(s.reason))
        })).pipe(Effect.timeout("5 seconds"))
        expect(reasons).toEqual(["idle"])
        yield* until(() => server.requests[0]!.closedAt !== undefined, 1_000)
        expect(server.requests[0]!.closedAt).toBeDefined()
      }))

    live("a gzip body (pulled from the layer's Stream through our decoder) silent for idleTimeout is aborted as idle", () =>
      Effect.gen(function*() {
        const server = yield* SseServer.make((_req, res, n) => {
          if (n === 2) return void res.writeHead(204).end()
          res.writeHead(200, { ...SseServer.sseHeaders, "content-encoding": "gzip" })
          const gzip = Zlib.createGzip()
          gzip.pipe(res)
          gzip.write("id: 1\ndata: a\n\n")
          gzip.flush()
        })
        const reasons: Array<string> = []
        const events = yield* SseClient.stream(HttpClientRequest.get(server.url), {
          ...fast,
          idleTimeout: "150 millis",
          onConnection: (s) => Effect.sync(() => s.state === "reconnecting" && reasons.push(s.reason))
        }).pipe(Stream.runCollect, Effect.timeout("5 seconds"))
        expect(Chunk.toReadonlyArray(events).map((e) => e.id)).toEqual(["1"])
        expect(reasons).toEqual(["idle"])
        yield* until(() => server.requests[0]!.closedAt !== undefined, 1_000)
        expect(server.requests[0]!.closedAt).toBeDefined()
      }))

    live("interrupted while a read waits, the stream closes its socket at once", () =>
      Effect.gen(function*() {
        const server = yield* SseServer.make((_req, res) => {
          res.writeHead(200, SseServer.sseHeaders)
          res.write("id: 1\ndata: a\n\n")
        })
        const received = yield* Queue.unbounded<string>()
        const fiber = yield* Effect.fork(
          SseClient.stream(HttpClientRequest.get(server.url), fast).pipe(Stream.runForEach((e) => Queue.offer(received, e.id!)))
        )
        expect(yield* Queue.take(received)).toBe("1")
        // The reader now waits for bytes that never come.
        yield* Effect.sleep("20 millis")
        const before = performance.now()
        yield* Fiber.interrupt(fiber)
        yield* until(() => server.requests[0]!.closedAt !== undefined)
        expect(server.requests[0]!.closedAt).toBeDefined()
        // Well within a second on a loaded machine, not after any timeout (the idle one is 60 s).
        expect(server.requests[0]!.closedAt! - before).toBeLessThan(1_000)
        expect(server.requests.length).toBe(1)
      }))

    if (!direct) {
      live("the body's Stream is released when the consumer stops taking", () =>
        Effect.gen(function*() {
          const server = yield* SseServer.make((_req, res) => {
            res.writeHead(200, SseServer.sseHeaders)
            res.write("id: 1\ndata: a\n\n")
          })
          const before = releasedStreams
          const taken = yield* SseClient.stream(HttpClientRequest.get(server.url), fast).pipe(Stream.take(1), Stream.runCount)
          expect(taken).toBe(1)
          expect(releasedStreams - before).toBe(1)
        }))
    }

    if (name !== "fetch") {
      // A web stream drops what it queued when it errors (fetch did so before the direct read too).
      live("events that arrived with the cut are delivered before it, however slow the consumer (found in review)", () =>
        Effect.gen(function*() {
          const server = yield* rawServer((socket, n) => {
            if (n === 2) return void socket.end("HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
            socket.write("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            const chunk = (text: string) => `${text.length.toString(16)}\r\n${text}\r\n`
            socket.write(chunk("id: 0\ndata: first\n\n"))
            // The rest and the cut in one go, while the consumer is still busy with event 0.
            setTimeout(() => {
              socket.write(chunk("id: 1\ndata: a\n\nid: 2\ndata: b\n\n"))
              socket.destroy()
            }, 50)
          })
          const ids = yield* SseClient.stream(HttpClientRequest.get(server.url), fast).pipe(
            Stream.tap(() => Effect.sleep("200 millis")),
            Stream.map((event) => event.id),
            Stream.runCollect,
            Effect.timeout("5 seconds")
          )
          expect(Chunk.toReadonlyArray(ids)).toEqual(["0", "1", "2"])
          expect(server.lastEventIds).toEqual([undefined, "2"])
        }))
    }

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
        // Socket and stream buffers hold some events, never the whole stream.
        expect(written).toBeLessThan(20_000)
      }))
  })
)

describe("SseClient body destroyed without an error (issue 19)", () => {
  /** The layer's responses, their body (a Node Readable) destroyed with no reason `after` ms (0: before the client looks). */
  const destroying = (layer: Layer.Layer<HttpClient.HttpClient>, after: number) =>
    Layer.effect(
      HttpClient.HttpClient,
      Effect.map(HttpClient.HttpClient, (client) =>
        HttpClient.transformResponse(client, Effect.tap((response) => {
          const source = (response as unknown as { readonly source: { readonly body?: unknown } }).source
          const body = (source.body ?? source) as { destroy: () => void }
          if (after > 0) return void setTimeout(() => body.destroy(), after)
          body.destroy()
          // Its 'close' has been emitted by the time the client looks.
          return Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
        })))
    ).pipe(Layer.provide(layer))

  const nodeLayers = [["NodeHttpClient.layerUndici", NodeHttpClient.layerUndici], ["NodeHttpClient.layer", NodeHttpClient.layer]] as const
  for (const [name, layer] of nodeLayers) {
    for (const after of [0, 100]) {
      it.scopedLive(`${name}, destroyed ${after === 0 ? "before the client reads" : "while a read waits"}: a transport end at once, not an idle one`, () =>
        Effect.gen(function*() {
          // Silent and open: only the destroy can end the body before the idle timeout.
          const server = yield* SseServer.make((_req, res) => void res.writeHead(200, SseServer.sseHeaders).write(": open\n\n"))
          const started = Date.now()
          const error = yield* SseClient.stream(HttpClientRequest.get(server.url), { maxAttempts: 1, idleTimeout: "20 seconds" }).pipe(
            Stream.runDrain,
            Effect.flip,
            Effect.provide(destroying(layer, after))
          )
          expect(error).toMatchObject({ _tag: "SseRetriesExhausted", last: { reason: "transport" } })
          expect(Date.now() - started).toBeLessThan(10_000)
        }))
    }
  }
})
