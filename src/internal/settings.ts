/**
 * Settings by one rule for each kind, in code and from the environment: a count is
 * a whole number ≥ 1 and a duration is longer than zero, since zero or less would
 * spin, give up at once or refuse everything.
 *
 * A module adopts it in two places:
 * - its `make`: `const settings = yield* resolve("Module", defaults, options, rules)`
 *   where `rules` names the rule of each setting that has one (`count`, `duration`,
 *   or a function returning the broken rule) and an optional `check` sees the whole
 *   merged settings for rules across settings; it fails with `SettingsError`.
 * - its `config`: each variable through `positiveInt`/`positiveDuration` (or a
 *   `Config` piped through `Config.withDescription`), renamed variables through
 *   `renamedDuration`/`renamedInt`, so the old name is still read.
 */
import { Config, Duration, Effect, Option } from "effect"
import { SettingsError } from "../Settings.js"

/** The count rule, for settings given in code as well as read from the environment. */
export const isCount = (n: number): boolean => Number.isSafeInteger(n) && n >= 1
export const countRule = "must be a whole number ≥ 1"

/** The duration rule, likewise. */
export const isPositiveDuration = (d: Duration.DurationInput): boolean => Duration.toMillis(d) > 0
export const durationRule = "must be longer than zero"

/** A setting's rule: the reason its value is refused, or undefined when it is fine. */
export type Rule<A> = (value: A) => string | undefined

export const count: Rule<number> = (n) => isCount(n) ? undefined : countRule

/** Decodes first: a value that is no duration at all is refused, not thrown. */
export const duration: Rule<Duration.DurationInput> = (d) =>
  Duration.decodeUnknown(d)._tag === "Some" && isPositiveDuration(d) ? undefined : durationRule

/** A duration rule for what is slept or scheduled: longer than zero and not infinite. */
export const finiteDuration: Rule<Duration.DurationInput> = (d) =>
  duration(d) === undefined && Duration.isFinite(Duration.decode(d)) ? undefined : `${durationRule} and finite`

/** One of `values`. */
export const oneOf = <A extends string>(...values: ReadonlyArray<A>): Rule<A> => (value) =>
  values.includes(value) ? undefined : `must be one of ${values.join(", ")}`

/** A broken rule across settings, from a module's `check`. */
export interface Broken<S> {
  readonly setting: keyof S & string
  readonly reason: string
}

/**
 * `options` over `defaults` (an option given as `undefined` keeps its default),
 * each setting checked by its rule, then the whole by `check`; the first broken
 * rule fails with `SettingsError` naming `module` and the setting.
 */
export const resolve = <S extends object>(
  module: string,
  defaults: S,
  options: Partial<S> | undefined,
  rules: { readonly [K in keyof S]?: Rule<S[K]> },
  check?: (settings: S) => Broken<S> | undefined
): Effect.Effect<S, SettingsError> =>
  Effect.suspend(() => {
    const settings = { ...defaults } as Record<string, unknown>
    for (const [key, value] of Object.entries(options ?? {})) if (value !== undefined) settings[key] = value
    const merged = settings as unknown as S
    for (const key of Object.keys(rules) as Array<keyof S & string>) {
      const reason = (rules[key] as Rule<S[typeof key]>)(merged[key])
      if (reason !== undefined) return Effect.fail(new SettingsError({ module, setting: key, value: merged[key], reason }))
    }
    const broken = check?.(merged)
    return broken === undefined
      ? Effect.succeed(merged)
      : Effect.fail(new SettingsError({ module, setting: broken.setting, value: merged[broken.setting], reason: broken.reason }))
  })

const positiveIntAt = (name: string) =>
  Config.integer(name).pipe(Config.validate({ message: countRule, validation: (n) => n >= 1 }))

const positiveDurationAt = (name: string) =>
  Config.duration(name).pipe(
    Config.validate({ message: durationRule, validation: (d: Duration.Duration) => isPositiveDuration(d) })
  )

/** An integer setting named `name`, at least 1, `fallback` when unset. */
export const positiveInt = (name: string, fallback: number, description: string): Config.Config<number> =>
  positiveIntAt(name).pipe(Config.withDefault(fallback), Config.withDescription(description))

/** A duration setting named `name` (e.g. "500 millis", "30 seconds"), longer than zero, `fallback` when unset. */
export const positiveDuration = (
  name: string,
  fallback: Duration.Duration,
  description: string
): Config.Config<Duration.Duration> =>
  positiveDurationAt(name).pipe(Config.withDefault(fallback), Config.withDescription(description))

/**
 * `name`, else the variable it was renamed from, else `fallback`. Both are read, so
 * a bad value under either is an error naming it, never a silent default.
 */
const renamed = <A>(read: (name: string) => Config.Config<A>) =>
(name: string, oldName: string, fallback: A, description: string): Config.Config<A> =>
  Config.all([Config.option(read(name)), Config.option(read(oldName))]).pipe(
    Config.map(([current, former]) => Option.getOrElse(Option.orElse(current, () => former), () => fallback)),
    Config.withDescription(`${description} (${oldName}, its former name, is still read)`)
  )

export const renamedInt: (name: string, oldName: string, fallback: number, description: string) => Config.Config<number> =
  renamed(positiveIntAt)

export const renamedDuration: (
  name: string,
  oldName: string,
  fallback: Duration.Duration,
  description: string
) => Config.Config<Duration.Duration> = renamed(positiveDurationAt)
