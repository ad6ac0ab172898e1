/**
 * Reading the library's options from the environment. Every count option is a
 * whole number ≥ 1: zero or less would spin, give up at once or refuse everything.
 */
import { Config } from "effect"

/** An integer option named `name`, at least 1, `fallback` when unset. */
export const positiveInt = (name: string, fallback: number): Config.Config<number> =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be a whole number ≥ 1", validation: (n) => n >= 1 }),
    Config.withDefault(fallback)
  )
