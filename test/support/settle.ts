/**
 * Letting forked fibers catch up in tests, without real time: `settle` lets them
 * run to their next wait; `runToEnd` drives an effect under TestClock from one
 * pending sleep to the next, so reconnect delays are exact and cost no wall time.
 */
import { Chunk, Duration, Effect, type Exit, Fiber, TestClock } from "effect"

/** Enough yields for forked fibers to run a few dozen steps to their next wait. */
export const settle = Effect.repeatN(Effect.yieldNow(), 30)

/**
 * A wait on the real event loop, so promise callbacks (a web body's reads) and
 * thread-pool work (zlib) can finish: a bare turn at first, then 10 ms at a time.
 */
const tick = (stalled: number) =>
  Effect.promise(() =>
    new Promise<void>((resolve) => stalled < 100 ? setImmediate(resolve) : setTimeout(resolve, 10))
  )

/** Real waits allowed while nothing is scheduled on the clock: ~100 turns plus 3 s. */
const maxStalled = 400

/**
 * Runs `effect` to its end under TestClock, each time moving the clock to the
 * earliest pending sleep. Dies — failing the test within seconds, not at its
 * timeout — when the effect has not ended within `limit` of virtual time or
 * `maxSteps` clock moves, or waits on something no clock move can end.
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
    while (steps <= maxSteps && stalled <= maxStalled) {
      // Promise callbacks first: a body's read resolved now must not lose to a timer.
      yield* tick(0)
      yield* settle
      const exit = fiber.unsafePoll()
      if (exit !== null) return exit
      const pending = Chunk.toReadonlyArray(yield* TestClock.sleeps())
      if (pending.length === 0) {
        // Waiting on a promise: give the event loop a turn, a bounded number of times.
        yield* tick(stalled++)
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
      `did not end within ${limit} ms of virtual time and ${maxSteps} clock moves, or waited 3 s of real time with nothing on the clock`
    )
  })
