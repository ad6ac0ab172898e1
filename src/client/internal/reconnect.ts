/**
 * When a stream reconnects: the retry budget (consecutive attempts that brought
 * nothing new), the reconnect schedule, and the delay before the next attempt,
 * which the server may lengthen with `retry:` or `Retry-After`, within caps.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
// Each Effect module from its own entry, here as in all of src/client and
// src/wire: esbuild keeps every member of a namespace the "effect" index
// re-exports (`export * as Schedule`) once one is used, and Schedule's members
// bring Cron and DateTime (~8.5 kB gzipped of a browser bundle, issue 18).
import * as Schedule from "effect/Schedule"
import { type Reconnect, SseRetriesExhausted } from "../SseClientError.js"
import { maxSleepMillis } from "../../internal/timers.js"

/**
 * The default backoff: `initialDelay` × 2^n after the n-th attempt since the
 * last new event (from 0), capped at `maxDelay`. These are the delays the
 * previous `Schedule.exponential` → `jittered` → `modifyDelay` chain gave: its
 * cap received the schedule's output (the un-jittered exponential), not the
 * jittered delay, so no jitter ever reached the wait. Written as one step of
 * its own because those combinators bring most of Schedule's module, Cron and
 * DateTime with it, into every browser bundle of the root (issue 18).
 */
export const backoff = (options: {
  readonly initialDelay?: Duration.DurationInput | undefined
  readonly maxDelay?: Duration.DurationInput | undefined
}): Schedule.Schedule<unknown, Reconnect> => {
  const initial = Duration.toMillis(options.initialDelay ?? "500 millis")
  const cap = Duration.toMillis(options.maxDelay ?? "30 seconds")
  return Schedule.makeWithState(0, (now, _: Reconnect, step: number) => {
    // Past 2^1023 the product is Infinity, which the cap takes care of.
    const delay = Math.min(initial * 2 ** step, cap)
    return Effect.succeed(
      [step + 1, Duration.millis(delay), ScheduleDecision.continueWith(ScheduleInterval.after(now + delay))] as const
    )
  })
}

const clamp = (millis: number): number => millis > 0 ? Math.min(millis, maxSleepMillis) : 0

/**
 * The wait before the next attempt: the schedule's delay, raised to what the
 * server asked for (`retry:` or `Retry-After`, whichever is longer) but never
 * past `maxRetryAfter`, so one line from the server cannot park a stream for a
 * day; and never past what a sleep can time.
 */
export const reconnectDelay = (delays: {
  readonly scheduled: number
  readonly serverRetry: number | undefined
  readonly retryAfter: Duration.Duration | undefined
  readonly maxRetryAfter: number
}): number => {
  const asked = Math.max(
    delays.serverRetry ?? 0,
    delays.retryAfter === undefined ? 0 : Duration.toMillis(delays.retryAfter)
  )
  return clamp(Math.max(clamp(delays.scheduled), Math.min(clamp(asked), clamp(delays.maxRetryAfter))))
}

/**
 * The budget of one stream. An attempt that delivered a new event refills it and
 * restarts the schedule; any other ending, a graceful close included, spends one
 * attempt, so a server that only ever replays cannot keep a stream alive forever.
 */
export class RetryBudget {
  private failures = 0
  private state: unknown
  /** Whether an attempt was answered with an event stream: until then `connectAttempts` bounds the budget. */
  private connected = false

  constructor(
    private readonly schedule: Schedule.Schedule<unknown, Reconnect>,
    private readonly maxAttempts: number,
    private readonly connectAttempts: number = maxAttempts
  ) {
    this.state = schedule.initial
  }

  /** An attempt was answered with an event stream. */
  connect(): void {
    this.connected = true
  }

  /** Spends the budget for `ended`; the schedule's delay in ms, or exhaustion. */
  next(ended: Reconnect, delivered: boolean, now: number): Effect.Effect<number, SseRetriesExhausted> {
    if (delivered) {
      this.refill()
    } else if (++this.failures >= (this.connected ? this.maxAttempts : Math.min(this.maxAttempts, this.connectAttempts))) {
      return Effect.fail(new SseRetriesExhausted({ attempts: this.failures, last: ended }))
    }
    return Effect.flatMap(this.schedule.step(now, ended, this.state), ([next, , decision]) => {
      if (ScheduleDecision.isDone(decision)) {
        return Effect.fail(new SseRetriesExhausted({ attempts: this.failures, last: ended }))
      }
      this.state = next
      return Effect.succeed(ScheduleIntervals.start(decision.intervals) - now)
    })
  }

  /**
   * A reconnect the caller asked for (`reconnectNow`) is not a failure: it spends
   * no attempt and does not step the schedule; a new event still refills.
   */
  requested(delivered: boolean): void {
    if (delivered) this.refill()
  }

  private refill(): void {
    this.failures = 0
    this.state = this.schedule.initial
  }
}
