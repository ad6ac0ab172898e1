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
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Duration, Effect, Layer, Option, Schedule, Stream } from "effect"
import { writeSync } from "node:fs"
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
    const source = Stream.range(next, Number(total)).pipe(
      Stream.map((n): EventLog.EventInput => ({ data: String(n) })),
      Stream.schedule(Schedule.spaced(Duration.millis(Number(everyMillis))))
    )
    yield* producers.start(stream, source, { epoch: Number(epoch) })
  }
  writeSync(1, `ready ${next}\n`)
  return yield* Effect.never
})

const layer = StreamProducer.layer.pipe(
  Layer.provideMerge(EventLog.layerSql({ pollInterval: Duration.millis(20) })),
  Layer.provide(SqliteClient.layer({ filename: db }))
)

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(layer))).catch((error) => {
  console.error(error)
  process.exit(1)
})
