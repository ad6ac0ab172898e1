import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Data, Effect, Exit, FastCheck as fc, Fiber, Metric, Option, Queue, TestClock } from "effect"
import { Backpressure, EventTracker, SseEvent } from "../src/index.js"

const withId = (id: string) => new SseEvent({ id })
const counterValue = (counter: Metric.Metric.Counter<number>) =>
  Effect.map(Metric.value(counter), (state) => state.count)

describe("EventTracker (the seed card's cases)", () => {
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
  it("SseEvent defaults like the card's Default::default()", () => {
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
        expect(error._tag).toBe("TrackerOptionsError")
        expect(error.option).toBe("maxTracked")
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
})
