import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Metric, Option, Scheduler, Scope, TestClock, TestServices } from "effect"
import * as Backpressure from "../src/client/Backpressure.js"
import { CursorStore } from "../src/store/CursorStore.js"
import * as Cursors from "../src/store/CursorStore.js"
import * as PersistenceWorker from "../src/session/PersistenceWorker.js"
import { faults, faulty } from "./support/faultyStore.js"
import { sqliteStore } from "./support/stores.js"
import { settle } from "./support/settle.js"

const request = (sessionId: string, seq: number, recordedAt = 0): PersistenceWorker.PersistenceRequest => ({
  sessionId,
  eventId: `e${seq}`,
  seq,
  recordedAt
})

/** Lets the worker and producers run until nothing moves (no real time passes). */

/**
 * A worker on a (possibly faulty) store, in its own scope so a test can close it.
 * `base` defaults to a real SQLite file.
 */
const setup = (options: Partial<PersistenceWorker.Settings>, base: Layer.Layer<CursorStore, unknown> = sqliteStore) =>
  Effect.gen(function*() {
    const f = faults()
    const ctx = yield* Layer.build(Layer.provideMerge(faulty(f), base))
    const store = Context.get(ctx, CursorStore)
    const scope = yield* Scope.make()
    const worker = yield* PersistenceWorker.make(options).pipe(Effect.provideService(CursorStore, store), Scope.extend(scope))
    const seqOf = (sessionId: string) => Effect.map(store.load(sessionId), Option.map((c) => c.seq))
    return { f, store, worker, scope, seqOf }
  })

const flush = Duration.millis(100)

/** A worker stuck in a write (its store stalled) with its one-slot queue full: `queued`'s cursor 1 waits in it. */
const stuckAndFull = (offerTimeout: Duration.Duration, queued: string) =>
  Effect.gen(function*() {
    const worker = yield* setup({ flushInterval: flush, maxPending: 1, offerTimeout }, Cursors.layerMemory)
    const stall = yield* Deferred.make<void>()
    worker.f.stall = stall
    yield* worker.worker.persist(request("w", 1))
    yield* TestClock.adjust(flush)
    yield* settle
    expect(worker.f.calls).toHaveLength(1)
    yield* worker.worker.persist(request(queued, 1))
    return { ...worker, stall }
  })

/**
 * A scheduler that holds the tasks of the fibers running on it until the test hands
 * them, one or all, to the default scheduler: a way to stop a fiber between two of
 * its asynchronous steps without stepping every other fiber.
 */
const holdingScheduler = () => {
  const tasks: Array<readonly [Scheduler.Task, number]> = []
  const pass = (entry: readonly [Scheduler.Task, number] | undefined) => {
    if (entry !== undefined) Scheduler.defaultScheduler.scheduleTask(entry[0], entry[1])
  }
  const scheduler: Scheduler.Scheduler = {
    shouldYield: (fiber) => Scheduler.defaultScheduler.shouldYield(fiber),
    scheduleTask: (task, priority) => void tasks.push([task, priority])
  }
  return Object.assign(scheduler, {
    pending: () => tasks.length,
    releaseOne: () => pass(tasks.shift()),
    releaseAll: () => tasks.splice(0).forEach(pass)
  })
}

describe("PersistenceWorker", () => {
  it.scoped("a cursor refused for a stale epoch is final: its owner is told once, it is never retried, others are written", () =>
    Effect.gen(function*() {
      const { f, seqOf, store, worker } = yield* setup({ flushInterval: flush, retryBase: flush })
      const old = yield* store.acquire("owned", "old", 1)
      // The lease ends by the store's clock (1 ms): a new owner takes it.
      yield* Effect.sleep(Duration.millis(5)).pipe(TestServices.provideLive)
      const current = yield* store.acquire("owned", "new", 60_000)
      yield* store.saveAll([{ sessionId: "owned", lastEventId: "n7", seq: 7, updatedAt: 0, epoch: current.epoch }])
      const notices: Array<Cursors.SessionLost> = []
      yield* worker.persist({ ...request("owned", 99), epoch: old.epoch, onFenced: (lost) => notices.push(lost) })
      yield* worker.persist(request("free", 3))
      yield* TestClock.adjust(flush)
      yield* settle
      expect(notices).toEqual([new Cursors.SessionLost({ sessionId: "owned", epoch: old.epoch, reason: "fenced" })])
      expect(yield* seqOf("owned")).toEqual(Option.some(7))
      expect(yield* seqOf("free")).toEqual(Option.some(3))
      const calls = f.calls.length
      yield* TestClock.adjust(Duration.seconds(30))
      yield* settle
      expect(f.calls.length).toBe(calls)
      expect(notices).toHaveLength(1)
      expect((yield* worker.stats).pending).toBe(0)
    }))

  it.scoped("coalesces to the newest cursor per session and writes once per flush interval", () =>
    Effect.gen(function*() {
      const { f, seqOf, worker } = yield* setup({ flushInterval: flush })
      const count = (metric: Metric.Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)
      const before = [yield* count(PersistenceWorker.batches), yield* count(PersistenceWorker.coalesced)]
      const stalenessBefore = (yield* Metric.value(PersistenceWorker.cursorStaleness)).count
      for (let seq = 1; seq <= 50; seq++) yield* worker.persist(request(`s${seq % 3}`, seq))
      yield* settle
      expect(f.calls).toHaveLength(0)
      yield* TestClock.adjust(flush)
      yield* settle
      expect(f.calls).toHaveLength(1)
      expect(f.calls[0]!.map((c) => [c.sessionId, c.seq]).sort()).toEqual([["s0", 48], ["s1", 49], ["s2", 50]])
      expect(yield* seqOf("s2")).toEqual(Option.some(50))
      expect(yield* count(PersistenceWorker.batches)).toBe(before[0]! + 1)
      expect(yield* count(PersistenceWorker.coalesced)).toBe(before[1]! + 47)
      // One staleness sample per written cursor, each the full flush interval here.
      const staleness = yield* Metric.value(PersistenceWorker.cursorStaleness)
      expect(staleness.count).toBe(stalenessBefore + 3)
      expect(staleness.max).toBeGreaterThanOrEqual(100)
    }))

  it.scoped("writes early once batchSize sessions are waiting", () =>
    Effect.gen(function*() {
      const { f, worker } = yield* setup({ flushInterval: Duration.seconds(10), batchSize: 4 })
      for (let i = 0; i < 10; i++) yield* worker.persist(request(`b${i}`, 1))
      yield* settle
      expect(f.calls.length).toBeGreaterThanOrEqual(2)
      expect(f.calls.every((batch) => batch.length <= 4)).toBe(true)
    }))

  it.scoped("retries a failing store with backoff, a newer cursor superseding the retry, and loses nothing", () =>
    Effect.gen(function*() {
      const { f, seqOf, worker } = yield* setup({ flushInterval: flush, retryBase: flush, maxSaveAttempts: 3 })
      const failuresBefore = (yield* Metric.value(PersistenceWorker.failures)).count
      f.failing = true
      yield* worker.persist(request("r1", 1))
      yield* worker.persist(request("r2", 1))
      yield* TestClock.adjust(flush)
      yield* settle
      expect(f.calls).toHaveLength(1)
      // Backoff: nothing is retried before the first delay (≥ ½ retryBase with jitter).
      yield* TestClock.adjust(Duration.millis(49))
      yield* settle
      expect(f.calls).toHaveLength(1)
      yield* worker.persist(request("r1", 2))
      // Several more failures, past maxSaveAttempts: counted as failed, still kept.
      for (let i = 0; i < 8; i++) {
        yield* TestClock.adjust(Duration.seconds(2))
        yield* settle
      }
      expect(f.calls.length).toBeGreaterThanOrEqual(5)
      expect((yield* Metric.value(PersistenceWorker.failures)).count).toBeGreaterThan(failuresBefore)
      expect((yield* worker.stats).pending).toBe(2)
      // After supersession no write carries the old cursor of r1 again.
      const superseded = f.calls.findIndex((batch) => batch.some((c) => c.sessionId === "r1" && c.seq === 2))
      // The first write carried r1 at seq 1, so the newer cursor shows up later (never -1).
      expect(superseded).toBeGreaterThan(0)
      expect(f.calls.slice(superseded).every((batch) => batch.every((c) => c.sessionId !== "r1" || c.seq === 2))).toBe(true)
      f.failing = false
      yield* TestClock.adjust(Duration.seconds(20))
      yield* settle
      expect(yield* seqOf("r1")).toEqual(Option.some(2))
      expect(yield* seqOf("r2")).toEqual(Option.some(1))
      expect((yield* worker.stats).pending).toBe(0)
    }))

  it.scoped("a stalled store slows producers down, bounds memory, and loses nothing when it resumes", () =>
    Effect.gen(function*() {
      const { f, seqOf, worker } = yield* setup({ flushInterval: flush, maxPending: 16, offerTimeout: flush }, Cursors.layerMemory)
      f.stall = yield* Deferred.make<void>()
      const timeoutsBefore = (yield* Metric.value(Backpressure.backpressureTimeouts)).count
      // Get the worker stuck inside a write first.
      yield* worker.persist(request("p0", 0))
      yield* TestClock.adjust(flush)
      yield* settle
      expect(f.calls).toHaveLength(1)
      const sessions = 5
      const perSession = 400
      const producers = yield* Effect.forEach(
        Array.from({ length: sessions }, (_, s) => s),
        (s) =>
          Effect.fork(Effect.forEach(
            Array.from({ length: perSession }, (_, i) => i + 1),
            (seq) => worker.persist(request(`p${s}`, seq)),
            { discard: true }
          )),
        { concurrency: "unbounded" }
      )
      let maxFootprint = 0
      for (let round = 0; round < 30; round++) {
        yield* TestClock.adjust(flush)
        yield* settle
        const stats = yield* worker.stats
        // Queued items plus one blocked offer per producer.
        expect(stats.queued).toBeLessThanOrEqual(16 + sessions)
        expect(stats.parked).toBeLessThanOrEqual(sessions)
        expect(stats.pending).toBeLessThanOrEqual(sessions)
        maxFootprint = Math.max(maxFootprint, stats.queued + stats.parked + stats.pending)
      }
      // Producers are held back: 2,000 events cannot pass a stalled store in 3 s of 100 ms waits.
      const done = yield* Effect.forEach(producers, (p) => Effect.map(p.poll, Option.isSome))
      expect(done.every(Boolean)).toBe(false)
      expect(maxFootprint).toBeLessThanOrEqual(16 + 3 * sessions + 1)
      const timeouts = (yield* Metric.value(Backpressure.backpressureTimeouts)).count - timeoutsBefore
      expect(timeouts).toBeGreaterThan(0)
      // This worker's own count: every timed-out offer of this test, and nothing else.
      expect((yield* worker.stats).timedOut).toBe(timeouts)
      yield* Deferred.succeed(f.stall, void 0)
      f.stall = undefined
      while (!(yield* Effect.forEach(producers, (p) => Effect.map(p.poll, Option.isSome))).every(Boolean)) {
        yield* TestClock.adjust(flush)
        yield* settle
      }
      yield* TestClock.adjust(flush)
      yield* settle
      for (let s = 0; s < sessions; s++) expect(yield* seqOf(`p${s}`)).toEqual(Option.some(perSession))
      yield* Effect.forEach(producers, Fiber.join)
    }))

  it.scoped("an offer that times out parks its cursor, and the parked cursor is the one stored", () =>
    Effect.gen(function*() {
      // The worker stuck in a write, the queue full with the session's older cursor.
      const { f, seqOf, stall, worker } = yield* stuckAndFull(flush, "p")
      const offer = yield* Effect.fork(worker.persist(request("p", 2)))
      yield* settle
      expect(Option.isNone(yield* offer.poll)).toBe(true)
      yield* TestClock.adjust(flush)
      yield* settle
      // The producer is released after offerTimeout, its cursor parked, not dropped.
      yield* Fiber.join(offer)
      expect(yield* worker.stats).toEqual({ queued: 1, parked: 1, pending: 1, timedOut: 1 })
      yield* Deferred.succeed(stall, void 0)
      f.stall = undefined
      yield* TestClock.adjust(flush)
      yield* settle
      expect(yield* seqOf("p")).toEqual(Option.some(2))
      expect(yield* worker.stats).toEqual({ queued: 0, parked: 0, pending: 0, timedOut: 1 })
    }))

  it.scoped("of two timed-out cursors of one session, whichever timed out first, the newer is parked and stored", () =>
    Effect.gen(function*() {
      const { f, seqOf, stall, worker } = yield* stuckAndFull(flush, "full")
      // "n": the newer cursor times out first; "o": the older first. Both must keep seq 3.
      const offers = yield* Effect.all([
        Effect.fork(worker.persist(request("n", 3))),
        Effect.fork(worker.persist(request("n", 2))),
        Effect.fork(worker.persist(request("o", 2))),
        Effect.fork(worker.persist(request("o", 3)))
      ])
      yield* settle
      yield* TestClock.adjust(flush)
      yield* settle
      yield* Effect.forEach(offers, Fiber.join)
      expect(yield* worker.stats).toMatchObject({ parked: 2, timedOut: 4 })
      yield* Deferred.succeed(stall, void 0)
      f.stall = undefined
      yield* TestClock.adjust(flush)
      yield* settle
      expect(yield* seqOf("n")).toEqual(Option.some(3))
      expect(yield* seqOf("o")).toEqual(Option.some(3))
    }))

  it.scoped("closing stores the cursor of a producer still blocked in offer", () =>
    Effect.gen(function*() {
      const { f, scope, seqOf, stall, worker } = yield* stuckAndFull(Duration.seconds(10), "q")
      const blocked = yield* Effect.fork(worker.persist(request("b", 1)))
      yield* settle
      expect(Option.isNone(yield* blocked.poll)).toBe(true)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      // Closing has begun: new cursors are refused, the blocked one is still waiting.
      expect((yield* Effect.flip(worker.persist(request("late", 1))))._tag).toBe("PersistenceClosedError")
      expect(Option.isNone(yield* blocked.poll)).toBe(true)
      yield* Deferred.succeed(stall, void 0)
      f.stall = undefined
      yield* Fiber.join(closing)
      // Accepted (not refused), and durable once the scope is closed.
      yield* Fiber.join(blocked)
      expect(yield* seqOf("b")).toEqual(Option.some(1))
      expect(yield* seqOf("q")).toEqual(Option.some(1))
      expect(yield* seqOf("late")).toEqual(Option.none())
    }))

  // The drain's in-flight window: a producer whose offer timed out (withdrawn from the
  // queue) but who has not parked its cursor yet is in neither the queue nor the slot;
  // only `inFlight` tells the drain to wait for it. The producer runs on a scheduler that
  // holds its steps, so the test can stop it inside that window while the drain runs.
  it.scoped("closing waits for a producer between its offer timing out and parking its cursor", () =>
    Effect.gen(function*() {
      const { f, scope, seqOf, stall, worker } = yield* stuckAndFull(flush, "q")
      const held = holdingScheduler()
      const producer = yield* Effect.fork(Effect.withScheduler(worker.persist(request("p", 2)), held))
      // Let it reach its blocked offer: the queue then counts it beside "q".
      for (let i = 0; i < 20 && (yield* worker.stats).queued < 2; i++) {
        held.releaseAll()
        yield* settle
      }
      expect((yield* worker.stats).queued).toBe(2)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      // The offer's timeout fires; step the producer until its offer is withdrawn (the
      // queue holds only "q" again), not further: it has not parked.
      yield* TestClock.adjust(flush)
      yield* settle
      for (let i = 0; i < 50 && (yield* worker.stats).queued > 1; i++) {
        held.releaseOne()
        yield* settle
      }
      expect(yield* worker.stats).toMatchObject({ queued: 1, parked: 0, timedOut: 0 })
      // The worker writes, drains "q" and must now wait for the producer, not end.
      yield* Deferred.succeed(stall, void 0)
      f.stall = undefined
      yield* settle
      expect(yield* seqOf("q")).toEqual(Option.some(1))
      // The producer goes on: it parks its cursor, which the drain still writes.
      for (let i = 0; i < 50 && (held.pending() > 0 || producer.unsafePoll() === null); i++) {
        held.releaseAll()
        yield* settle
      }
      yield* Fiber.join(producer)
      yield* Fiber.join(closing)
      expect(yield* seqOf("p")).toEqual(Option.some(2))
      expect((yield* worker.stats).timedOut).toBe(1)
    }))

  it.scoped("closing the scope drains every cursor and then refuses new ones", () =>
    Effect.gen(function*() {
      const { scope, seqOf, worker } = yield* setup({ flushInterval: Duration.seconds(60) })
      for (let i = 0; i < 100; i++) yield* worker.persist(request(`d${i % 7}`, i + 1))
      yield* Scope.close(scope, Exit.void)
      expect(yield* seqOf("d0")).toEqual(Option.some(99))
      expect(yield* seqOf("d1")).toEqual(Option.some(100))
      const refused = yield* Effect.flip(worker.persist(request("d0", 101)))
      expect(refused._tag).toBe("PersistenceClosedError")
    }))

  it.scoped("closing with a dead store gives up after shutdownTimeout", () =>
    Effect.gen(function*() {
      // maxSaveAttempts out of reach, so the failures counted below are the cursors left at the timeout.
      const { f, scope, worker } = yield* setup({ flushInterval: flush, maxSaveAttempts: 100, shutdownTimeout: Duration.seconds(1) })
      const failuresBefore = (yield* Metric.value(PersistenceWorker.failures)).count
      f.failing = true
      yield* worker.persist(request("dead", 1))
      yield* worker.persist(request("gone", 1))
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      // The drain tries at once and keeps retrying until the timeout...
      expect(f.calls).toHaveLength(1)
      yield* TestClock.adjust(Duration.millis(999))
      yield* settle
      expect(f.calls.length).toBeGreaterThan(1)
      expect(Option.isNone(yield* closing.poll)).toBe(true)
      // ...and not a moment longer.
      yield* TestClock.adjust(Duration.millis(1))
      yield* settle
      expect(Option.isSome(yield* closing.poll)).toBe(true)
      yield* Fiber.join(closing)
      // Both cursors are counted as left unwritten.
      expect((yield* Metric.value(PersistenceWorker.failures)).count - failuresBefore).toBe(2)
      // The worker is stopped: no write is attempted after the close.
      const attempts = f.calls.length
      yield* TestClock.adjust(Duration.minutes(1))
      yield* settle
      expect(f.calls).toHaveLength(attempts)
      expect((yield* Effect.flip(worker.persist(request("dead", 2))))._tag).toBe("PersistenceClosedError")
    }))

  it.scoped("closing with a hung store gives up after shutdownTimeout and abandons the write", () =>
    Effect.gen(function*() {
      const { f, scope, seqOf, worker } = yield* setup({ flushInterval: flush, shutdownTimeout: Duration.seconds(1) })
      const failuresBefore = (yield* Metric.value(PersistenceWorker.failures)).count
      const stall = yield* Deferred.make<void>()
      f.stall = stall
      yield* worker.persist(request("hung", 1))
      yield* TestClock.adjust(flush)
      yield* settle
      expect(f.calls).toHaveLength(1)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust(Duration.seconds(1))
      yield* Fiber.join(closing)
      expect((yield* Metric.value(PersistenceWorker.failures)).count - failuresBefore).toBe(1)
      // The write was interrupted: a store that wakes up later does not receive it.
      f.stall = undefined
      yield* Deferred.succeed(stall, void 0)
      yield* settle
      expect(yield* seqOf("hung")).toEqual(Option.none())
    }))

  it.effect("reads its options from the environment, with defaults", () =>
    Effect.gen(function*() {
      const cfg = yield* PersistenceWorker.config.pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SSE_MAX_PENDING", "7"], ["SSE_FLUSH_INTERVAL", "20 millis"]])))
      )
      expect(cfg.maxPending).toBe(7)
      expect(Duration.toMillis(cfg.flushInterval)).toBe(20)
      expect(cfg.batchSize).toBe(PersistenceWorker.defaults.batchSize)
      expect(Duration.toMillis(cfg.offerTimeout)).toBe(100)
    }))

  it.effect("refuses a zero or negative count or duration in the environment (issue 9, item 4)", () =>
    Effect.gen(function*() {
      const read = (name: string, value: string) =>
        PersistenceWorker.config.pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([[name, value]]))),
          Effect.flip,
          Effect.map(String)
        )
      for (
        const name of [
          "SSE_FLUSH_INTERVAL",
          "SSE_PERSIST_TIMEOUT",
          "SSE_PERSIST_RETRY_BASE",
          "SSE_SHUTDOWN_TIMEOUT"
        ]
      ) expect(yield* read(name, "0 millis")).toContain(name)
      for (const name of ["SSE_MAX_PENDING", "SSE_BATCH_SIZE", "SSE_PERSIST_MAX_ATTEMPTS"]) {
        expect(yield* read(name, "0")).toContain(name)
        expect(yield* read(name, "-1")).toContain(name)
      }
    }))
})
