/**
 * When a stream reconnects: the retry budget (consecutive attempts that brought
 * nothing new), the reconnect schedule, and the delay before the next attempt,
 * which the server may lengthen with `retry:` or `Retry-After`, within caps.
 */
import { Duration, Effect, Schedule, ScheduleDecision, ScheduleIntervals } from "effect"
import { type Reconnect, SseRetriesExhausted } from "../SseClientError.js"






/**
 * The longest sleep Effect's clock can time: it treats anything longer as
 * infinite (setTimeout's 32-bit limit), so a larger delay would never end.
 */
export const maxSleepMillis = 2 ** 31 - 1

/** The default backoff: exponential with jitter, capped at `maxDelay`. */
export const backoff = (options: {
  readonly initialDelay?: Duration.DurationInput | undefined
  readonly maxDelay?: Duration.DurationInput | undefined
}): Schedule.Schedule<unknown, Reconnect> => {
  const cap = Duration.decode(options.maxDelay ?? "30 seconds")
  return Schedule.exponential(options.initialDelay ?? "500 millis", 2).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((delay) => Duration.min(delay, cap))
  )
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
