/**
 * The serving process the server crash test kills: an EventLog in a SQLite file,
 * served by SseServer on a fixed loopback port, written by a StreamProducer that
 * goes on from the log's last event (data `n` for the n-th event) to `total` at
 * one event per `everyMillis`, then completes the stream.
 *
 *   node serverChild.mjs <db file> <port> <stream> <total> <epoch> <everyMillis>
 *
 * Prints `ready <first n it produces>` once it listens. Each start is a new
 * producer of the same stream, so it takes a higher epoch than the one before.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import { Duration, Effect, Layer, Option, Schedule, Stream } from "effect"
import { writeSync } from "node:fs"
import * as SqliteEventLog from "../../src/engines/SqliteEventLog.js"
import * as EventLog from "../../src/server/EventLog.js"
import * as SseServer from "../../src/server/SseServer.js"
import * as StreamProducer from "../../src/server/StreamProducer.js"
import { serve } from "./logServer.js"

const [db, port, stream, total, epoch, everyMillis] = process.argv.slice(2) as [string, string, string, string, string, string]

const program = Effect.gen(function*() {
  const log = yield* EventLog.EventLog
  const existing = yield* log.info(stream)
  const next = Option.match(existing, { onNone: () => 1, onSome: (info) => info.count + 1 })
  const app = yield* SseServer.make({ stream, authorize: () => Effect.void, retry: Duration.millis(50) })
  yield* serve(HttpRouter.empty.pipe(HttpRouter.get(`/streams/${stream}`, app)), Number(port))
  const producers = yield* StreamProducer.StreamProducer
  if (next <= Number(total)) {
    // Ten events a tick: paced by ticks, so a loaded machine's timers do not stretch it per event.
    const source = Stream.range(next, Number(total)).pipe(
      Stream.map((n): EventLog.EventInput => ({ data: String(n) })),
      Stream.grouped(10),
      Stream.schedule(Schedule.spaced(Duration.millis(10 * Number(everyMillis)))),
      Stream.flattenChunks
    )
    yield* producers.start(stream, source, { epoch: Number(epoch) })
  }
  writeSync(1, `ready ${next}\n`)
  return yield* Effect.never
})

const layer = StreamProducer.layer.pipe(Layer.provideMerge(SqliteEventLog.layer(db)))

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(layer))).catch((error) => {
  console.error(error)
  process.exit(1)
})
