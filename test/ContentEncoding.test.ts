import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, type Layer, type Scope, Stream } from "effect"
import * as Zlib from "node:zlib"
import * as ContentEncoding from "../src/client/internal/contentEncoding.js"
import * as SseServer from "./support/SseServer.js"

const events = Array.from({ length: 200 }, (_, i) => `id: ${i}\ndata: event ${i}\n\n`).join("")

const encoded = (encoding: string | undefined, body: Uint8Array) =>
  SseServer.make((_req, res) =>
    void res.writeHead(200, encoding === undefined ? SseServer.sseHeaders : { ...SseServer.sseHeaders, "content-encoding": encoding })
      .end(body)
  )

/** The decoded body of a GET to `url`, through the layer's client. */
const decoded = (url: string) =>
  Effect.gen(function*() {
    const client = HttpClient.withScope(yield* HttpClient.HttpClient)
    return ContentEncoding.decodedBody(yield* client.execute(HttpClientRequest.get(url)))
  })

const text = <E>(body: Stream.Stream<Uint8Array, E>) =>
  Stream.runCollect(Stream.decodeText(body)).pipe(Effect.map((chunks) => Chunk.join(chunks, "")))

const textOf = (url: string) => Effect.flatMap(decoded(url), text)

const failureOf = (url: string) =>
  decoded(url).pipe(Effect.flatMap(text), Effect.flip, Effect.orElse(() => Effect.die("expected a failure")))

/** Gzip a server writes as it goes, each piece flushed so it can be decoded at once. */
const gzipWriter = (res: import("node:http").ServerResponse) => {
  const gzip = Zlib.createGzip()
  gzip.on("data", (chunk: Buffer) => res.write(chunk))
  return {
    send: (piece: string) =>
      new Promise<void>((resolve) => {
        gzip.write(piece)
        gzip.flush(Zlib.constants.Z_SYNC_FLUSH, () => resolve())
      })
  }
}

const layers: ReadonlyArray<readonly [string, Layer.Layer<HttpClient.HttpClient>]> = [
  ["FetchHttpClient.layer", FetchHttpClient.layer],
  ["NodeHttpClient.layerUndici", NodeHttpClient.layerUndici],
  ["NodeHttpClient.layer", NodeHttpClient.layer]
]

layers.forEach(([name, layer]) =>
  describe(`ContentEncoding.decodedBody on ${name}`, () => {
    const live = <A, E>(title: string, body: () => Effect.Effect<A, E, HttpClient.HttpClient | Scope.Scope>) =>
      it.scopedLive(title, () => Effect.provide(body(), layer))

    live("decodes gzip, zlib deflate and raw deflate; passes identity and no encoding through", () =>
      Effect.gen(function*() {
        const bodies: ReadonlyArray<readonly [string | undefined, Uint8Array]> = [
          ["gzip", Zlib.gzipSync(events)],
          ["x-gzip", Zlib.gzipSync(events)],
          ["deflate", Zlib.deflateSync(events)],
          ["deflate", Zlib.deflateRawSync(events)],
          ["identity", Buffer.from(events)],
          [undefined, Buffer.from(events)]
        ]
        for (const [encoding, body] of bodies) {
          const server = yield* encoded(encoding, body)
          expect(yield* textOf(server.url)).toBe(events)
        }
      }))

    live("control characters in the data (ANSI colours) near the start: still decoded on every layer (found in review)", () =>
      Effect.gen(function*() {
        const colored = "id: 1\ndata: \x1b[31mERROR\x1b[0m disk full\n\n"
        for (const [encoding, body] of [["gzip", Zlib.gzipSync(colored)], ["deflate", Zlib.deflateSync(colored)]] as const) {
          const server = yield* encoded(encoding, body)
          expect(yield* textOf(server.url)).toBe(colored)
        }
      }))

    live("an event comes out while the server keeps the gzip stream open", () =>
      Effect.gen(function*() {
        let release!: () => void
        const released = new Promise<void>((resolve) => release = resolve)
        const server = yield* SseServer.make(async (_req, res) => {
          res.writeHead(200, { ...SseServer.sseHeaders, "content-encoding": "gzip" })
          const gzip = gzipWriter(res)
          await gzip.send("id: 1\ndata: first\n\n")
          await released
          await gzip.send("id: 2\ndata: second\n\n")
          res.end()
        })
        const pull = yield* Stream.toPull(Stream.decodeText(yield* decoded(server.url)))
        let seen = ""
        while (!seen.includes("data: first\n\n")) seen += Chunk.join(yield* pull, "")
        expect(seen).toBe("id: 1\ndata: first\n\n")
        release()
        while (!seen.includes("data: second\n\n")) seen += Chunk.join(yield* pull, "")
        expect(seen).toBe("id: 1\ndata: first\n\nid: 2\ndata: second\n\n")
      }).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "the first event never came out" })))

    live("an encoding we cannot decode is a typed error naming it, when the body is not text", () =>
      Effect.gen(function*() {
        const server = yield* encoded("x-squash", Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x81, 0x7f, 0x01]))
        const error = yield* failureOf(server.url)
        expect(error).toMatchObject({ _tag: "SseContentEncodingError", encoding: "x-squash", reason: "unsupported" })
        expect(error.message).toContain("x-squash")
        expect(error.message).toContain(server.url)
      }))

    live("br: fetch decodes it itself; undici and node:http end in a typed error naming br", () =>
      Effect.gen(function*() {
        const server = yield* encoded("br", Zlib.brotliCompressSync(events))
        const result = yield* Effect.either(textOf(server.url))
        if (name === "FetchHttpClient.layer") expect(result).toEqual(Either.right(events))
        else expect(Either.flip(result)).toMatchObject(Either.right({ _tag: "SseContentEncodingError", encoding: "br" }))
      }))

    live("corrupt gzip and deflate data are typed errors", () =>
      Effect.gen(function*() {
        const gzip = Zlib.gzipSync(events)
        const corrupt: ReadonlyArray<readonly [string, Uint8Array]> = [
          ["gzip", Buffer.concat([gzip.subarray(0, 10), Buffer.alloc(64, 0xff)])],
          ["deflate", Buffer.from([0x78, 0x9c, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02])],
          ["gzip", Buffer.from([0x00, 0x01, 0x02, 0x03])] // says gzip, is neither gzip nor text
        ]
        for (const [encoding, body] of corrupt) {
          const server = yield* encoded(encoding, body)
          expect(yield* failureOf(server.url)).toMatchObject({ _tag: "SseContentEncodingError", encoding, reason: "corrupt" })
        }
      }))

    live("a gzip body cut short ends after its decodable part, as fetch ends it", () =>
      Effect.gen(function*() {
        const gzip = Zlib.gzipSync(events)
        const server = yield* encoded("gzip", gzip.subarray(0, gzip.length >> 1))
        const prefix = yield* textOf(server.url)
        expect(prefix.length).toBeGreaterThan(100)
        expect(events.startsWith(prefix)).toBe(true)
      }))

    live("a connection cut mid-gzip is the transport's error, after what was decoded", () =>
      Effect.gen(function*() {
        const server = yield* SseServer.make(async (_req, res) => {
          res.writeHead(200, { ...SseServer.sseHeaders, "content-encoding": "gzip" })
          await gzipWriter(res).send("id: 1\ndata: first\n\n")
          setTimeout(() => SseServer.cut(res), 50)
        })
        const out = yield* Stream.runCollect(Stream.either(Stream.decodeText(yield* decoded(server.url))))
        const parts = Chunk.toReadonlyArray(out)
        expect(parts.filter(Either.isRight).map((p) => p.right).join("")).toBe("id: 1\ndata: first\n\n")
        expect(parts[parts.length - 1]).toMatchObject(Either.left({ _tag: "ResponseError" }))
      }))
  })
)

/**
 * A client whose every response has these headers and `pieces` as body, read
 * through a counting stream; with `cut`, the body then fails as a cut connection.
 */
const scripted = (headers: Record<string, string>, pieces: ReadonlyArray<Uint8Array>, cut = false) => {
  const state = { pulled: 0 }
  const client = HttpClient.make((request) =>
    Effect.sync(() => {
      let i = 0
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (i === pieces.length) return cut ? controller.error(new Error("connection reset")) : controller.close()
          state.pulled += pieces[i]!.length
          controller.enqueue(pieces[i++]!)
        }
      }, { highWaterMark: 0 })
      return HttpClientResponse.fromWeb(request, new Response(body, { headers }))
    })
  )
  return { state, body: Effect.map(client.get("http://scripted.test/events"), ContentEncoding.decodedBody) }
}

const split = (bytes: Uint8Array, size: number): Array<Uint8Array> =>
  Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size))

describe("ContentEncoding.decodedBody, scripted", () => {
  it.effect("a body fetch already decoded passes through though the header still says gzip", () =>
    Effect.gen(function*() {
      const { body } = scripted({ "content-encoding": "gzip" }, [new TextEncoder().encode(events)])
      expect(yield* text(yield* body)).toBe(events)
    }))

  it.effect("a body cut after compressed data delivers what that data decodes to, then the cut's error", () =>
    Effect.gen(function*() {
      const event = "id: 1\ndata: first\n\n"
      const gzip = Zlib.createGzip()
      const flushed = yield* Effect.promise(() =>
        new Promise<Buffer>((resolve) => {
          const out: Array<Buffer> = []
          gzip.on("data", (chunk: Buffer) => out.push(chunk))
          gzip.write(event)
          gzip.flush(Zlib.constants.Z_SYNC_FLUSH, () => resolve(Buffer.concat(out)))
        })
      )
      // Cut mid-stream, and cut right after a whole gzip member (the decoder then ends cleanly).
      for (const compressed of [flushed, Zlib.gzipSync(event)]) {
        const { body } = scripted({ "content-encoding": "gzip" }, [compressed], true)
        const out = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.either(Stream.decodeText(yield* body))))
        expect(out.filter(Either.isRight).map((part) => part.right).join("")).toBe(event)
        expect(out[out.length - 1]).toMatchObject(Either.left({ _tag: "ResponseError" }))
      }
    }))

  it.effect("gzip arriving one byte at a time is still recognised and decoded", () =>
    Effect.gen(function*() {
      const { body } = scripted({ "content-encoding": "gzip" }, split(Zlib.gzipSync(events), 1))
      expect(yield* text(yield* body)).toBe(events)
    }))

  it.scopedLive("a decompression bomb is read only as fast as its output is consumed", () =>
    Effect.gen(function*() {
      // 64 MiB of comment lines compress to about 64 KiB.
      const bomb = Zlib.gzipSync(Buffer.alloc(64 << 20, ":\n"))
      const { state, body } = scripted({ "content-encoding": "gzip" }, split(bomb, 1024))
      const pull = yield* Stream.toPull(yield* body)
      expect(Chunk.isNonEmpty(yield* pull)).toBe(true)
      // The body stays open, unread: nothing may keep decoding into memory.
      yield* Effect.sleep("200 millis")
      expect(bomb.length).toBeGreaterThan(60 * 1024)
      expect(state.pulled).toBeLessThanOrEqual(32 * 1024)
    }))
})
