/**
 * The idle watchdog of one connection: the body's reader tells it when a read
 * starts and when its chunk arrives, and `onIdle` (aborting the connection)
 * runs once a read has waited `idleTimeout` for a byte. Calls, not a channel of
 * its own: each channel stage costs about a microsecond per chunk, more than
 * parsing a one-event chunk (measured).
 *
 * Only a read that is outstanding counts. While the consumer is busy nobody
 * reads, so a consumer slower than `idleTimeout` never looks like a silent
 * server.
 *
 * No fiber per connection: the watchdogs of one clock and one `idleTimeout`
 * share a sweeper, one fiber that sleeps on that clock (a `TestClock` too)
 * until the earliest deadline and runs while any watchdog is open. A fiber per
 * connection held ~4 KB per open stream (measured, 2,000 streams), a timer per
 * read (`Stream.timeout`) cost a third of the throughput.
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as Scope from "effect/Scope"
import { maxSleepMillis } from "../../internal/timers.js"

export class IdleWatchdog {
  /** True while a read waits for the upstream; false while the chunk read last is handed on. */
  waiting = true
  /** When the current read started. */
  since: number
  private firedFlag = false

  private constructor(
    private readonly clock: Clock.Clock,
    readonly onIdle: Effect.Effect<void>
  ) {
    this.since = clock.unsafeCurrentTimeMillis()
  }

  /**
   * Starts the watchdog in the current scope; it stops with the scope. `onIdle`
   * runs at most once.
   */
  static make(
    idleTimeout: Duration.DurationInput,
    onIdle: Effect.Effect<void>
  ): Effect.Effect<IdleWatchdog, never, Scope.Scope> {
    return Effect.flatMap(Effect.clock, (clock) => {
      const sweeper = sweeperOf(clock, Duration.toMillis(idleTimeout))
      return Effect.acquireRelease(
        Effect.suspend(() => sweeper.add(new IdleWatchdog(clock, onIdle))),
        (watchdog) => Effect.sync(() => sweeper.remove(watchdog))
      )
    })
  }

  /** Whether the watchdog found the connection idle and ran `onIdle`. */
  get fired(): boolean {
    return this.firedFlag
  }

  /** Marks it fired: it is then dropped from its sweeper, which runs `onIdle`. */
  fire(): void {
    this.firedFlag = true
  }

  /**
   * A chunk arrived: the read that waited for it is over. Until `reading`, the
   * consumer has the chunk, and no time counts.
   */
  received(): void {
    this.waiting = false
  }

  /** The next read starts: the consumer asked for more. */
  reading(): void {
    this.waiting = true
    this.since = this.clock.unsafeCurrentTimeMillis()
  }
}

/**
 * The open watchdogs of one clock and one idle time, and the fiber checking
 * them. All share the idle time, so a read starting later has a later deadline
 * than any the fiber sleeps towards: it never needs waking early.
 */
class Sweeper {
  private readonly watchdogs = new Set<IdleWatchdog>()
  private fiber: Fiber.RuntimeFiber<void> | undefined
  private running = false

  constructor(private readonly clock: Clock.Clock, private readonly idleMillis: number) {}

  add(watchdog: IdleWatchdog): Effect.Effect<IdleWatchdog> {
    this.watchdogs.add(watchdog)
    if (this.running) return Effect.succeed(watchdog)
    this.running = true
    // A daemon: it outlives the stream that started it, and stops when the last watchdog goes.
    // Interruptible: a fork inherits the uninterruptible region it is made in (an acquire).
    return Effect.as(
      Effect.tap(Effect.forkDaemon(Effect.interruptible(this.sweep)), (fiber) => {
        if (this.running) this.fiber = fiber
        else fiber.unsafeInterruptAsFork(FiberId.none)
      }),
      watchdog
    )
  }

  remove(watchdog: IdleWatchdog): void {
    this.watchdogs.delete(watchdog)
    if (this.watchdogs.size > 0 || !this.running) return
    // No timer may keep the process alive once no stream is open.
    this.running = false
    const fiber = this.fiber
    this.fiber = undefined
    fiber?.unsafeInterruptAsFork(FiberId.none)
  }

  /**
   * Fires the watchdogs whose read has waited `idleMillis`, then sleeps until the
   * next one could. Only the sleep is interruptible: once a watchdog is taken out
   * as fired, its `onIdle` runs even if that removes the last one (which stops
   * this fiber); a defect in one neither stops the others nor the sweeper.
   */
  private readonly step: Effect.Effect<void> = Effect.uninterruptibleMask((restore) =>
    Effect.suspend(() => {
      const now = this.clock.unsafeCurrentTimeMillis()
      let next = now + this.idleMillis
      const idle: Array<IdleWatchdog> = []
      for (const watchdog of this.watchdogs) {
        if (!watchdog.waiting) continue
        const deadline = watchdog.since + this.idleMillis
        if (deadline <= now) idle.push(watchdog)
        else if (deadline < next) next = deadline
      }
      for (const watchdog of idle) {
        watchdog.fire()
        this.watchdogs.delete(watchdog)
      }
      const sleep = restore(this.clock.sleep(Duration.millis(Math.min(next - now, maxSleepMillis))))
      if (idle.length === 0) return sleep
      return Effect.zipRight(Effect.forEach(idle, (watchdog) => Effect.exit(watchdog.onIdle), { discard: true }), sleep)
    })
  )

  private readonly sweep: Effect.Effect<never> = Effect.forever(this.step)
}

const sweepers = new WeakMap<Clock.Clock, Map<number, Sweeper>>()

const sweeperOf = (clock: Clock.Clock, idleMillis: number): Sweeper => {
  let byIdle = sweepers.get(clock)
  if (byIdle === undefined) sweepers.set(clock, byIdle = new Map())
  let sweeper = byIdle.get(idleMillis)
  if (sweeper === undefined) byIdle.set(idleMillis, sweeper = new Sweeper(clock, idleMillis))
  return sweeper
}
