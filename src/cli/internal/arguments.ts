/**
 * The command line, read against a command's definition: its options and its one
 * positional argument. Plain code with no Effect, so `--help`, `--version` and a
 * usage error answer before any of the library is loaded (issue 20).
 */

/** What every option has: how it is explained in `--help`. */
interface Described {
  readonly description: string
  /** A one-letter alias (`-H`). */
  readonly alias?: string
  /** The environment variable that sets its default, shown in `--help`. */
  readonly env?: string
  /** What `--help` gives as the default where the option has no value of its own ("none", "never"). */
  readonly defaultText?: string
}

export type OptionSpec =
  | Described & { readonly kind: "text"; readonly placeholder: string; readonly default?: string; readonly choices?: ReadonlyArray<string> }
  | Described & { readonly kind: "integer"; readonly placeholder: string; readonly default?: number; readonly min: number }
  | Described & { readonly kind: "list"; readonly placeholder: string }
  | Described & { readonly kind: "flag" }

/** The value an option parses to: its default, or undefined when it has none and was not given. */
type ValueOf<O extends OptionSpec> = O extends { readonly kind: "flag" } ? boolean
  : O extends { readonly kind: "list" } ? ReadonlyArray<string>
  : O extends { readonly kind: "integer"; readonly default: number } ? number
  : O extends { readonly kind: "integer" } ? number | undefined
  : O extends { readonly default: string } ? string
  : string | undefined

export interface CommandSpec<Options extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
  readonly name: string
  /** One line, for the list of commands. */
  readonly summary: string
  /** Paragraphs below the usage line. */
  readonly description: ReadonlyArray<string>
  /** The positional argument, if the command takes one. */
  readonly argument?: { readonly name: string; readonly description: string }
  readonly options: Options
}

type Values<Options extends Record<string, OptionSpec>> = { readonly [K in keyof Options]: ValueOf<Options[K]> }

export interface Parsed<Options extends Record<string, OptionSpec>> {
  readonly argument: string | undefined
  readonly options: Values<Options>
}

/** Why a command line was refused, in words for the one `sse-resume: …` line. */
export type Parse<Options extends Record<string, OptionSpec>> =
  | { readonly _tag: "Parsed"; readonly parsed: Parsed<Options> }
  | { readonly _tag: "Help" }
  | { readonly _tag: "Invalid"; readonly reason: string }

/** `--max-events` from the key `maxEvents`. */
export const flagOf = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`

/** The closest known name within two edits, for "did you mean". */
export const closest = (name: string, known: ReadonlyArray<string>): string | undefined => {
  let best: string | undefined
  let bestDistance = 3
  for (const candidate of known) {
    const distance = editDistance(name, candidate)
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance]
  }
  return best
}

const editDistance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = row
  }
  return previous[b.length]!
}

/** A value of `spec` from its text, or the reason it is not one. */
const read = (flag: string, spec: OptionSpec, raw: string): { value: unknown } | { reason: string } => {
  switch (spec.kind) {
    case "integer": {
      const value = Number(raw)
      return /^-?\d+$/.test(raw.trim()) && Number.isSafeInteger(value) && value >= spec.min
        ? { value }
        : { reason: `${flag} takes a whole number${spec.min > 0 ? ` ≥ ${spec.min}` : spec.min === 0 ? " ≥ 0" : ""}, got ${JSON.stringify(raw)}` }
    }
    case "text":
      return spec.choices === undefined || spec.choices.includes(raw)
        ? { value: raw }
        : { reason: `${flag} takes ${spec.choices.join(" or ")}, got ${JSON.stringify(raw)}` }
    default:
      return { value: raw }
  }
}

/** Reads `args` (what follows the command's name) against `command`. */
export const parse = <Options extends Record<string, OptionSpec>>(
  command: CommandSpec<Options>,
  args: ReadonlyArray<string>
): Parse<Options> => {
  const byFlag = new Map<string, readonly [string, OptionSpec]>()
  for (const [key, spec] of Object.entries(command.options)) {
    byFlag.set(flagOf(key), [key, spec])
    if (spec.alias !== undefined) byFlag.set(`-${spec.alias}`, [key, spec])
  }
  const values: Record<string, unknown> = {}
  for (const [key, spec] of Object.entries(command.options)) {
    values[key] = spec.kind === "flag" ? false : spec.kind === "list" ? [] : spec.default
  }
  const positional: Array<string> = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === "--") {
      positional.push(...args.slice(i + 1))
      break
    }
    if (arg === "--help" || arg === "-h") return { _tag: "Help" }
    if (!arg.startsWith("-") || arg === "-") {
      positional.push(arg)
      continue
    }
    const equals = arg.indexOf("=")
    const flag = arg.startsWith("--") && equals > 0 ? arg.slice(0, equals) : arg
    const known = byFlag.get(flag)
    if (known === undefined) {
      const guess = closest(flag, [...byFlag.keys()])
      return { _tag: "Invalid", reason: `unknown option ${flag}${guess === undefined ? "" : ` (did you mean ${guess}?)`}` }
    }
    const [key, spec] = known
    if (spec.kind === "flag") {
      if (flag !== arg) return { _tag: "Invalid", reason: `${flag} takes no value` }
      values[key] = true
      continue
    }
    const raw = flag !== arg ? arg.slice(equals + 1) : args[++i]
    if (raw === undefined) return { _tag: "Invalid", reason: `${flag} needs a value (${spec.placeholder})` }
    const value = read(flag, spec, raw)
    if ("reason" in value) return { _tag: "Invalid", reason: value.reason }
    values[key] = spec.kind === "list" ? [...(values[key] as Array<string>), raw] : value.value
  }
  const limit = command.argument === undefined ? 0 : 1
  if (positional.length > limit) return { _tag: "Invalid", reason: `unexpected argument ${JSON.stringify(positional[limit])}` }
  if (command.argument !== undefined && positional.length === 0) {
    return { _tag: "Invalid", reason: `missing ${command.argument.name}: ${command.name} needs ${command.argument.description}` }
  }
  return { _tag: "Parsed", parsed: { argument: positional[0], options: values as Values<Options> } }
}
