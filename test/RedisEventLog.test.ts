import { afterAll, describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Clock, Context, Duration, Effect, Exit, Fiber, Layer, Option, Queue, Schedule, Stream } from "effect"
import { Redis } from "ioredis"
import * as RedisEventLog from "../src/engines/RedisEventLog.js"
import { EventLog } from "../src/server/EventLog.js"
import { keysOf } from "../src/engines/internal/redisLog.js"
import { eventLogContract } from "./support/eventLogContract.js"
import { runId } from "./support/stores.js"

const redisUrl = process.env.REDIS_URL

if (redisUrl === undefined) console.log("[RedisEventLog] Redis tests skipped: set REDIS_URL (e.g. redis://127.0.0.1:6379)")

/** Every key of this run starts with it: other runs and helpers share the Redis. */
const prefix = `sse-test-${runId}`

/** Deletes this run's keys only (SCAN by prefix; never FLUSHDB: the database is shared). */
const flushPrefix = async (url: string) => {
  const client = new Redis(url)
  try {
    let cursor = "0"
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000)
      if (keys.length > 0) await client.unlink(...keys)
      cursor = next
    } while (cursor !== "0")
  } finally {
    client.disconnect()
  }
}

if (redisUrl !== undefined) {
  afterAll(() => flushPrefix(redisUrl))

  eventLogContract("Redis", (settings) => RedisEventLog.layer(redisUrl, { prefix: `${prefix}-contract`, ...settings }))
}

/** An instance of the log (as another process would have), for the test's scope. */
const instance = (options: Partial<RedisEventLog.Settings> = {}) =>
  Effect.map(
    Layer.build(RedisEventLog.layer(redisUrl!, { prefix, ...options })),
    (context) => Context.get(context, EventLog)
  )

let n = 0
const fresh = (label: string) => `${label}-${n++}`

const raw = Effect.acquireRelease(Effect.sync(() => new Redis(redisUrl!)), (client) => Effect.sync(() => client.disconnect()))
const keys = keysOf(prefix)

describe.skipIf(redisUrl === undefined)("RedisEventLog", () => {
  it.scopedLive("two instances on one Redis: a follower on one sees appends through the other, live, then the end", () =>
    Effect.gen(function*() {
      // A long block: an added stream must wake the tail's XREAD, not wait out a round.
      const blockTimeout = Duration.seconds(60)
      const bound = Duration.millis(Duration.toMillis(blockTimeout) / 4)
      const a = yield* instance({ blockTimeout })
      const b = yield* instance({ blockTimeout })
      const stream = fresh("two")
      yield* b.create(stream)
      const seen = yield* Queue.unbounded<string>()
      const follower = yield* a.follow(stream).pipe(
        Stream.runForEach((e) => Queue.offer(seen, e.data)),
        Effect.fork
      )
      // Each append waits until the follower took the one before: it is live then, so only
      // the tail can bring the next (the first may come from its read of storage).
      for (let i = 1; i <= 3; i++) {
        yield* b.append(stream, [{ data: `e${i}` }])
        expect(yield* Queue.take(seen).pipe(Effect.timeoutFail({ duration: bound, onTimeout: () => `e${i} not seen` })))
          .toBe(`e${i}`)
      }
      yield* b.complete(stream)
      yield* Fiber.join(follower).pipe(Effect.timeoutFail({ duration: bound, onTimeout: () => "end not seen" }))
    }))

  it.scopedLive("the tail's connection cut (killed by the server): followers go on once it is made again", () =>
    Effect.gen(function*() {
      const blockTimeout = Duration.seconds(60)
      const tailPrefix = `${prefix}-cut`
      const a = Context.get(yield* Layer.build(RedisEventLog.layer(redisUrl!, { prefix: tailPrefix, blockTimeout })), EventLog)
      const b = Context.get(yield* Layer.build(RedisEventLog.layer(redisUrl!, { prefix: tailPrefix, blockTimeout })), EventLog)
      const client = yield* raw
      const stream = fresh("cut")
      yield* b.create(stream)
      const seen = yield* Queue.unbounded<string>()
      yield* Effect.forkScoped(Stream.runForEach(a.follow(stream), (e) => Queue.offer(seen, e.data)))
      yield* b.append(stream, [{ data: "before" }])
      expect(yield* Queue.take(seen)).toBe("before")
      // Only this test's two tails (a's and b's): other helpers' connections share the server.
      const name = keysOf(tailPrefix).tailConnection
      const list = (yield* Effect.promise(() => client.client("LIST") as Promise<string>)).split("\n")
      const ids = list.filter((line) => line.includes(` name=${name} `)).map((line) => line.match(/^id=(\d+)/)![1]!)
      expect(ids.length).toBe(2)
      for (const id of ids) yield* Effect.promise(() => client.client("KILL", "ID", id))
      yield* b.append(stream, [{ data: "after" }])
      const after = yield* Queue.take(seen).pipe(
        Effect.timeoutFail({ duration: Duration.millis(Duration.toMillis(blockTimeout) / 4), onTimeout: () => "follower not woken after the cut" })
      )
      expect(after).toBe("after")
    }))

  it.scopedLive("a follower on one instance is told when another deletes the stream", () =>
    Effect.gen(function*() {
      const blockTimeout = Duration.seconds(60)
      const a = yield* instance({ blockTimeout })
      const b = yield* instance({ blockTimeout })
      const stream = fresh("deleted")
      yield* b.append(stream, [{ data: "x" }])
      const follower = yield* Effect.fork(Stream.runCollect(a.follow(stream)))
      yield* Effect.sleep("100 millis")
      yield* b.delete(stream)
      const exit = yield* Fiber.await(follower).pipe(
        Effect.timeoutFail({ duration: Duration.millis(Duration.toMillis(blockTimeout) / 4), onTimeout: () => "follower not told" })
      )
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause).pipe(Option.map((e) => e._tag), Option.getOrUndefined))
        .toBe("StreamNotFound")
    }))

  it.scopedLive("on an existing client: the log uses it and leaves it open; its tail connection closes with the layer", () =>
    Effect.gen(function*() {
      const client = yield* raw
      const tails = Effect.map(
        Effect.promise(() => client.client("LIST") as Promise<string>),
        (list) => list.split("\n").filter((line) => line.includes(` name=${keys.tailConnection} `)).length
      )
      const stream = fresh("client")
      yield* Effect.scoped(Effect.gen(function*() {
        const log = Context.get(yield* Layer.build(RedisEventLog.layerClient(client, { prefix })), EventLog)
        const follower = yield* Effect.fork(Stream.runCollect(log.follow(stream)))
        yield* log.append(stream, [{ data: "x" }])
        yield* log.complete(stream)
        expect(Chunk.toReadonlyArray(yield* Fiber.join(follower)).map((e) => e.data)).toEqual(["x"])
        expect(yield* tails).toBe(1)
      }))
      expect(yield* Effect.promise(() => client.ping())).toBe("PONG")
      // The server sees the close a moment later.
      yield* tails.pipe(
        Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("20 millis") }),
        Effect.timeout("5 seconds")
      )
    }))

  it.scopedLive("after Redis lost its data (a restart without persistence), a re-created stream reissues no id a reader holds", () =>
    Effect.gen(function*() {
      // A prefix of its own: its counter starts from nothing, as after the loss.
      const lost = `${prefix}-lost`
      const log = Context.get(yield* Layer.build(RedisEventLog.layer(redisUrl!, { prefix: lost })), EventLog)
      const client = yield* raw
      const stream = fresh("lost")
      const held = yield* log.append(stream, [{ data: "1" }, { data: "2" }, { data: "3" }])
      const loseEverything = Effect.promise(async () => {
        const keys = await client.keys(`${lost}:*`)
        if (keys.length > 0) await client.del(...keys)
      })
      yield* loseEverything
      yield* Effect.sleep("2 millis")
      const renewed = yield* log.append(stream, [{ data: "new 1" }, { data: "new 2" }, { data: "new 3" }, { data: "new 4" }])
      expect(renewed.map((e) => e.id)).not.toContain(held[1]!.id)
      const refused = yield* Effect.flip(log.read(stream, { after: held[1]!.id }))
      expect(refused).toMatchObject({ _tag: "UnknownEventId", reason: "other-stream" })
      yield* loseEverything
    }))

  it.scopedLive("a fenced producer's append and end write nothing", () =>
    Effect.gen(function*() {
      const log = yield* instance()
      const client = yield* raw
      const stream = fresh("fenced")
      yield* log.append(stream, [{ data: "new" }], { epoch: 2 })
      const before = { meta: yield* Effect.promise(() => client.hgetall(keys.meta(stream))), entries: yield* Effect.promise(() => client.xrange(keys.events(stream), "-", "+")) }
      const appended = yield* Effect.flip(log.append(stream, [{ data: "stale" }, { data: "stale too" }], { epoch: 1 }))
      expect(appended).toMatchObject({ _tag: "ProducerFenced", epoch: 1, current: 2 })
      const ended = yield* Effect.flip(log.complete(stream, { epoch: 1 }))
      expect(ended).toMatchObject({ _tag: "ProducerFenced", epoch: 1, current: 2 })
      const after = { meta: yield* Effect.promise(() => client.hgetall(keys.meta(stream))), entries: yield* Effect.promise(() => client.xrange(keys.events(stream), "-", "+")) }
      expect(after).toEqual(before)
      expect(before.entries.map(([, fields]) => fields[3])).toEqual(["new"])
      expect(before.meta.epoch).toBe("2")
    }))

  it.scopedLive("names with ':', '%', unicode and lone surrogates never share keys, nor a place in the trim schedule", () =>
    Effect.gen(function*() {
      const trimInterval = Duration.millis(50)
      const log = yield* instance({ trimInterval })
      const client = yield* raw
      const tag = fresh("names")
      const names = ["a:b", "a%003ab", "a%3Ab", "a", "a:b:c", "é", "e\u0301", "\uD800", "\uFFFD", "😀", "meta:x", " "].map((name) => `${tag}/${name}`)
      // Data is the index: a lone surrogate is not UTF-8, so Redis could not keep it as data.
      for (const [i, name] of names.entries()) {
        yield* log.create(name, { retention: { maxEvents: 1 } })
        yield* log.append(name, [{ data: `${i} old` }, { data: String(i) }])
      }
      const generations = yield* Effect.forEach(names, (name) => Effect.map(log.info(name), (info) => Option.getOrThrow(info).generation))
      expect(new Set(generations).size).toBe(names.length)
      expect(new Set(names.map(keys.events)).size).toBe(names.length)
      const stored = yield* Effect.promise(() => client.keys(`${prefix}:meta:${tag}*`))
      expect(stored.length).toBe(names.length)
      // The background trim reaches each stream by its own name (200 intervals: ample on a loaded machine).
      const counts = Effect.forEach(names, (name) => Effect.map(log.info(name), (info) => Option.getOrThrow(info).count))
      yield* counts.pipe(
        Effect.repeat({ until: (all) => all.every((count) => count === 1), schedule: Schedule.spaced(trimInterval) }),
        Effect.timeout(Duration.times(trimInterval, 200))
      )
      for (const [i, name] of names.entries()) {
        expect((yield* log.read(name)).events.map((e) => e.data)).toEqual([String(i)])
      }
    }))

  it.scopedLive("retention is applied in the background: by count, and by age once the oldest event expires", () =>
    Effect.gen(function*() {
      const trimInterval = Duration.millis(50)
      const maxAgeMillis = 300
      const log = yield* instance({ trimInterval })
      const counted = fresh("count")
      yield* log.create(counted, { retention: { maxEvents: 5 } })
      for (let i = 1; i <= 20; i++) yield* log.append(counted, [{ data: `${i}` }])
      // Bounded by the settings: 200 intervals is ample on a loaded machine.
      const bound = Duration.times(trimInterval, 200)
      yield* Effect.repeat(
        Effect.map(log.info(counted), (info) => Option.getOrThrow(info).count),
        { until: (count) => count === 5, schedule: Schedule.spaced(trimInterval) }
      ).pipe(Effect.timeout(bound))
      const info = Option.getOrThrow(yield* log.info(counted))
      expect(Option.getOrThrow(info.firstId)).toBe(`${info.generation}-16`)

      const aged = fresh("age")
      yield* log.create(aged, { retention: { maxAgeMillis } })
      const appendedAt = yield* Clock.currentTimeMillis
      yield* log.append(aged, [{ data: "old 1" }, { data: "old 2" }])
      expect(Option.getOrThrow(yield* log.info(aged)).count).toBe(2)
      // Removed by a background pass once older than maxAge, never before.
      yield* Effect.repeat(
        Effect.map(log.info(aged), (info) => Option.getOrThrow(info).count),
        { until: (count) => count === 0, schedule: Schedule.spaced(trimInterval) }
      ).pipe(Effect.timeout(Duration.sum(Duration.millis(maxAgeMillis), bound)))
      expect((yield* Clock.currentTimeMillis) - appendedAt).toBeGreaterThan(maxAgeMillis)
      const young = yield* log.append(aged, [{ data: "young" }])
      expect((yield* log.read(aged)).events.map((e) => e.id)).toEqual([young[0]!.id])
    }))

})

describe("RedisEventLog without a server", () => {
  it.live("an unreachable Redis fails at layer start with an open error naming the URL, not its password", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(RedisEventLog.layer("redis://:hunter2@127.0.0.1:1/0")).pipe(Effect.scoped))
      expect(error._tag).toBe("EventLogError")
      expect(error.operation).toBe("open")
      expect(String(error.cause)).toContain("127.0.0.1:1")
      expect(String(error.cause)).not.toContain("hunter2")
      const malformed = yield* Effect.flip(Layer.build(RedisEventLog.layer("http://127.0.0.1:6379")).pipe(Effect.scoped))
      expect(malformed.operation).toBe("open")
    }).pipe(Effect.timeout("10 seconds")))

  it.live("settings that would spin or collide are an open error, before any connection", () =>
    Effect.gen(function*() {
      const unreachable = "redis://127.0.0.1:1/0"
      for (const [options, named] of [[{ blockTimeout: Duration.zero }, "blockTimeout"], [{ prefix: "" }, "prefix"]] as const) {
        const error = yield* Effect.flip(Layer.build(RedisEventLog.layer(unreachable, options)).pipe(Effect.scoped))
        expect(error.operation).toBe("open")
        expect(String(error.cause)).toContain(named)
      }
    }))
})
