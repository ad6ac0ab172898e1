/**
 * Reading the library's settings from the environment, by one rule for each kind:
 * a count is a whole number ≥ 1 and a duration is longer than zero, since zero or
 * less would spin, give up at once or refuse everything.
 */
import { Config, Duration } from "effect"

/** The count rule, for settings given in code as well as read from the environment. */
export const isCount = (n: number): boolean => Number.isSafeInteger(n) && n >= 1
export const countRule = "must be a whole number ≥ 1"

/** The duration rule, likewise. */
export const isPositiveDuration = (d: Duration.DurationInput): boolean => Duration.toMillis(d) > 0
export const durationRule = "must be longer than zero"

/** An integer setting named `name`, at least 1, `fallback` when unset. */
export const positiveInt = (name: string, fallback: number, description: string): Config.Config<number> =>
  Config.integer(name).pipe(
    Config.validate({ message: countRule, validation: (n) => n >= 1 }),
    Config.withDefault(fallback),
    Config.withDescription(description)
  )

/** A duration setting named `name` (e.g. "500 millis", "30 seconds"), longer than zero, `fallback` when unset. */
export const positiveDuration = (
  name: string,
  fallback: Duration.Duration,
  description: string
): Config.Config<Duration.Duration> =>
  Config.duration(name).pipe(
    Config.validate({ message: durationRule, validation: (d: Duration.Duration) => isPositiveDuration(d) }),
    Config.withDefault(fallback),
    Config.withDescription(description)
  )
