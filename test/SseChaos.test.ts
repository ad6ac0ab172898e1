import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as EventTracker from "../src/client/EventTracker.js"
import * as SseClient from "../src/client/SseClient.js"
import { seeded } from "./support/random.js"
import * as SseServer from "./support/SseServer.js"

const total = 20_000
const dataOf = (n: number) => n % 7 === 0 ? `line one of ${n}\nline two é😀` : `event ${n} ${"p".repeat(n % 50)}`

const block = (n: number, eol: string) =>
  `id: ${n}${eol}` + dataOf(n).split("\n").map((line) => `data: ${line}${eol}`).join("") + eol

describe("SseClient under chaos", () => {
  for (const seed of [1, 2]) {
    it.scopedLive(`delivers ${total} events exactly once, in order (seed ${seed})`, () =>
      Effect.gen(function*() {
        const random = seeded(seed)
        const stats = { connections: 0, cuts: 0, refused: 0, overlap: 0 }
        const server = yield* SseServer.make(async (request, res) => {
          stats.connections++
          const header = request.headers["last-event-id"]
          const last = header === undefined ? 0 : Number(header)
          if (last >= total) return void res.writeHead(204).end()
          const roll = random()
          if (roll < 0.1) {
            stats.refused++
            return void res.writeHead(roll < 0.05 ? 503 : 429, { "retry-after": "0" }).end()
          }
          res.writeHead(200, SseServer.sseHeaders)
          // Replays from the requested id with a few events of overlap.
          const overlap = Math.min(last, Math.floor(random() * 4))
          stats.overlap += overlap
          const from = last + 1 - overlap
          const to = Math.min(total, from + Math.floor(random() * 3000))
          const eol = ["\n", "\r\n", "\r"][Math.floor(random() * 3)]!
          let text = ": hello\n\n"
          for (let n = from; n <= to; n++) text += block(n, eol)
          const bytes = Buffer.from(text)
          if (to === total || random() < 0.2) {
            // A graceful close at an event boundary.
            await SseServer.write(res, bytes)
            res.end()
          } else {
            // A cut at any byte: mid-line, mid-event, mid-UTF-8 sequence.
            stats.cuts++
            await SseServer.write(res, bytes.subarray(0, Math.floor(random() * bytes.length)))
            SseServer.cut(res)
          }
        })
        const tracker = yield* EventTracker.make({ maxTracked: 100 })
        let expected = 1
        let wrong = 0
        yield* SseClient.stream(HttpClientRequest.get(server.url), {
          tracker,
          initialDelay: "1 millis",
          maxDelay: "5 millis",
          maxAttempts: 50
        }).pipe(
          Stream.runForEach((event) =>
            Effect.sync(() => {
              if (event.id !== String(expected) || event.data !== dataOf(expected)) wrong++
              expected++
            })
          ),
          Effect.provide(NodeHttpClient.layerUndici)
        )
        expect(wrong).toBe(0)
        expect(expected - 1).toBe(total)
        // The run really was chaotic.
        expect(stats.cuts).toBeGreaterThan(3)
        expect(stats.refused).toBeGreaterThan(0)
        expect(stats.overlap).toBeGreaterThan(0)
      }), 60_000)
  }
})
