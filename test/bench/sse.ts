/**
 * SSE parsing and end-to-end throughput, side by side in one run.
 *
 *   npx tsx test/bench/sse.ts          (the parse half also runs in `npm run bench`)
 *
 * Parse: the same bytes, cut into 64 KiB or 1 KiB chunks, through raw
 * `eventsource-parser` (with a streaming TextDecoder, events collected),
 * `Sse.parse`, and `@effect/experimental`'s `Sse.makeChannel`. The experimental
 * parser rescans its whole pending buffer on every chunk, so an event spanning
 * many chunks costs it quadratic time; it gets a smaller payload (same MB/s
 * unit), marked in the table.
 *
 * End to end: one loopback server sends `e2eEvents` events with ids in one
 * response, then 204. Clients: `SseClient` with its tracker, the `eventsource`
 * npm client, plain `fetch` + `eventsource-parser`. Events/s.
 *
 * The Effect contenders read the chunks the way a response body delivers them:
 * a channel writing one Uint8Array per Stream chunk, as @effect/platform-node's
 * body does when one socket read is pending (`Stream.fromChunks` would add a
 * sub-stream per chunk, twice the framework's cost; a body reads everything
 * queued in one read, so several reads are never several arrays in one chunk).
 * "Stream floor" is that source drained, doing nothing: on small chunks the
 * framework's own per-chunk cost is most of ours. "SseClient" is the whole
 * client (idle watchdog, parser, tracker with a 10,000-id window) over a scripted
 * response with that body: its per-chunk cost without a socket.
 */
import * as ExperimentalSse from "@effect/experimental/Sse"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Channel, Chunk, Effect, Layer, Stream } from "effect"
import { EventSource } from "eventsource"
import { createParser } from "eventsource-parser"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Sse from "../../src/wire/Sse.js"
import * as SseClient from "../../src/client/SseClient.js"

const MiB = 1024 * 1024

export const makePayload = (eventBytes: number, totalBytes: number): Uint8Array => {
  const parts: Array<string> = []
  let size = 0
  for (let n = 0; size < totalBytes; n++) {
    const head = `id: ${n}\nevent: tick\ndata: `
    const block = head + "x".repeat(Math.max(1, eventBytes - head.length - 2)) + "\n\n"
    parts.push(block)
    size += block.length
  }
  return Buffer.from(parts.join(""))
}

export const cut = (bytes: Uint8Array, chunkSize: number): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (let i = 0; i < bytes.length; i += chunkSize) out.push(bytes.subarray(i, i + chunkSize))
  return out
}

const median = (xs: Array<number>) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/**
 * Runs each contender once per round, in rotating order, after a warm-up; the
 * machine is shared, so interleaving keeps drift from favouring one of them.
 * Returns each one's median seconds and its last result.
 */
const race = async (
  rounds: number,
  contenders: Record<string, () => Promise<number> | number>
): Promise<Record<string, { seconds: number; count: number }>> => {
  const names = Object.keys(contenders)
  const times: Record<string, Array<number>> = {}
  const counts: Record<string, number> = {}
  for (const name of names) {
    // Two warm-ups: the JIT settles on the second.
    await contenders[name]!()
    counts[name] = await contenders[name]!()
    times[name] = []
  }
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + round) % names.length]!
      const start = performance.now()
      counts[name] = await contenders[name]!()
      times[name]!.push((performance.now() - start) / 1000)
    }
  }
  return Object.fromEntries(names.map((name) => [name, { seconds: median(times[name]!), count: counts[name]! }]))
}

/** The chunks as a response body delivers them: one Uint8Array per Stream chunk. */
export const bodyOf = (chunks: ReadonlyArray<Uint8Array>): Stream.Stream<Uint8Array> =>
  Stream.fromChannel(Channel.suspend(() => {
    let i = 0
    const read = (): Channel.Channel<Chunk.Chunk<Uint8Array>> =>
      i === chunks.length ? Channel.void : Channel.flatMap(Channel.write(Chunk.unsafeFromArray([chunks[i++]!])), read)
    return read()
  }))

/** An HttpClient answering with `chunks` as the body, then 204 to the reconnect that ends the run. */
const scriptedClient = (chunks: ReadonlyArray<Uint8Array>) =>
  Layer.succeed(
    HttpClient.HttpClient,
    HttpClient.make((request) => {
      const resumed = request.headers["last-event-id"] !== undefined
      const response = HttpClientResponse.fromWeb(
        request,
        new Response(null, resumed ? { status: 204 } : { headers: { "content-type": "text/event-stream" } })
      )
      return Effect.succeed(Object.create(response, { stream: { get: () => bodyOf(chunks) } }))
    })
  )

export const parsers = {
  raw: (chunks: ReadonlyArray<Uint8Array>): number => {
    let count = 0
    const decoder = new TextDecoder()
    const events: Array<unknown> = []
    const parser = createParser({ onEvent: (e) => events.push(e) })
    for (const chunk of chunks) {
      parser.feed(decoder.decode(chunk, { stream: true }))
      count += events.length
      events.length = 0
    }
    return count
  },
  sse: (chunks: ReadonlyArray<Uint8Array>): number => Effect.runSync(bodyOf(chunks).pipe(Sse.parse(), Stream.runCount)),
  /** The same chunks through an Effect Stream that does nothing: the framework's own cost. */
  floor: (chunks: ReadonlyArray<Uint8Array>): number => Effect.runSync(bodyOf(chunks).pipe(Stream.runDrain, Effect.as(0))),
  client: (chunks: ReadonlyArray<Uint8Array>): Promise<number> =>
    Effect.runPromise(
      SseClient.stream(HttpClientRequest.get("http://scripted.test/"), { maxTracked: 10_000, initialDelay: "1 millis" }).pipe(
        Stream.runCount,
        Effect.provide(scriptedClient(chunks))
      )
    ),
  experimental: (chunks: ReadonlyArray<Uint8Array>): number =>
    Effect.runSync(
      Stream.fromChunks(...chunks.map(Chunk.of)).pipe(
        Stream.decodeText(),
        Stream.pipeThroughChannel(ExperimentalSse.makeChannel()),
        Stream.runCount
      )
    )
}

export const parseCases: ReadonlyArray<{ events: number; chunk: number; totalBytes?: number }> = [
  { events: 100, chunk: 64 * 1024 },
  { events: 100, chunk: 1024 },
  { events: 100 * 1024, chunk: 64 * 1024 },
  { events: 100 * 1024, chunk: 1024 },
  // One event per chunk (each block is exactly `events` bytes), as a server that
  // flushes every event delivers them; 1 MiB keeps the chunk count spreadable.
  { events: 100, chunk: 100, totalBytes: MiB }
]

export const label = (bytes: number) => bytes >= 1024 ? `${bytes / 1024} KiB` : `${bytes} B`

/** The experimental parser's payload: enough for several chunks and events, bounded for its quadratic cost. */
export const experimentalBytes = (eventBytes: number) => eventBytes >= 1024 ? 1 * MiB : 128 * 1024

const benchParse = async (totalBytes: number) => {
  console.log(
    `\nParse throughput, MB/s (median of 7 interleaved rounds; ${totalBytes / MiB} MiB per run; ` +
      `experimental 128 KiB for 100 B events, 1 MiB for 100 KiB events; 1 MiB for one event per chunk)`
  )
  console.log(
    "| events | chunks | eventsource-parser | Sse.parse | ratio | SseClient | ratio | experimental makeChannel | ratio | Stream floor |"
  )
  console.log("|---|---|---|---|---|---|---|---|---|---|")
  for (const { events, chunk, totalBytes: caseBytes } of parseCases) {
    const bytes = caseBytes ?? totalBytes
    const chunks = cut(makePayload(events, bytes), chunk)
    const smallBytes = experimentalBytes(events)
    const small = cut(makePayload(events, smallBytes), chunk)
    const result = await race(7, {
      raw: () => parsers.raw(chunks),
      sse: () => parsers.sse(chunks),
      client: () => parsers.client(chunks),
      experimental: () => parsers.experimental(small),
      floor: () => parsers.floor(chunks)
    })
    if (result.raw!.count !== result.sse!.count || result.raw!.count !== result.client!.count) {
      throw new Error(`event counts differ: ${result.raw!.count} vs ${result.sse!.count} vs ${result.client!.count}`)
    }
    const r = bytes / 1e6 / result.raw!.seconds
    const s = bytes / 1e6 / result.sse!.seconds
    const c = bytes / 1e6 / result.client!.seconds
    const x = smallBytes / 1e6 / result.experimental!.seconds
    const f = bytes / 1e6 / result.floor!.seconds
    console.log(
      `| ${label(events)} | ${label(chunk)} | ${r.toFixed(0)} | ${s.toFixed(0)} | ${(s / r).toFixed(2)}× | ${
        c.toFixed(0)
      } | ${(c / r).toFixed(2)}× | ${x.toFixed(1)} | ${(x / r).toFixed(3)}× | ${f.toFixed(0)} |`
    )
  }
}

const startServer = (body: Buffer): Promise<{ url: string; close: () => void }> =>
  new Promise((resolve) => {
    const server = Http.createServer((req, res) => {
      // Every client asks once without Last-Event-ID; its reconnect ends the run.
      if (req.headers["last-event-id"] !== undefined) return void res.writeHead(204).end()
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" })
      res.end(body)
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resolve({
        url: `http://127.0.0.1:${port}/`,
        close: () => {
          server.closeAllConnections()
          server.close()
        }
      })
    })
  })

/** A loopback server sending `eventCount` events, and one run of each client against it. */
export const makeEndToEnd = async (eventCount: number) => {
  const body = Buffer.from(
    Array.from({ length: eventCount }, (_, n) => `id: ${n}\ndata: {"n":${n},"text":"${"y".repeat(60)}"}\n\n`).join("")
  )
  const server = await startServer(body)
  const clients: Record<string, () => Promise<number>> = {
    "SseClient (undici, tracker 10k)": () =>
      Effect.runPromise(
        SseClient.stream(HttpClientRequest.get(server.url), { maxTracked: 10_000, initialDelay: "1 millis" }).pipe(
          Stream.runCount,
          Effect.provide(NodeHttpClient.layerUndici)
        )
      ),
    "SseClient (node:http, tracker 10k)": () =>
      Effect.runPromise(
        SseClient.stream(HttpClientRequest.get(server.url), { maxTracked: 10_000, initialDelay: "1 millis" }).pipe(
          Stream.runCount,
          Effect.provide(NodeHttpClient.layer)
        )
      ),
    "eventsource": () =>
      new Promise<number>((resolve, reject) => {
        let count = 0
        const source = new EventSource(server.url)
        source.onmessage = () => {
          if (++count === eventCount) {
            source.close()
            resolve(count)
          }
        }
        source.onerror = (error) => {
          source.close()
          reject(error)
        }
      }),
    "fetch + eventsource-parser": async () => {
      let count = 0
      const parser = createParser({ onEvent: () => count++ })
      const response = await fetch(server.url, { headers: { accept: "text/event-stream" } })
      const decoder = new TextDecoder()
      const reader = response.body!.getReader()
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        parser.feed(decoder.decode(r.value, { stream: true }))
      }
      return count
    }
  }
  return { clients, eventBytes: Math.round(body.length / eventCount), close: server.close }
}

const benchEndToEnd = async (eventCount: number) => {
  const { clients, close, eventBytes } = await makeEndToEnd(eventCount)
  console.log(
    `\nEnd to end over loopback, events/s (median of 7 interleaved rounds; ${eventCount} events of ~${eventBytes} B)`
  )
  console.log("| client | events/s | vs eventsource |")
  console.log("|---|---|---|")
  const result = await race(7, clients)
  const rate = (name: string) => {
    if (result[name]!.count !== eventCount) throw new Error(`${name} received ${result[name]!.count} of ${eventCount}`)
    return eventCount / result[name]!.seconds
  }
  const baseline = rate("eventsource")
  for (const name of Object.keys(clients)) {
    console.log(`| ${name} | ${Math.round(rate(name)).toLocaleString("en")} | ${(rate(name) / baseline).toFixed(2)}× |`)
  }
  close()
}

if (process.argv[1]?.endsWith("sse.ts")) {
  await benchParse(16 * MiB)
  await benchEndToEnd(200_000)
}
