import type * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Context,
  Data,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  Metric,
  Option,
  Queue,
  type Scope,
  Stream,
  TestClock
} from "effect"
import { Backpressure, EventTracker, SseClient, SseEvent } from "../src/index.js"
import * as SseServer from "./support/SseServer.js"
import { IdWindow } from "../src/client/internal/idWindow.js"
import { idOnly } from "../src/wire/internal/idOnly.js"
import { SettingsError } from "../src/Settings.js"

const withId = (id: string) => new SseEvent({ id })
/** What the parser makes of `id: <id>` followed by a blank line. */
const idOnlyBlock = (id: string) => Object.assign(new SseEvent({ id }), { [idOnly]: true as const })
const noId = (data: string) => new SseEvent({ data })
const counterValue = (counter: Metric.Metric.Counter<number>) =>
  Effect.map(Metric.value(counter), (state) => state.count)

describe("EventTracker (the cases of the original Rust tracker)", () => {
  it.effect("test_async_callback_called: the async callback receives the new id", () =>
    Effect.gen(function*() {
      const received = yield* Queue.bounded<string>(10)
      const tracker = yield* EventTracker.make({
        maxTracked: 100,
        onNewEventAsync: (id) => Queue.offer(received, id)
      })
      expect(yield* tracker.recordEvent(withId("test-123"))).toBe("new")
      expect(yield* Queue.take(received)).toBe("test-123")
    }))

  it.effect("test_backpressure_applied: a full queue holds recordEvent until the offer times out", () =>
    Effect.gen(function*() {
      const queue = yield* Queue.bounded<string>(1)
      yield* Queue.offer(queue, "fill")
      const outcomes: Array<Backpressure.OfferResult> = []
      const tracker = yield* EventTracker.make({
        maxTracked: 100,
        onNewEventAsync: (id) =>
          Backpressure.offer(queue, id, { timeout: "50 millis" }).pipe(Effect.map((r) => void outcomes.push(r)))
      })
      const recording = yield* Effect.fork(tracker.recordEvent(withId("blocked")))
      yield* TestClock.adjust("49 millis")
      // Still waiting on the full queue: that is the backpressure.
      expect(Option.isNone(yield* Fiber.poll(recording))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(recording)).toBe("new")
      expect(outcomes).toEqual(["timedOut"])
      // The timed-out item was withdrawn, not silently queued.
      expect(yield* Queue.takeAll(queue)).toEqual(expect.objectContaining({ length: 1 }))
    }))

  it.effect("backpressure released: recordEvent completes once the consumer takes", () =>
    Effect.gen(function*() {
      const queue = yield* Queue.bounded<string>(1)
      yield* Queue.offer(queue, "fill")
      const tracker = yield* EventTracker.make({
        maxTracked: 100,
        onNewEventAsync: (id) => Effect.asVoid(Backpressure.offer(queue, id, { timeout: "1 second" }))
      })
      const recording = yield* Effect.fork(tracker.recordEvent(withId("e1")))
      yield* TestClock.adjust("10 millis")
      expect(Option.isNone(yield* Fiber.poll(recording))).toBe(true)
      expect(yield* Queue.take(queue)).toBe("fill")
      expect(yield* Fiber.join(recording)).toBe("new")
      expect(yield* Queue.take(queue)).toBe("e1")
    }))

  it.effect("backward compatible: sync callback only, duplicates and id-less events ignored", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const tracker = yield* EventTracker.make({ maxTracked: 100, onNewEvent: (id) => void seen.push(id) })
      expect(yield* tracker.recordEvent(withId("a"))).toBe("new")
      expect(yield* tracker.recordEvent(withId("a"))).toBe("duplicate")
      expect(yield* tracker.recordEvent(new SseEvent({ data: "no id" }))).toBe("no-id")
      expect(yield* tracker.recordEvent(new SseEvent({ id: "", data: "empty id" }))).toBe("no-id")
      expect(yield* tracker.recordEvent(withId("b"))).toBe("new")
      expect(seen).toEqual(["a", "b"])
      expect(yield* tracker.lastEventId).toEqual(Option.some("b"))
      expect(yield* tracker.isDuplicate("a")).toBe(true)
      expect(yield* tracker.isDuplicate("c")).toBe(false)
    }))
})

describe("EventTracker", () => {
  it("SseEvent defaults like the original Rust tracker's Default::default()", () => {
    const event = new SseEvent({ id: "test-123" })
    expect(event.id).toBe("test-123")
    expect(event.event).toBe("message")
    expect(event.data).toBe("")
    expect(event.retry).toBeUndefined()
  })

  it.effect("a bad maxTracked is a typed error", () =>
    Effect.gen(function*() {
      for (const maxTracked of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        const error = yield* Effect.flip(EventTracker.make({ maxTracked }))
        expect(error._tag).toBe("SettingsError")
        expect(error).toBeInstanceOf(SettingsError)
        // The deprecated name is the same class, so old `instanceof` checks still hold.
        expect(error).toBeInstanceOf(EventTracker.TrackerOptionsError)
        expect(error.setting).toBe("maxTracked")
        expect(error.module).toBe("EventTracker")
      }
    }))

  it.effect("order per new event: lastEventId, then the sync callback, then the async callback", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const tracker: EventTracker.EventTracker = yield* EventTracker.make({
        maxTracked: 10,
        onNewEvent: (id) => void log.push(`sync:${id}`),
        onNewEventAsync: (id) =>
          Effect.flatMap(
            Effect.suspend(() => tracker.lastEventId),
            (last) => Effect.sync(() => void log.push(`async:${id}:last=${Option.getOrElse(last, () => "-")}`))
          )
      })
      const fresh = yield* tracker.recordAll(["1", "2", "1", "3"].map(withId))
      expect(fresh.map((e) => e.id)).toEqual(["1", "2", "3"])
      expect(log).toEqual(["sync:1", "async:1:last=1", "sync:2", "async:2:last=2", "sync:3", "async:3:last=3"])
    }))

  it.effect("the async callback's requirements are provided at make time", () =>
    Effect.gen(function*() {
      class Sink extends Context.Tag("test/Sink")<Sink, Array<string>>() {}
      const ids: Array<string> = []
      const tracker = yield* EventTracker.make({
        maxTracked: 10,
        onNewEventAsync: (id) => Effect.map(Sink, (sink) => void sink.push(id))
      }).pipe(Effect.provideService(Sink, ids))
      // recordEvent needs no Sink: the type says so and the call proves it.
      const recorded: Effect.Effect<EventTracker.RecordResult> = tracker.recordEvent(withId("x"))
      yield* recorded
      expect(ids).toEqual(["x"])
    }))

  it.effect("typed failures of the async callback reach the caller; the event stays recorded", () =>
    Effect.gen(function*() {
      class Full extends Data.TaggedError("Full")<{ readonly id: string }> {}
      const tracker = yield* EventTracker.make({
        maxTracked: 10,
        onNewEventAsync: (id) => id === "bad" ? Effect.fail(new Full({ id })) : Effect.void
      })
      const error = yield* Effect.flip(tracker.recordEvent(withId("bad")))
      expect(error).toEqual(new Full({ id: "bad" }))
      expect(yield* tracker.lastEventId).toEqual(Option.some("bad"))
      expect(yield* tracker.recordEvent(withId("bad"))).toBe("duplicate")
    }))

  it.effect("a throwing sync callback is logged and counted; the tracker stays consistent", () =>
    Effect.gen(function*() {
      const before = yield* counterValue(EventTracker.callbackFailures)
      const seen: Array<string> = []
      const tracker = yield* EventTracker.make({
        maxTracked: 10,
        onNewEvent: (id) => {
          if (id === "boom") throw new Error("callback bug")
          seen.push(id)
        }
      })
      expect(yield* tracker.recordEvent(withId("boom"))).toBe("new")
      expect(yield* tracker.recordAll(["a", "boom", "b"].map(withId))).toHaveLength(2)
      expect(seen).toEqual(["a", "b"])
      expect(yield* tracker.lastEventId).toEqual(Option.some("b"))
      expect(yield* tracker.trackedCount).toBe(3)
      expect((yield* counterValue(EventTracker.callbackFailures)) - before).toBe(1)
    }))

  it.effect("a dying async callback is logged and counted; later events still flow", () =>
    Effect.gen(function*() {
      const before = yield* counterValue(EventTracker.callbackFailures)
      const seen: Array<string> = []
      const tracker = yield* EventTracker.make({
        maxTracked: 10,
        onNewEventAsync: (id) => id === "die" ? Effect.die("bug") : Effect.sync(() => void seen.push(id))
      })
      expect(yield* tracker.recordEvent(withId("die"))).toBe("new")
      expect(yield* tracker.recordEvent(withId("next"))).toBe("new")
      expect(seen).toEqual(["next"])
      expect(yield* tracker.lastEventId).toEqual(Option.some("next"))
      expect((yield* counterValue(EventTracker.callbackFailures)) - before).toBe(1)
    }))

  it.effect("onCallbackDefect: \"propagate\" turns callback failures into defects", () =>
    Effect.gen(function*() {
      const syncTracker = yield* EventTracker.make({
        maxTracked: 10,
        onCallbackDefect: "propagate",
        onNewEvent: () => {
          throw new Error("sync bug")
        }
      })
      const syncExit = yield* Effect.exit(syncTracker.recordEvent(withId("a")))
      expect(Exit.isFailure(syncExit) && Cause.isDie(syncExit.cause)).toBe(true)

      const asyncTracker = yield* EventTracker.make({
        maxTracked: 10,
        onCallbackDefect: "propagate",
        onNewEventAsync: () => Effect.die("async bug")
      })
      const asyncExit = yield* Effect.exit(asyncTracker.recordEvent(withId("a")))
      expect(Exit.isFailure(asyncExit) && Cause.isDie(asyncExit.cause)).toBe(true)
      expect(yield* asyncTracker.lastEventId).toEqual(Option.some("a"))
    }))

  it.effect("check-and-insert is atomic: concurrent fibers get exactly one \"new\" per id", () =>
    Effect.gen(function*() {
      let calls = 0
      const tracker = yield* EventTracker.make({
        maxTracked: 1_000,
        onNewEventAsync: () => Effect.zipRight(Effect.yieldNow(), Effect.sync(() => void calls++))
      })
      const ids = Array.from({ length: 200 }, (_, i) => `id-${i % 50}`)
      const results = yield* Effect.forEach(
        [...ids, ...ids, ...ids],
        (id) => Effect.zipRight(Effect.yieldNow(), tracker.recordEvent(withId(id))),
        { concurrency: "unbounded" }
      )
      expect(results.filter((r) => r === "new")).toHaveLength(50)
      expect(calls).toBe(50)
    }))

  it.effect("metrics count new and duplicate events", () =>
    Effect.gen(function*() {
      const newBefore = yield* counterValue(EventTracker.eventsNew)
      const dupBefore = yield* counterValue(EventTracker.duplicateEvents)
      const tracker = yield* EventTracker.make({ maxTracked: 10 })
      yield* tracker.recordAll(["a", "b", "a", "c", "b"].map(withId))
      yield* tracker.recordEvent(withId("c"))
      expect((yield* counterValue(EventTracker.eventsNew)) - newBefore).toBe(3)
      expect((yield* counterValue(EventTracker.duplicateEvents)) - dupBefore).toBe(3)
    }))

  it.effect("restore seeds the cursor and the window from a snapshot", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const tracker = yield* EventTracker.make({ maxTracked: 3, onNewEvent: (id) => void seen.push(id) })
      yield* tracker.restore({ lastEventId: Option.some("5"), recentIds: ["1", "2", "3", "4", "5"] })
      expect(yield* tracker.lastEventId).toEqual(Option.some("5"))
      expect(yield* tracker.trackedCount).toBe(3)
      const fresh = yield* tracker.recordAll(["4", "5", "2", "5", "6"].map(withId))
      expect(fresh.map((e) => e.id)).toEqual(["2", "6"])
      expect(seen).toEqual(["2", "6"])
      const snapshot = yield* tracker.snapshot
      expect(snapshot.recentIds).toEqual(["5", "2", "6"])
    }))
})

describe("EventTracker window and resume point (examples)", () => {
  it.effect("window eviction: with maxTracked 3, after 4 new ids the first is no longer a duplicate, the others are", () =>
    Effect.gen(function*() {
      const tracker = yield* EventTracker.make({ maxTracked: 3 })
      yield* tracker.recordAll(["1", "2", "3", "4"].map(withId))
      expect(yield* tracker.isDuplicate("1")).toBe(false)
      for (const id of ["2", "3", "4"]) expect(yield* tracker.isDuplicate(id)).toBe(true)
      expect((yield* tracker.recordAll(["2", "3", "4", "1"].map(withId))).map((e) => e.id)).toEqual(["1"])
      expect(yield* tracker.trackedCount).toBe(3)
    }))

  it.effect("a duplicate leaves lastEventId where it was", () =>
    Effect.gen(function*() {
      const tracker = yield* EventTracker.make({ maxTracked: 10 })
      yield* tracker.recordAll(["1", "2", "3"].map(withId))
      expect(yield* tracker.recordEvent(withId("2"))).toBe("duplicate")
      expect(yield* tracker.lastEventId).toEqual(Option.some("3"))
      yield* tracker.recordAll(["1", "2"].map(withId))
      expect(yield* tracker.lastEventId).toEqual(Option.some("3"))
    }))

  it.effect("a replay cut in the middle never walks the resume point back", () =>
    Effect.gen(function*() {
      const tracker = yield* EventTracker.make({ maxTracked: 1_000 })
      const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => withId(`${from + i}`))
      yield* tracker.recordAll(range(1, 500))
      // The server replays its last 100 and is cut after 50 of them, twice.
      expect(yield* tracker.recordAll(range(401, 450))).toEqual([])
      expect(yield* tracker.lastEventId).toEqual(Option.some("500"))
      expect(yield* tracker.recordAll(range(401, 450))).toEqual([])
      expect(yield* tracker.lastEventId).toEqual(Option.some("500"))
      expect((yield* tracker.recordAll(range(451, 502))).map((e) => e.id)).toEqual(["501", "502"])
      expect(yield* tracker.lastEventId).toEqual(Option.some("502"))
    }))

  it.effect("an id-only block with a new id moves the resume point and runs the callbacks, but is no event", () =>
    Effect.gen(function*() {
      const newBefore = yield* counterValue(EventTracker.eventsNew)
      const syncSeen: Array<string> = []
      const asyncSeen: Array<string> = []
      const tracker = yield* EventTracker.make({
        maxTracked: 10,
        onNewEvent: (id) => void syncSeen.push(id),
        onNewEventAsync: (id) => Effect.sync(() => void asyncSeen.push(id))
      })
      // An MCP-style priming block, then events.
      const fresh = yield* tracker.recordAll([idOnlyBlock("p0"), withId("1"), idOnlyBlock("p1")], { keepWithoutId: true })
      expect(fresh.map((e) => e.id)).toEqual(["1"])
      expect(yield* tracker.lastEventId).toEqual(Option.some("p1"))
      expect(yield* tracker.isDuplicate("p0")).toBe(true)
      expect(syncSeen).toEqual(["p0", "1", "p1"])
      expect(asyncSeen).toEqual(["p0", "1", "p1"])
      expect(yield* tracker.recordEvent(idOnlyBlock("p2"))).toBe("id-only")
      expect(yield* tracker.lastEventId).toEqual(Option.some("p2"))
      expect(asyncSeen).toEqual(["p0", "1", "p1", "p2"])
      // Counted neither as a new event nor as a duplicate.
      expect(yield* tracker.counts).toEqual({ fresh: 1, duplicates: 0 })
      expect((yield* counterValue(EventTracker.eventsNew)) - newBefore).toBe(1)
    }))

  it.effect("an id-only block whose id is in the window changes nothing", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const tracker = yield* EventTracker.make({ maxTracked: 10, onNewEvent: (id) => void seen.push(id) })
      yield* tracker.recordAll(["1", "2"].map(withId))
      expect(yield* tracker.recordEvent(idOnlyBlock("1"))).toBe("id-only")
      expect(yield* tracker.recordAll([idOnlyBlock("1")], { keepWithoutId: true })).toEqual([])
      expect(yield* tracker.lastEventId).toEqual(Option.some("2"))
      expect(seen).toEqual(["1", "2"])
      expect(yield* tracker.counts).toEqual({ fresh: 2, duplicates: 0 })
    }))

  it.effect("an empty id clears the resume point, on an event or an id-only block, without callbacks", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const tracker = yield* EventTracker.make({
        maxTracked: 10,
        onNewEventAsync: (id) => Effect.sync(() => void seen.push(id))
      })
      yield* tracker.recordEvent(withId("1"))
      const cleared = new SseEvent({ id: "", data: "x" })
      expect(yield* tracker.recordEvent(cleared)).toBe("no-id")
      expect(yield* tracker.lastEventId).toEqual(Option.none())
      // A replay after the clear does not bring the old id back.
      yield* tracker.recordEvent(withId("1"))
      expect(yield* tracker.lastEventId).toEqual(Option.none())
      yield* tracker.recordEvent(withId("2"))
      expect(yield* tracker.recordAll([idOnlyBlock("")], { keepWithoutId: true })).toEqual([])
      expect(yield* tracker.lastEventId).toEqual(Option.none())
      expect(yield* tracker.recordEvent(idOnlyBlock(""))).toBe("id-only")
      expect(seen).toEqual(["1", "2"])
      // An event without an id leaves the resume point alone.
      yield* tracker.recordEvent(withId("3"))
      expect(yield* tracker.recordEvent(noId("plain"))).toBe("no-id")
      expect(yield* tracker.lastEventId).toEqual(Option.some("3"))
    }))

  it.effect("keepWithoutId returns events without an id in place, among the new ones", () =>
    Effect.gen(function*() {
      const tracker = yield* EventTracker.make({ maxTracked: 10 })
      yield* tracker.recordEvent(withId("1"))
      const chunk = [noId("a"), withId("1"), withId("2"), new SseEvent({ id: "", data: "b" }), idOnlyBlock("9"), noId("c"), withId("2"), withId("3")]
      const kept = yield* tracker.recordAll(chunk, { keepWithoutId: true })
      expect(kept).toEqual([chunk[0], chunk[2], chunk[3], chunk[5], chunk[7]])
      expect(kept.map((e) => e.data)).toEqual(["a", "", "b", "c", ""])
      // The same chunk on a tracker with an async callback takes the other path: same answer.
      const awaited = yield* EventTracker.make({ maxTracked: 10, onNewEventAsync: () => Effect.void })
      yield* awaited.recordEvent(withId("1"))
      expect(yield* awaited.recordAll(chunk, { keepWithoutId: true })).toEqual(kept)
      // The default is unchanged: only new events.
      const plain = yield* EventTracker.make({ maxTracked: 10 })
      yield* plain.recordEvent(withId("1"))
      expect(yield* plain.recordAll(chunk)).toEqual([chunk[2], chunk[7]])
    }))

  it.effect("counts are per tracker; a copy starts at zero", () =>
    Effect.gen(function*() {
      const a = yield* EventTracker.make({ maxTracked: 10 })
      const b = yield* EventTracker.make({ maxTracked: 10 })
      yield* a.recordAll(["1", "2", "1", "3", "2"].map(withId))
      yield* a.recordEvent(withId("3"))
      yield* a.recordEvent(noId("x"))
      yield* b.recordEvent(withId("1"))
      expect(yield* a.counts).toEqual({ fresh: 3, duplicates: 3 })
      expect(yield* b.counts).toEqual({ fresh: 1, duplicates: 0 })
      const twin = yield* EventTracker.copy(a)
      expect(yield* twin.counts).toEqual({ fresh: 0, duplicates: 0 })
      yield* twin.recordAll(["3", "4"].map(withId))
      expect(yield* twin.counts).toEqual({ fresh: 1, duplicates: 1 })
      expect(yield* a.counts).toEqual({ fresh: 3, duplicates: 3 })
    }))

  it.effect("unsafeSnapshot is the snapshot, readable synchronously inside a callback", () =>
    Effect.gen(function*() {
      const inside: Array<EventTracker.Snapshot> = []
      const tracker: EventTracker.EventTracker = yield* EventTracker.make({
        maxTracked: 2,
        onNewEvent: () => void inside.push(tracker.unsafeSnapshot())
      })
      yield* tracker.recordAll(["1", "2", "3"].map(withId))
      expect(inside.map((s) => s.recentIds)).toEqual([["1"], ["1", "2"], ["2", "3"]])
      expect(inside.map((s) => Option.getOrNull(s.lastEventId))).toEqual(["1", "2", "3"])
      expect(tracker.unsafeSnapshot()).toEqual(yield* tracker.snapshot)
    }))
})

describe("IdWindow", () => {
  it("ids around 2^31 and of 10 digits are held exactly: admitted once, given back as sent (issue 19)", () => {
    const ids = ["999999999", "1000000000", "2147483646", "2147483647", "2147483648", "3000000000", "4294967296", "9999999999"]
    const window = new IdWindow(100)
    for (const id of ids) expect(window.admit(id)).toBe(true)
    for (const id of ids) {
      expect(window.admit(id)).toBe(false)
      expect(window.has(id)).toBe(true)
    }
    expect(window.oldestFirst()).toEqual(ids)
    // Evicted exactly too: a window of 1 forgets each as the next comes.
    const one = new IdWindow(1)
    for (const id of ids) expect(one.admit(id)).toBe(true)
    expect(one.oldestFirst()).toEqual(["9999999999"])
    expect(one.has("3000000000")).toBe(false)
  })

  it("evicts the oldest id once full, and keeps decimal look-alikes apart", () => {
    const window = new IdWindow(3)
    expect(["7", "07", "7", "a", "b"].map((id) => window.admit(id))).toEqual([true, true, false, true, true])
    expect(window.oldestFirst()).toEqual(["07", "a", "b"])
    expect(window.has("7")).toBe(false)
    expect(window.has("07")).toBe(true)
    expect(window.size).toBe(3)
  })

  it("agrees with a plain Set and queue under heavy churn of colliding integer ids", () => {
    // Integer ids live in an open-addressing table: many inserts and evictions over
    // a narrow range make long probe runs that wrap around, where a wrong deletion
    // loses or resurrects ids.
    let seed = 42
    const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32
    for (const [capacity, range] of [[1, 3], [7, 20], [100, 300], [1000, 1500]] as const) {
      const window = new IdWindow(capacity)
      const held = new Set<string>()
      const order: Array<string> = []
      for (let step = 0; step < 20_000; step++) {
        const id = random() < 0.05 ? `x${Math.floor(random() * range)}` : String(Math.floor(random() * range) * 1024)
        const fresh = !held.has(id)
        expect(window.admit(id)).toBe(fresh)
        if (fresh) {
          held.add(id)
          order.push(id)
          if (order.length > capacity) held.delete(order.shift()!)
        }
      }
      expect(window.oldestFirst()).toEqual(order)
      for (let n = 0; n < range; n++) expect(window.has(String(n * 1024))).toBe(held.has(String(n * 1024)))
    }
  })

  it("reset keeps the newest capacity ids, oldest first", () => {
    const window = new IdWindow(2)
    window.admit("x")
    window.reset(["1", "2", "3"])
    expect(window.oldestFirst()).toEqual(["2", "3"])
    expect(window.has("x")).toBe(false)
    expect(window.admit("4")).toBe(true)
    expect(window.oldestFirst()).toEqual(["3", "4"])
  })
})

describe("EventTracker.copy", () => {
  it.effect("has the same window and cursor, no callbacks, and moves on its own", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const original = yield* EventTracker.make({ maxTracked: 3, onNewEvent: (id) => void seen.push(id) })
      yield* original.recordAll(["1", "2", "3", "4"].map(withId))
      const twin = yield* EventTracker.copy(original)
      expect(yield* twin.snapshot).toEqual(yield* original.snapshot)
      expect(twin.maxTracked).toBe(3)
      expect((yield* twin.recordAll(["3", "4", "5"].map(withId))).map((e) => e.id)).toEqual(["5"])
      expect(seen).toEqual(["1", "2", "3", "4"])
      expect(yield* original.lastEventId).toEqual(Option.some("4"))
      expect(yield* twin.lastEventId).toEqual(Option.some("5"))
    }))
})

/** The window's definition, written the slow obvious way. */
const expectedNewIds = (ids: ReadonlyArray<string>, maxTracked: number) => {
  const window: Array<string> = []
  const fresh: Array<string> = []
  for (const id of ids) {
    if (window.includes(id)) continue
    fresh.push(id)
    window.push(id)
    if (window.length > maxTracked) window.shift()
  }
  return fresh
}

describe("EventTracker properties", () => {
  // Decimal ids (kept as integers inside) mixed with look-alikes that must stay distinct.
  const id = fc.oneof(
    fc.integer({ min: 0, max: 40 }).map(String),
    fc.integer({ min: 0, max: 40 }).map((n) => `0${n}`),
    fc.constantFrom("a", "1e1", "-1", " 1", "1000000000", "999999999")
  )
  const ids = fc.array(id, { maxLength: 300 })
  const maxTracked = fc.integer({ min: 1, max: 50 })
  const chunkSize = fc.integer({ min: 1, max: 20 })

  it.effect.prop(
    "callbacks fire once per id outside the last maxTracked new ids, in order; memory stays bounded",
    [ids, maxTracked, chunkSize],
    ([ids, maxTracked, chunkSize]) =>
      Effect.gen(function*() {
        const syncSeen: Array<string> = []
        const asyncSeen: Array<string> = []
        let maxHeld = 0
        const tracker: EventTracker.EventTracker = yield* EventTracker.make({
          maxTracked,
          onNewEvent: (id) => void syncSeen.push(id),
          onNewEventAsync: (id) =>
            Effect.map(tracker.trackedCount, (held) => {
              maxHeld = Math.max(maxHeld, held)
              asyncSeen.push(id)
            })
        })
        // Half through recordEvent, half through recordAll chunks: both paths share one window.
        const half = Math.floor(ids.length / 2)
        for (const id of ids.slice(0, half)) yield* tracker.recordEvent(withId(id))
        const rest = ids.slice(half)
        for (let i = 0; i < rest.length; i += chunkSize) {
          yield* tracker.recordAll(rest.slice(i, i + chunkSize).map(withId))
        }
        const expected = expectedNewIds(ids, maxTracked)
        expect(syncSeen).toEqual(expected)
        expect(asyncSeen).toEqual(expected)
        expect(yield* tracker.lastEventId).toEqual(Option.fromNullable(expected.at(-1)))
        expect(maxHeld).toBeLessThanOrEqual(maxTracked)
        const snapshot = yield* tracker.snapshot
        expect(snapshot.recentIds).toEqual(expected.slice(-maxTracked))
      }),
    { fastCheck: { numRuns: 200 } }
  )

  type Item = readonly ["event" | "idOnly", string | undefined]
  /** The resume-point rule and keepWithoutId, written the slow obvious way. */
  const expectedRun = (items: ReadonlyArray<Item>, maxTracked: number) => {
    const window: Array<string> = []
    const kept: Array<number> = []
    const callbacks: Array<string> = []
    const resumePoints: Array<string | undefined> = []
    let last: string | undefined
    items.forEach(([kind, id], index) => {
      if (id === "") last = undefined
      if (id !== undefined && id !== "" && !window.includes(id)) {
        window.push(id)
        if (window.length > maxTracked) window.shift()
        last = id
        callbacks.push(id)
        if (kind === "event") kept.push(index)
      } else if (kind === "event" && (id === undefined || id === "")) {
        kept.push(index)
      }
      resumePoints.push(last)
    })
    return { kept, callbacks, resumePoints, window }
  }

  it.effect.prop(
    "the resume point only moves forward, id-only blocks are never returned, id-less events stay in place",
    [
      fc.array(
        fc.tuple(
          fc.constantFrom("event" as const, "event" as const, "idOnly" as const),
          fc.oneof(fc.integer({ min: 0, max: 30 }).map(String), fc.constantFrom(undefined, ""))
        ),
        { maxLength: 200 }
      ),
      maxTracked,
      chunkSize
    ],
    ([items, maxTracked, chunkSize]) =>
      Effect.gen(function*() {
        const callbacks: Array<string> = []
        const tracker = yield* EventTracker.make({
          maxTracked,
          onNewEventAsync: (id) => Effect.sync(() => void callbacks.push(id))
        })
        const events = items.map(([kind, id]) => kind === "idOnly" ? idOnlyBlock(id ?? "") : new SseEvent({ id }))
        const model = expectedRun(items.map(([kind, id]): Item => [kind, kind === "idOnly" ? id ?? "" : id]), maxTracked)
        const kept: Array<SseEvent> = []
        for (let i = 0; i < events.length; i += chunkSize) {
          kept.push(...(yield* tracker.recordAll(events.slice(i, i + chunkSize), { keepWithoutId: true })))
          const end = Math.min(i + chunkSize, events.length) - 1
          expect(yield* tracker.lastEventId).toEqual(Option.fromNullable(model.resumePoints[end]))
        }
        expect(kept).toEqual(model.kept.map((i) => events[i]))
        expect(callbacks).toEqual(model.callbacks)
        expect((yield* tracker.snapshot).recentIds).toEqual(model.window)
      }),
    { fastCheck: { numRuns: 200 } }
  )
})

describe("EventTracker: commit after handling, with the client's copy deduping (issue 19)", () => {
  const fast = { initialDelay: "5 millis", maxDelay: "20 millis" } as const
  const pause = () => new Promise((resolve) => setTimeout(resolve, 30))

  /**
   * Streams `url` through a copy of `session`, as the README and `sse-resume tail`
   * do: each chunk is handled, then recorded into the session.
   */
  const commitAfterHandling = (url: string, session: EventTracker.EventTracker<never>) =>
    Effect.gen(function*() {
      const handled: Array<string | undefined> = []
      yield* SseClient.stream(HttpClientRequest.get(url), { ...fast, tracker: yield* EventTracker.copy(session) }).pipe(
        Stream.runForEachChunk((chunk) =>
          Effect.zipRight(Effect.sync(() => handled.push(...Chunk.map(chunk, (event) => event.id))), session.recordAll(chunk))
        )
      )
      return handled
    })

  /** Serves `first` (one write per element, a pause between) once, then 204. */
  const serving = (first: ReadonlyArray<string>) =>
    SseServer.make(async (_req, res, n) => {
      if (n > 1) return void res.writeHead(204).end()
      res.writeHead(200, SseServer.sseHeaders)
      for (const text of first) {
        await SseServer.write(res, text)
        await pause()
      }
      res.end()
    })

  const live = <A, E>(name: string, body: () => Effect.Effect<A, E, HttpClient.HttpClient | Scope.Scope>) =>
    it.scopedLive(name, () => Effect.provide(body(), NodeHttpClient.layerUndici))

  live("an id-only block alone in its read moves the stored resume point as it moves the live one", () =>
    Effect.gen(function*() {
      const server = yield* serving(["id: 1\ndata: a\n\n", "id: 5\n\n"])
      const stored: Array<string> = []
      const session = yield* EventTracker.make({ maxTracked: 100, onNewEventAsync: (id) => Effect.sync(() => stored.push(id)) })
      expect(yield* commitAfterHandling(server.url, session)).toEqual(["1"])
      // The live reconnect said 5; the session (what a restart resumes from) says so too.
      expect(server.requests[1]!.headers["last-event-id"]).toBe("5")
      expect(yield* session.lastEventId).toEqual(Option.some("5"))
      // Its callback (the one that persists the cursor) ran for it.
      expect(stored).toEqual(["1", "5"])
      expect((yield* session.snapshot).recentIds).toEqual(["1", "5"])
      // A restart resumes from 5.
      const restarted = yield* serving([])
      yield* commitAfterHandling(restarted.url, session)
      expect(restarted.requests[0]!.headers["last-event-id"]).toBe("5")
    }))

  live("an id-only block after an event in the same read: the chunk carries it to the session", () =>
    Effect.gen(function*() {
      const server = yield* serving(["id: 1\ndata: a\n\nid: 5\n\nid: 6\ndata: b\n\nid: 9\n\n"])
      const session = yield* EventTracker.make({ maxTracked: 100 })
      expect(yield* commitAfterHandling(server.url, session)).toEqual(["1", "6"])
      expect(server.requests[1]!.headers["last-event-id"]).toBe("9")
      expect(yield* session.snapshot).toEqual({ lastEventId: Option.some("9"), recentIds: ["1", "5", "6", "9"] })
      // The account counts events only.
      expect(yield* session.counts).toEqual({ fresh: 2, duplicates: 0 })
    }))

  live("an empty id: clears the stored resume point as it clears the live one", () =>
    Effect.gen(function*() {
      const server = yield* serving(["id: 1\ndata: a\n\n", "id:\n\n"])
      const session = yield* EventTracker.make({ maxTracked: 100 })
      yield* commitAfterHandling(server.url, session)
      expect(server.requests[1]!.headers["last-event-id"]).toBeUndefined()
      expect(yield* session.lastEventId).toEqual(Option.none())
    }))
})
