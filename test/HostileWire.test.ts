/**
 * A hostile server, seeded: on every connection it picks its own wire quirks —
 * line ends mixed per line (LF, CR, CRLF), a BOM, comments and unknown fields
 * longer than the event limit, id-only blocks, huge `retry:` values, writes split
 * at any byte (mid-CRLF, mid-UTF-8), long replays before the resume point, and
 * cuts in the middle of those replays. Whatever it does, the consumer sees every
 * event exactly once, in order, and the Last-Event-ID it sends never goes back.
 */
import { FetchHttpClient } from "@effect/platform"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as EventTracker from "../src/client/EventTracker.js"
import * as SseClient from "../src/client/SseClient.js"
import { seeded } from "./support/random.js"
import * as SseServer from "./support/SseServer.js"

const total = 3_000
const maxEventBytes = 256
const window = 200
const dataOf = (n: number) => n % 5 === 0 ? `two lines ${n}\né😀 ${n}` : `event ${n}`

interface Quirks {
  readonly eol: () => string
  readonly junk: () => string
}

const block = (n: number, q: Quirks) => {
  let text = ""
  const roll = n % 11
  // Fields in any order; junk lines between them are not part of the event.
  if (roll === 3) text += `event: tick${q.eol()}`
  text += `id: ${n}${q.eol()}` + q.junk()
  for (const line of dataOf(n).split("\n")) text += `data: ${line}${q.eol()}`
  if (roll === 7) text += `retry: 1000000000000${q.eol()}`
  return text + q.junk() + q.eol()
}

const layers = [
  ["undici", NodeHttpClient.layerUndici],
  ["fetch", FetchHttpClient.layer]
] as const

describe("SseClient against a hostile server", () => {
  for (const [name, layer] of layers) {
    for (const seed of [11, 12, 13]) {
      it.scopedLive(`${name}, seed ${seed}: every event once, in order; Last-Event-ID never goes back`, () =>
        Effect.gen(function*() {
          const random = seeded(seed)
          const pick = <A>(xs: ReadonlyArray<A>) => xs[Math.floor(random() * xs.length)]!
          const sent: Array<number> = []
          const stats = { cutsInReplay: 0, splits: 0, idOnly: 0 }
          const server = yield* SseServer.make(async (request, res) => {
            const header = request.headers["last-event-id"]
            const last = header === undefined ? 0 : Number(header)
            sent.push(last)
            if (last >= total) return void res.writeHead(204).end()
            res.writeHead(200, SseServer.sseHeaders)
            const mixed = random() < 0.5
            const fixed = pick(["\n", "\r", "\r\n"])
            let previous = ""
            // After a lone CR an LF would make one CRLF line end: a real server cannot mean two.
            const eol = () => {
              const next = mixed ? pick(["\n", "\r", "\r\n"]) : fixed
              previous = previous === "\r" && next === "\n" ? "\r\n" : next
              return previous
            }
            const quirks: Quirks = {
              eol,
              junk: () =>
                random() < 0.1
                  ? `: ${"k".repeat(maxEventBytes * 2)}${eol()}`
                  : random() < 0.05
                  ? `unknown: ${"u".repeat(maxEventBytes * 2)}${eol()}`
                  : ""
            }
            // Replays up to 150 events before the resume point (the window holds 200).
            const replay = Math.min(last, Math.floor(random() * 150))
            const from = last + 1 - replay
            const to = Math.min(total, from + replay + Math.floor(random() * 400))
            let text = random() < 0.3 ? "\uFEFF" : ""
            // An id-only block restating the resume point, as MCP servers prime a stream.
            if (last > 0 && random() < 0.3) {
              stats.idOnly++
              text += `id: ${last}\n\n`
            }
            for (let n = from; n <= to; n++) text += block(n, quirks)
            let bytes = Buffer.from(text)
            const graceful = to === total || random() < 0.2
            if (!graceful) {
              // Cut anywhere, often inside the replay.
              const inReplay = replay > 0 && random() < 0.5
              if (inReplay) stats.cutsInReplay++
              const replayBytes = Buffer.byteLength(text.slice(0, text.indexOf(`id: ${last + 1}`) + 1 || text.length))
              bytes = bytes.subarray(0, Math.floor(random() * (inReplay ? replayBytes : bytes.length)))
            }
            // Written in pieces split at any byte.
            let at = 0
            while (at < bytes.length) {
              const size = random() < 0.2 ? 1 + Math.floor(random() * 3) : 1 + Math.floor(random() * 4096)
              stats.splits++
              await SseServer.write(res, bytes.subarray(at, at + size))
              at += size
            }
            if (graceful) res.end()
            else SseServer.cut(res)
          })
          const tracker = yield* EventTracker.make({ maxTracked: window })
          const received: Array<string> = []
          yield* SseClient.stream(HttpClientRequest.get(server.url), {
            tracker,
            maxEventBytes,
            initialDelay: "1 millis",
            maxDelay: "5 millis",
            // The server's `retry: 1000000000000` must be capped, not obeyed.
            maxRetryAfter: "10 millis",
            maxAttempts: 100
          }).pipe(
            Stream.runForEach((event) => Effect.sync(() => received.push(`${event.id}:${event.data}`))),
            Effect.provide(layer)
          )
          const expected = Array.from({ length: total }, (_, i) => `${i + 1}:${dataOf(i + 1)}`)
          expect(received.length).toBe(total)
          expect(received).toEqual(expected)
          for (let i = 1; i < sent.length; i++) expect(sent[i]).toBeGreaterThanOrEqual(sent[i - 1]!)
          // The run really was hostile.
          expect(stats.cutsInReplay).toBeGreaterThan(0)
          expect(stats.idOnly).toBeGreaterThan(0)
        }), 60_000)
    }
  }
})
