/**
 * Heap retained by a full dedup window: 10,000 events of ~30 KB with 36-character
 * (UUID) ids, parsed from 64 KiB chunks by `Sse.parse` and each recorded in an
 * `EventTracker` with `maxTracked: 10_000`; nothing else is kept. The window should
 * hold only the ids' own characters (~1 MB), never the chunks they were read from.
 *
 *   node --expose-gc --import tsx test/bench/window-heap.ts
 */
import { Effect, Option, Stream } from "effect"
import { randomUUID } from "node:crypto"
import * as EventTracker from "../../src/client/EventTracker.js"
import * as Sse from "../../src/wire/Sse.js"

const events = 10_000
const dataBytes = 30_000
const chunkBytes = 64 * 1024
const targetBytes = 2 * 1024 * 1024

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")

/** The event stream cut into fresh 64 KiB chunks, produced one at a time as a socket would. */
const chunks = (): Stream.Stream<Uint8Array> => {
  const data = "x".repeat(dataBytes)
  let pending = Buffer.alloc(0)
  let sent = 0
  return Stream.unfold(undefined, () => {
    while (pending.length < chunkBytes && sent < events) {
      pending = Buffer.concat([pending, Buffer.from(`id: ${randomUUID()}\ndata: ${data}\n\n`)])
      sent++
    }
    if (pending.length === 0) return Option.none()
    // A copy: each chunk its own allocation, like a network read.
    const chunk = Uint8Array.from(pending.subarray(0, chunkBytes))
    pending = pending.subarray(chunkBytes)
    return Option.some([chunk, undefined])
  })
}

const retained = Effect.gen(function*() {
  const tracker = yield* EventTracker.make({ maxTracked: events })
  gc()
  gc()
  const before = process.memoryUsage().heapUsed
  yield* chunks().pipe(Sse.parse(), Stream.runForEach(tracker.recordEvent))
  gc()
  gc()
  const after = process.memoryUsage().heapUsed
  if ((yield* tracker.snapshot).recentIds.length !== events) throw new Error("the window is not full")
  return after - before
})

const bytes = await Effect.runPromise(retained)
console.log(
  `\nheap retained by a full window (${events.toLocaleString("en")} UUID ids from ${dataBytes / 1000} KB events ` +
    `in ${chunkBytes / 1024} KiB chunks): ${(bytes / 1024 / 1024).toFixed(2)} MiB; ` +
    `target ≤ 2 MB: ${bytes <= targetBytes ? "ok" : "MISSED"}`
)
