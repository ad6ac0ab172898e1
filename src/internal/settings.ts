/**
 * Reading the library's settings from the environment, by one rule for each kind:
 * a count is a whole number ≥ 1 and a duration is longer than zero, since zero or
 * less would spin, give up at once or refuse everything.
 */
import { Config, Duration } from "effect"

/** An integer setting named `name`, at least 1, `fallback` when unset. */
export const positiveInt = (name: string, fallback: number, description: string): Config.Config<number> =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be a whole number ≥ 1", validation: (n) => n >= 1 }),
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
    Config.validate({ message: "must be longer than zero", validation: (d) => Duration.toMillis(d) > 0 }),
    Config.withDefault(fallback),
    Config.withDescription(description)
  )
