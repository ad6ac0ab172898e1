import { describe, expect, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { join } from "node:path"
import { Chunk, Context, Duration, Effect, Fiber, Layer, Metric, Option, Queue, Stream } from "effect"
import * as CursorStore from "../src/store/CursorStore.js"
import * as PgEventLog from "../src/engines/PgEventLog.js"
import * as SqliteEventLog from "../src/engines/SqliteEventLog.js"
import * as EventLog from "../src/server/EventLog.js"
import { eventLogContract } from "./support/eventLogContract.js"
import { notePgSkip, pgUrl, runId, tempDir } from "./support/stores.js"

eventLogContract("EventLog memory", EventLog.layerMemory)

eventLogContract(
  "EventLog SQLite",
  (settings) => Layer.unwrapScoped(Effect.map(tempDir("sse-log-"), (dir) => SqliteEventLog.layer(join(dir, "nested", "log.db"), settings))),
  { transactional: true }
)

notePgSkip("EventLog")
if (pgUrl !== undefined) {
  eventLogContract("EventLog PostgreSQL", (settings) => PgEventLog.layer(pgUrl!, settings), { transactional: true })
}

/** Collects a follower's events as they come, so a test can wait for the live ones. */
const following = (log: EventLog.EventLog["Type"], stream: string) =>
  Effect.gen(function*() {
    const seen = yield* Queue.unbounded<string>()
    const fiber = yield* log.follow(stream).pipe(
      Stream.tap((event) => Queue.offer(seen, event.data)),
      Stream.runCollect,
      Effect.fork
    )
    return { seen, fiber }
  })

const inputs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => ({ data: `e${from + i}` }))

describe("EventLog fan-out", () => {
  it.scopedLive("the followers of a stream in a process share one subscription (one hub: one poll or listener wake-up)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("sse-log-hubs-")
      const log = Context.get(yield* Layer.build(SqliteEventLog.layer(join(dir, "log.db"))), EventLog.EventLog)
      const hubs = Effect.map(Metric.value(EventLog.subscriptions), (state) => state.value)
      const readers = Effect.map(Metric.value(EventLog.readers), (state) => state.value)
      const [hubsBefore, readersBefore] = [yield* hubs, yield* readers]
      const followers = []
      for (const stream of ["a", "b"]) {
        yield* log.create(stream)
        for (let i = 0; i < 10; i++) followers.push(yield* following(log, stream))
      }
      yield* log.append("a", inputs(1, 1))
      yield* log.append("b", inputs(1, 1))
      for (const follower of followers) expect(yield* Queue.take(follower.seen)).toBe("e1")
      expect((yield* hubs) - hubsBefore).toBe(2)
      expect((yield* readers) - readersBefore).toBe(20)
      yield* Effect.forEach(followers, (follower) => Fiber.interrupt(follower.fiber), { discard: true })
      expect(yield* hubs).toBe(hubsBefore)
      expect(yield* readers).toBe(readersBefore)
    }))
})

describe("EventLog SQLite across layers", () => {
  it.scopedLive("a follower sees appends made through another layer on the same file, by the shared poll", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("sse-log-shared-")
      const file = join(dir, "log.db")
      const reader = Context.get(yield* Layer.build(SqliteEventLog.layer(file, { pollInterval: Duration.millis(50) })), EventLog.EventLog)
      const writer = Context.get(yield* Layer.build(SqliteEventLog.layer(file)), EventLog.EventLog)
      yield* writer.create("orders")
      const { fiber, seen } = yield* following(reader, "orders")
      yield* writer.append("orders", inputs(1, 1))
      expect(yield* Queue.take(seen)).toBe("e1")
      yield* writer.append("orders", inputs(2, 20))
      yield* writer.complete("orders")
      expect(Chunk.toArray(yield* Fiber.join(fiber)).map((e) => e.data)).toEqual(inputs(1, 20).map((e) => e.data))
    }))

  it.scopedLive("shares the file with the cursors: the append and the upstream's cursor commit together or not at all", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("sse-log-cursors-")
      const context = yield* Layer.build(
        Layer.mergeAll(EventLog.layerSql(), CursorStore.layerSql).pipe(
          Layer.provideMerge(SqliteClient.layer({ filename: join(dir, "cursors.db") }))
        )
      )
      const log = Context.get(context, EventLog.EventLog)
      const cursors = Context.get(context, CursorStore.CursorStore)
      const sql = Context.get(context, SqlClient.SqlClient)
      const cursor = (seq: number) => ({ sessionId: "upstream", lastEventId: `u${seq}`, seq, updatedAt: Date.now() })
      const handled = (seq: number) =>
        Effect.zipRight(log.append("relay", inputs(seq, seq)), cursors.saveAll([cursor(seq)]))
      yield* sql.withTransaction(handled(1))
      const failed = yield* sql.withTransaction(Effect.zipRight(handled(2), Effect.fail("crash" as const))).pipe(Effect.flip)
      expect(failed).toBe("crash")
      expect((yield* log.read("relay")).events.map((e) => e.data)).toEqual(["e1"])
      expect(Option.getOrThrow(yield* cursors.load("upstream")).lastEventId).toBe("u1")
    }))
})

describe("EventLog PostgreSQL across instances", () => {
  if (pgUrl === undefined) return it.skip("PG_URL unset", () => {})

  it.scopedLive("a follower on one instance sees appends through another live, by LISTEN/NOTIFY (no poll)", () =>
    Effect.gen(function*() {
      // An hour between polls: only a notification can bring the appends in time.
      const settings = { pollInterval: Duration.hours(1) }
      const reader = Context.get(yield* Layer.build(PgEventLog.layer(pgUrl!, settings)), EventLog.EventLog)
      const writer = Context.get(yield* Layer.build(PgEventLog.layer(pgUrl!, settings)), EventLog.EventLog)
      const stream = `${runId}-across`
      yield* writer.create(stream)
      const { fiber, seen } = yield* following(reader, stream)
      yield* writer.append(stream, inputs(1, 1))
      expect(yield* Queue.take(seen)).toBe("e1")
      // Each append after the follower took the one before: it waits live, so only a notification can wake it.
      for (let i = 2; i <= 20; i++) {
        yield* writer.append(stream, inputs(i, i))
        expect(yield* Queue.take(seen).pipe(Effect.timeout("10 seconds"))).toBe(`e${i}`)
      }
      yield* writer.complete(stream)
      const all = yield* Fiber.join(fiber).pipe(Effect.timeout("10 seconds"))
      expect(Chunk.toArray(all).map((e) => e.data)).toEqual(inputs(1, 20).map((e) => e.data))
    }))
})
