/**
 * Parse throughput in `npm run bench`: raw `eventsource-parser` against
 * `Sse.parse`, and against `@effect/experimental`'s `Sse.makeChannel` on a
 * smaller payload (its cost is quadratic in chunk size). Vitest reports ops/s;
 * events/s end to end is ops/s × 100,000. For MB/s tables run `npx tsx test/bench/sse.ts`.
 */
import { afterAll, bench, describe } from "vitest"
import { cut, experimentalBytes, label, makeEndToEnd, makePayload, parseCases, parsers } from "./sse.js"

const MiB = 1024 * 1024

for (const { chunk, events } of parseCases) {
  const name = `${label(events)} events in ${label(chunk)} chunks`
  const chunks = cut(makePayload(events, 4 * MiB), chunk)
  describe(`${name}, 4 MiB`, () => {
    bench("eventsource-parser", () => void parsers.raw(chunks), { time: 400 })
    bench("Sse.parse", () => void parsers.sse(chunks), { time: 400 })
  })
  const small = cut(makePayload(events, experimentalBytes(events)), chunk)
  describe(`${name}, ${label(experimentalBytes(events))}`, () => {
    bench("eventsource-parser", () => void parsers.raw(small), { time: 200 })
    bench("@effect/experimental Sse.makeChannel", () => void parsers.experimental(small), { time: 200, iterations: 2, warmupIterations: 1, warmupTime: 0 })
  })
}

const endToEnd = await makeEndToEnd(100_000)
afterAll(endToEnd.close)

describe("end to end over loopback, 100,000 events of ~100 B", () => {
  for (const [name, run] of Object.entries(endToEnd.clients)) {
    bench(name, async () => void await run(), { time: 1500, warmupIterations: 2 })
  }
})
