import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Option, Queue, TestClock } from "effect"
import { Backpressure } from "../src/index.js"

const count = (counter: Metric.Metric.Counter<number>) => Effect.map(Metric.value(counter), (s) => s.count)

describe("Backpressure.offer", () => {
  it.effect("queued when there is room", () =>
    Effect.gen(function*() {
      const before = yield* count(Backpressure.queued)
      const queue = yield* Queue.bounded<number>(2)
      expect(yield* Backpressure.offer(queue, 1, { timeout: "100 millis" })).toBe("queued")
      expect(yield* Queue.take(queue)).toBe(1)
      expect((yield* count(Backpressure.queued)) - before).toBe(1)
    }))

  it.effect("waits on a full queue and reports timedOut without queuing the item", () =>
    Effect.gen(function*() {
      const before = yield* count(Backpressure.backpressureTimeouts)
      const queue = yield* Queue.bounded<number>(1)
      yield* Queue.offer(queue, 0)
      const offer = yield* Effect.fork(Backpressure.offer(queue, 1, { timeout: "100 millis" }))
      yield* TestClock.adjust("99 millis")
      expect(Option.isNone(yield* Fiber.poll(offer))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(offer)).toBe("timedOut")
      expect(yield* Queue.takeAll(queue)).toHaveLength(1)
      expect(yield* Queue.size(queue)).toBe(0)
      expect((yield* count(Backpressure.backpressureTimeouts)) - before).toBe(1)
    }))

  it.effect("a waiting offer completes as queued when the consumer makes room in time", () =>
    Effect.gen(function*() {
      const queue = yield* Queue.bounded<number>(1)
      yield* Queue.offer(queue, 0)
      const offer = yield* Effect.fork(Backpressure.offer(queue, 1, { timeout: "100 millis" }))
      yield* TestClock.adjust("50 millis")
      expect(yield* Queue.take(queue)).toBe(0)
      expect(yield* Fiber.join(offer)).toBe("queued")
      expect(yield* Queue.take(queue)).toBe(1)
    }))

  it.effect("shutdown, whether before the offer or while it waits, is reported, not an interruption", () =>
    Effect.gen(function*() {
      const before = yield* count(Backpressure.channelClosed)
      const closed = yield* Queue.bounded<number>(1)
      yield* Queue.shutdown(closed)
      expect(yield* Backpressure.offer(closed, 1, { timeout: "100 millis" })).toBe("shutdown")

      const full = yield* Queue.bounded<number>(1)
      yield* Queue.offer(full, 0)
      const offer = yield* Effect.fork(Backpressure.offer(full, 1, { timeout: "100 millis" }))
      yield* TestClock.adjust("10 millis")
      yield* Queue.shutdown(full)
      expect(yield* Fiber.join(offer)).toBe("shutdown")
      expect((yield* count(Backpressure.channelClosed)) - before).toBe(2)
    }))

  it.effect("interrupting the caller still interrupts the offer", () =>
    Effect.gen(function*() {
      const queue = yield* Queue.bounded<number>(1)
      yield* Queue.offer(queue, 0)
      const offer = yield* Effect.fork(Backpressure.offer(queue, 1, { timeout: "1 hour" }))
      yield* TestClock.adjust("10 millis")
      const exit = yield* Fiber.interrupt(offer)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(yield* Queue.takeAll(queue)).toHaveLength(1)
    }))
})
