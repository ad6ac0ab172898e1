/**
 * The `EventLog` contract, one suite for every backend: `eventLogContract(name, makeLayer)`
 * registers it on the layer `makeLayer(settings)` builds. The suite shares one layer
 * (fresh stream names per test, so a shared database is fine) and builds a second one
 * where a test needs other settings. Pass `{ transactional: true }` when the layer
 * also provides the `SqlClient` its appends join.
 */
import { expect, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Chunk, Context, Deferred, Duration, Effect, Either, Fiber, Layer, Metric, Option, Queue, Schedule, Stream } from "effect"
import { EventLog } from "../../src/server/EventLog.js"
import * as EventLogModule from "../../src/server/EventLog.js"
import { runId } from "./stores.js"

export type MakeLayer = (settings: Partial<EventLogModule.Settings>) => Layer.Layer<EventLog, unknown>

/** The suite's settings: small pages and buffers, so paging and fallback run on small streams. */
export const suiteSettings: Partial<EventLogModule.Settings> = {
  maxReadLimit: 50,
  readerBuffer: 16,
  maxStreamNameLength: 100,
  trimInterval: Duration.hours(1),
  pollInterval: Duration.millis(100)
}

const seqOf = (id: string) => Number(id.split("-")[1])
const generationOf = (id: string) => Number(id.split("-")[0])

/** The error an effect fails with (a success is a test failure). */
const failure = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.either(effect), Either.match({
    onLeft: Effect.succeed,
    onRight: (value) => Effect.dieMessage(`expected a failure, got ${JSON.stringify(value)}`)
  }))

const inputs = (from: number, to: number, prefix = "e") =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ data: `${prefix}${from + i}` }))

export const eventLogContract = (
  name: string,
  makeLayer: MakeLayer,
  options: { readonly transactional?: boolean } = {}
): void =>
  layer(makeLayer(suiteSettings), { timeout: "60 seconds", excludeTestServices: true })(name, (it) => {
    let n = 0
    const fresh = (label: string) => `${runId}-${name}-${label}-${n++}`

    /** Reads the whole stream from its first kept event, page by page. */
    const readAll = (log: EventLog["Type"], stream: string) =>
      Effect.gen(function*() {
        const events: Array<EventLogModule.LoggedEvent> = []
        let after: string | undefined = undefined
        while (true) {
          const page: EventLogModule.ReadResult = yield* log.read(stream, { after })
          events.push(...page.events)
          if (page.events.length === 0) return { events, end: page.end }
          after = page.events[page.events.length - 1]!.id
        }
      })

    it.effect("gives ids <generation>-<seq>, rising by one, and reads them back in order", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("ids")
        const first = yield* log.append(stream, [{ data: "a" }, { event: "tick", data: "b" }])
        const second = yield* log.append(stream, [{ data: "c" }])
        const ids = [...first, ...second].map((e) => e.id)
        expect(ids.every((id) => /^[1-9][0-9]*-[1-9][0-9]*$/.test(id))).toBe(true)
        expect(new Set(ids.map(generationOf)).size).toBe(1)
        expect(ids.map(seqOf)).toEqual([1, 2, 3])
        expect(first.map((e) => [e.event, e.data])).toEqual([["message", "a"], ["tick", "b"]])
        const read = yield* log.read(stream)
        expect(read.events).toEqual([...first, ...second])
        expect(Option.isNone(read.end)).toBe(true)
        const info = Option.getOrThrow(yield* log.info(stream))
        expect(info).toMatchObject({ stream, count: 3, firstId: Option.some(ids[0]), lastId: Option.some(ids[2]) })
        expect(Option.isNone(info.end)).toBe(true)
      }))

    it.effect("10,000 appends from 10 fibers at once: every id once, read back in append order", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("concurrent")
        const fibers = 10
        const each = 1_000
        const returned = yield* Effect.forEach(
          Array.from({ length: fibers }, (_, f) => f),
          (f) =>
            Effect.forEach(
              Array.from({ length: each }, (_, i) => i),
              (i) => Effect.map(log.append(stream, [{ data: `${f}:${i}` }]), (events) => events[0]!),
              { concurrency: 1 }
            ),
          { concurrency: "unbounded" }
        )
        const { events } = yield* readAll(log, stream)
        expect(events.length).toBe(fibers * each)
        expect(new Set(events.map((e) => e.id)).size).toBe(fibers * each)
        expect(events.map((e) => seqOf(e.id))).toEqual(Array.from({ length: fibers * each }, (_, i) => i + 1))
        // What append returned is what the log holds under that id, and each fiber's order is kept.
        const byId = new Map(events.map((e) => [e.id, e.data]))
        for (const [f, list] of returned.entries()) {
          expect(list.map((e) => byId.get(e.id))).toEqual(list.map((_, i) => `${f}:${i}`))
          expect(list.every((e, i) => i === 0 || seqOf(e.id) > seqOf(list[i - 1]!.id))).toBe(true)
        }
      }), { timeout: 120_000 })

    it.effect("read: after and limit, a larger limit lowered to maxReadLimit, the end only once reached", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("read")
        const events = yield* log.append(stream, inputs(1, 60))
        const page = yield* log.read(stream, { after: events[9]!.id, limit: 5 })
        expect(page.events.map((e) => e.data)).toEqual(["e11", "e12", "e13", "e14", "e15"])
        expect((yield* log.read(stream, { limit: 1_000 })).events.length).toBe(suiteSettings.maxReadLimit)
        yield* log.complete(stream)
        const before = yield* log.read(stream, { after: events[50]!.id, limit: 3 })
        expect(Option.isNone(before.end)).toBe(true)
        const last = yield* log.read(stream, { after: events[56]!.id })
        expect(last.events.map((e) => e.data)).toEqual(["e58", "e59", "e60"])
        expect(last.end).toEqual(Option.some({ _tag: "Completed" }))
        const past = yield* log.read(stream, { after: events[59]!.id })
        expect(past).toEqual({ events: [], end: Option.some({ _tag: "Completed" }) })
      }))

    it.effect("follow: replays after `after`, sees appends made after it started, in order, and ends at complete", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("follow")
        const early = yield* log.append(stream, inputs(1, 3))
        const seen = yield* Queue.unbounded<EventLogModule.LoggedEvent>()
        const follower = yield* log.follow(stream, { after: early[0]!.id }).pipe(
          Stream.tap((event) => Queue.offer(seen, event)),
          Stream.runCollect,
          Effect.fork
        )
        expect((yield* Queue.takeBetween(seen, 2, 2)).pipe(Chunk.map((e) => e.data), Chunk.toArray)).toEqual(["e2", "e3"])
        // The follower is live now: these come after it started.
        for (let i = 4; i <= 30; i++) yield* log.append(stream, [{ data: `e${i}` }])
        yield* log.append(stream, inputs(31, 100))
        yield* log.complete(stream)
        const all = Chunk.toArray(yield* Fiber.join(follower))
        expect(all.map((e) => e.data)).toEqual(inputs(2, 100).map((e) => e.data))
        expect(all.map((e) => seqOf(e.id))).toEqual(Array.from({ length: 99 }, (_, i) => i + 2))
      }))

    it.effect("follow from the start, and several followers of one stream each get every event once", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("followers")
        yield* log.create(stream)
        const followers = yield* Effect.forEach(
          [0, 1, 2],
          () => Effect.fork(Stream.runCollect(log.follow(stream))),
          { concurrency: "unbounded" }
        )
        yield* Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) => log.append(stream, inputs(i * 10 + 1, i * 10 + 10)), {
          discard: true
        })
        yield* log.complete(stream)
        for (const follower of followers) {
          expect(Chunk.toArray(yield* Fiber.join(follower)).map((e) => e.data)).toEqual(inputs(1, 100).map((e) => e.data))
        }
      }))

    it.effect("a reader back at a completed stream gets the rest, then the end; appends and other ends are refused", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("complete")
        const events = yield* log.append(stream, inputs(1, 5))
        yield* log.complete(stream)
        yield* log.complete(stream)
        const rest = yield* Stream.runCollect(log.follow(stream, { after: events[2]!.id }))
        expect(Chunk.toArray(rest).map((e) => e.data)).toEqual(["e4", "e5"])
        expect(Chunk.size(yield* Stream.runCollect(log.follow(stream, { after: events[4]!.id })))).toBe(0)
        const refused = yield* failure(log.append(stream, [{ data: "late" }]))
        expect(refused).toMatchObject({ _tag: "StreamEnded", stream, end: { _tag: "Completed" } })
        expect(yield* failure(log.fail(stream, "boom"))).toMatchObject({ _tag: "StreamEnded" })
        expect(Option.getOrThrow(yield* log.info(stream)).end).toEqual(Option.some({ _tag: "Completed" }))
        expect((yield* readAll(log, stream)).events.length).toBe(5)
      }))

    it.effect("fail: followers get the events, then a typed StreamEnded carrying the reason", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("fail")
        yield* log.create(stream)
        const seen = yield* Queue.unbounded<EventLogModule.LoggedEvent>()
        const follower = yield* log.follow(stream).pipe(
          Stream.tap((event) => Queue.offer(seen, event)),
          Stream.runDrain,
          Effect.either,
          Effect.fork
        )
        yield* log.append(stream, inputs(1, 1))
        yield* Queue.take(seen)
        yield* log.append(stream, inputs(2, 3))
        yield* log.fail(stream, "upstream closed")
        const result = yield* Fiber.join(follower)
        expect(Either.getLeft(result)).toEqual(
          Option.some(new EventLogModule.StreamEnded({ stream, end: { _tag: "Failed", reason: "upstream closed" } }))
        )
        expect(Chunk.toArray(yield* Queue.takeAll(seen)).map((e) => e.data)).toEqual(["e2", "e3"])
        expect((yield* log.read(stream)).end).toEqual(Option.some({ _tag: "Failed", reason: "upstream closed" }))
        const again = yield* failure(Stream.runDrain(log.follow(stream)))
        expect(again).toMatchObject({ _tag: "StreamEnded", end: { _tag: "Failed", reason: "upstream closed" } })
      }))

    it.effect("a stream deleted and created again never reissues an id: the old one is UnknownEventId", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("recreate")
        const old = yield* log.append(stream, inputs(1, 5))
        yield* log.delete(stream)
        expect(Option.isNone(yield* log.info(stream))).toBe(true)
        expect(yield* failure(log.read(stream))).toMatchObject({ _tag: "StreamNotFound", stream })
        const renewed = yield* log.append(stream, inputs(1, 10, "new"))
        const oldIds = new Set(old.map((e) => e.id))
        expect(renewed.some((e) => oldIds.has(e.id))).toBe(false)
        for (const held of [old[0]!.id, old[4]!.id]) {
          expect(yield* failure(log.read(stream, { after: held }))).toMatchObject({
            _tag: "UnknownEventId",
            reason: "other-stream"
          })
          expect(yield* failure(Stream.runDrain(log.follow(stream, { after: held })))).toMatchObject({
            _tag: "UnknownEventId"
          })
        }
      }))

    it.effect("another stream's id yields nothing of it", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const a = fresh("a")
        const b = fresh("b")
        const ofA = yield* log.append(a, inputs(1, 5, "a"))
        yield* log.append(b, inputs(1, 5, "b"))
        expect(yield* failure(log.read(b, { after: ofA[1]!.id }))).toMatchObject({
          _tag: "UnknownEventId",
          stream: b,
          reason: "other-stream"
        })
        expect(yield* failure(Stream.runCollect(log.follow(b, { after: ofA[1]!.id })))).toMatchObject({
          _tag: "UnknownEventId"
        })
      }))

    it.effect("a follower of a stream that is deleted ends with StreamNotFound", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("deleted")
        yield* log.append(stream, inputs(1, 1))
        const seen = yield* Queue.unbounded<EventLogModule.LoggedEvent>()
        const follower = yield* log.follow(stream).pipe(
          Stream.tap((event) => Queue.offer(seen, event)),
          Stream.runDrain,
          Effect.either,
          Effect.fork
        )
        yield* Queue.take(seen)
        yield* log.delete(stream)
        expect(Either.getLeft(yield* Fiber.join(follower))).toEqual(Option.some(new EventLogModule.StreamNotFound({ stream })))
      }))

    it.effect("retention by count: trim keeps the newest, an older `after` is a typed gap, never a replay", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("count")
        yield* log.create(stream, { retention: { maxEvents: 3 } })
        const events = yield* log.append(stream, inputs(1, 10))
        expect(yield* log.trim(stream)).toBe(7)
        expect(yield* log.trim(stream)).toBe(0)
        const info = Option.getOrThrow(yield* log.info(stream))
        expect(info).toMatchObject({ count: 3, firstId: Option.some(events[7]!.id), lastId: Option.some(events[9]!.id) })
        expect(info.retention).toEqual({ maxEvents: 3 })
        expect(yield* failure(log.read(stream, { after: events[1]!.id }))).toEqual(
          new EventLogModule.EventLogGap({ stream, requested: events[1]!.id, firstAvailable: events[7]!.id })
        )
        expect(yield* failure(Stream.runDrain(log.follow(stream, { after: events[5]!.id })))).toMatchObject({
          _tag: "EventLogGap",
          firstAvailable: events[7]!.id
        })
        // Right before the first kept event is no gap.
        expect((yield* log.read(stream, { after: events[6]!.id })).events.map((e) => e.data)).toEqual(["e8", "e9", "e10"])
        expect((yield* log.read(stream)).events.map((e) => e.data)).toEqual(["e8", "e9", "e10"])
      }))

    it.effect("retention by age (real time): events older than maxAgeMillis go, younger ones stay", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("age")
        const maxAgeMillis = 300
        yield* log.create(stream, { retention: { maxAgeMillis } })
        yield* log.append(stream, inputs(1, 4))
        expect(yield* log.trim(stream)).toBe(0)
        yield* Effect.sleep(Duration.millis(maxAgeMillis * 2))
        const young = yield* log.append(stream, inputs(5, 6))
        expect(yield* log.trim(stream)).toBe(4)
        expect((yield* log.read(stream)).events).toEqual(young)
      }))

    it.scoped("the layer trims in the background every trimInterval", () =>
      Effect.gen(function*() {
        const trimInterval = Duration.millis(50)
        const context = yield* Layer.build(makeLayer({ ...suiteSettings, trimInterval }))
        const log = Context.get(context, EventLog)
        const stream = fresh("background")
        yield* log.create(stream, { retention: { maxEvents: 2 } })
        yield* log.append(stream, inputs(1, 5))
        const before = yield* Metric.value(EventLogModule.trimmed)
        // Bounded by the setting: 200 intervals is ample on a loaded machine.
        const count = log.info(stream).pipe(Effect.map((info) => Option.getOrThrow(info).count))
        yield* count.pipe(
          Effect.repeat({ until: (count) => count <= 2, schedule: Schedule.spaced(trimInterval) }),
          Effect.timeout(Duration.times(trimInterval, 200))
        )
        expect(yield* count).toBe(2)
        expect((yield* Metric.value(EventLogModule.trimmed)).count).toBeGreaterThanOrEqual(before.count + 3)
      }))

    it.scoped("settings out of their rules fail the layer with a typed error", () =>
      Effect.gen(function*() {
        for (const bad of [{ readerBuffer: 0 }, { maxReadLimit: -1 }, { maxStreamNameLength: 1.5 }, { pollInterval: Duration.zero }]) {
          const error = yield* failure(Layer.build(makeLayer({ ...suiteSettings, ...bad })))
          expect(error).toMatchObject({ _tag: "EventLogError", operation: "open" })
          expect(String((error as EventLogModule.EventLogError).cause)).toContain(Object.keys(bad)[0]!)
        }
      }))

    it.effect("a producer whose epoch was taken over cannot append or end: the log holds the new producer's events", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("fenced")
        yield* log.append(stream, [{ data: "old-1" }], { epoch: 1 })
        yield* log.append(stream, [{ data: "new-1" }], { epoch: 2 })
        const refused = yield* failure(log.append(stream, [{ data: "old-2" }, { data: "old-3" }], { epoch: 1 }))
        expect(refused).toEqual(new EventLogModule.ProducerFenced({ stream, epoch: 1, current: 2 }))
        expect(yield* failure(log.complete(stream, { epoch: 1 }))).toMatchObject({ _tag: "ProducerFenced", current: 2 })
        expect(yield* failure(log.fail(stream, "stale", { epoch: 1 }))).toMatchObject({ _tag: "ProducerFenced" })
        yield* log.append(stream, [{ data: "new-2" }], { epoch: 2 })
        yield* log.append(stream, [{ data: "newer-1" }], { epoch: 3 })
        expect(yield* failure(log.append(stream, [{ data: "new-3" }], { epoch: 2 }))).toMatchObject({ current: 3 })
        yield* log.complete(stream, { epoch: 3 })
        const { end, events } = yield* readAll(log, stream)
        expect(events.map((e) => e.data)).toEqual(["old-1", "new-1", "new-2", "newer-1"])
        expect(end).toEqual(Option.some({ _tag: "Completed" }))
      }))

    it.effect("a slow follower with a small buffer does not hold up a fast one and still gets every event once, in order", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("slow")
        yield* log.create(stream)
        const gate = yield* Deferred.make<void>()
        const slowStarted = yield* Deferred.make<void>()
        const fallbacksBefore = (yield* Metric.value(EventLogModule.readerFallbacks)).count
        const slow = yield* log.follow(stream).pipe(
          Stream.tap(() => Effect.zipRight(Deferred.succeed(slowStarted, undefined), Deferred.await(gate))),
          Stream.runCollect,
          Effect.fork
        )
        const fast = yield* Effect.fork(Stream.runCollect(log.follow(stream)))
        yield* log.append(stream, inputs(1, 1))
        yield* Deferred.await(slowStarted)
        // The slow follower holds its first event; 40 appends of 10 outrun its buffer of 16.
        for (let i = 0; i < 40; i++) yield* log.append(stream, inputs(i * 10 + 2, i * 10 + 11))
        yield* log.complete(stream)
        const expected = inputs(1, 401).map((e) => e.data)
        expect(Chunk.toArray(yield* Fiber.join(fast)).map((e) => e.data)).toEqual(expected)
        yield* Deferred.succeed(gate, undefined)
        expect(Chunk.toArray(yield* Fiber.join(slow)).map((e) => e.data)).toEqual(expected)
        expect((yield* Metric.value(EventLogModule.readerFallbacks)).count).toBeGreaterThan(fallbacksBefore)
      }))

    it.effect("bad input is a typed error and writes nothing", () =>
      Effect.gen(function*() {
        const log = yield* EventLog
        const stream = fresh("bad")
        const events = yield* log.append(stream, inputs(1, 3))
        const generation = generationOf(events[0]!.id)
        const huge = "9".repeat(100_000)
        for (const after of ["abc", "", "1-", "-1", "1-0", "0-1", `${generation}--1`, "1-2-3", " 1-1", "1e3-1", huge, `${huge}-1`]) {
          const error = yield* failure(log.read(stream, { after }))
          expect(error).toMatchObject({ _tag: "UnknownEventId", reason: "malformed" })
          expect((error as EventLogModule.UnknownEventId).id.length).toBeLessThanOrEqual(65)
          expect(yield* failure(Stream.runDrain(log.follow(stream, { after })))).toMatchObject({ _tag: "UnknownEventId" })
        }
        expect(yield* failure(log.read(stream, { after: `${generation}-4` }))).toMatchObject({ reason: "ahead" })
        expect(yield* failure(log.read(stream, { after: `${generation}-999999999999999` }))).toMatchObject({ reason: "ahead" })
        for (const limit of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
          expect(yield* failure(log.read(stream, { limit }))).toMatchObject({ _tag: "InvalidRequest", operation: "read" })
        }
        expect(yield* failure(log.append(stream, []))).toMatchObject({ _tag: "InvalidRequest", operation: "append" })
        expect(yield* failure(log.append(stream, [{ data: "ok" }, { event: "two\nlines", data: "x" }]))).toMatchObject({
          _tag: "InvalidRequest"
        })
        expect(Option.getOrThrow(yield* log.info(stream)).count).toBe(3)
        const tooLong = "s".repeat(suiteSettings.maxStreamNameLength! + 1)
        for (const name of ["", tooLong]) {
          expect(yield* failure(log.append(name, [{ data: "x" }]))).toMatchObject({ _tag: "InvalidRequest" })
          expect(yield* failure(log.create(name))).toMatchObject({ _tag: "InvalidRequest" })
          expect(yield* failure(log.read(name))).toMatchObject({ _tag: "InvalidRequest" })
          expect(yield* failure(Stream.runDrain(log.follow(name)))).toMatchObject({ _tag: "InvalidRequest" })
        }
        expect(Option.isNone(yield* log.info(tooLong.slice(1)))).toBe(true)
        const empty = fresh("empty")
        expect(yield* failure(log.append(empty, []))).toMatchObject({ _tag: "InvalidRequest" })
        expect(Option.isNone(yield* log.info(empty))).toBe(true)
        for (const retention of [{ maxEvents: 0 }, { maxAgeMillis: -5 }, { maxEvents: 2.5 }]) {
          expect(yield* failure(log.create(empty, { retention }))).toMatchObject({ _tag: "InvalidRequest" })
        }
        expect(Option.isNone(yield* log.info(empty))).toBe(true)
        expect(yield* failure(log.read(fresh("missing")))).toMatchObject({ _tag: "StreamNotFound" })
        expect(yield* failure(Stream.runDrain(log.follow(fresh("missing"))))).toMatchObject({ _tag: "StreamNotFound" })
        expect(yield* failure(log.complete(fresh("missing")))).toMatchObject({ _tag: "StreamNotFound" })
      }))

    if (options.transactional) {
      it.effect("an append inside the caller's transaction commits with it, and leaves nothing when it rolls back", () =>
        Effect.gen(function*() {
          const log = yield* EventLog
          const sql = Option.getOrThrow(yield* Effect.serviceOption(SqlClient.SqlClient))
          const stream = fresh("tx")
          const rolledBack = yield* sql.withTransaction(
            Effect.zipRight(log.append(stream, inputs(1, 3)), Effect.fail("upstream cursor conflict" as const))
          ).pipe(Effect.flip)
          expect(rolledBack).toBe("upstream cursor conflict")
          expect(Option.isNone(yield* log.info(stream))).toBe(true)
          yield* log.append(stream, inputs(1, 1))
          yield* sql.withTransaction(
            Effect.zipRight(log.append(stream, inputs(2, 3)), Effect.fail("later failure" as const))
          ).pipe(Effect.flip)
          const kept = yield* log.append(stream, inputs(4, 4))
          expect((yield* log.read(stream)).events.map((e) => e.data)).toEqual(["e1", "e4"])
          expect(seqOf(kept[0]!.id)).toBe(2)
          const committed = yield* sql.withTransaction(log.append(stream, inputs(5, 6)))
          expect((yield* log.read(stream, { after: kept[0]!.id })).events).toEqual(committed)
        }))
    }
  })
