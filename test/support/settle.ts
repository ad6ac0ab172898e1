/**
 * Letting forked fibers catch up in tests, without real time: `settle` lets them
 * run to their next wait; `runToEnd` drives an effect under TestClock from one
 * pending sleep to the next, so reconnect delays are exact and cost no wall time.
 */
import { Chunk, Duration, Effect, type Exit, Fiber, TestClock } from "effect"

/** Enough yields for forked fibers to run a few dozen steps to their next wait. */
export const settle = Effect.repeatN(Effect.yieldNow(), 30)

/** One turn of the real event loop, so promise callbacks (a web body's reads) run. */
const tick = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/**
 * Runs `effect` to its end under TestClock, each time moving the clock to the
 * earliest pending sleep. Dies — failing the test at once, not at its timeout —
 * when the effect has not ended within `limit` of virtual time or `maxSteps`
 * clock moves, or waits on something that no clock move can end.
 */
export const runToEnd = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options: { readonly limit?: Duration.DurationInput; readonly maxSteps?: number } = {}
): Effect.Effect<Exit.Exit<A, E>, never, R> =>
  Effect.gen(function*() {
    const limit = Duration.toMillis(options.limit ?? "1 hour")
    const maxSteps = options.maxSteps ?? 200
    const fiber = yield* Effect.fork(effect)
    let steps = 0
    let stalled = 0
    while (steps <= maxSteps && stalled <= 100) {
      yield* settle
      const exit = fiber.unsafePoll()
      if (exit !== null) return exit
      const pending = Chunk.toReadonlyArray(yield* TestClock.sleeps())
      if (pending.length === 0) {
        // Waiting on a promise: give the event loop a turn, a bounded number of times.
        stalled++
        yield* tick
        continue
      }
      const next = Math.min(...pending)
      if (next > limit) break
      stalled = 0
      steps++
      yield* TestClock.setTime(Math.max(next, yield* TestClock.currentTimeMillis))
    }
    yield* Fiber.interrupt(fiber)
    return yield* Effect.dieMessage(
      `did not end within ${limit} ms of virtual time, ${maxSteps} clock moves and 100 event-loop turns without one`
    )
  })
