/**
 * `--help`, rendered from the commands' definitions: one line per option with its
 * default and its environment variable. Bold headings only on a terminal that
 * allows colour (NO_COLOR unset), so help piped into a file or `less` is plain text.
 */
import { type CommandSpec, flagOf, type OptionSpec } from "./arguments.js"

export interface Style {
  readonly heading: (text: string) => string
}

export const plain: Style = { heading: (text) => text }

/** Bold headings for a terminal that allows colour (https://no-color.org). */
export const styleFor = (stream: { readonly isTTY?: boolean }, env: NodeJS.ProcessEnv): Style =>
  stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === "")
    ? { heading: (text) => `\x1b[1m${text}\x1b[22m` }
    : plain

const defaultOf = (spec: OptionSpec): string | undefined => {
  if (spec.defaultText !== undefined) return spec.defaultText
  switch (spec.kind) {
    case "flag":
      return "off"
    case "list":
      return "none"
    default:
      return spec.default === undefined ? undefined : String(spec.default)
  }
}

/** `  -H, --header "NAME: VALUE"`, the left column of an option's line. */
const heading = (key: string, spec: OptionSpec): string => {
  const names = spec.alias === undefined ? `    ${flagOf(key)}` : `-${spec.alias}, ${flagOf(key)}`
  return spec.kind === "flag" ? names : `${names} ${spec.placeholder}`
}

const helpLine = "    --help"

const optionLines = (options: Record<string, OptionSpec>): Array<string> => {
  const entries = Object.entries(options).map(([key, spec]) => [heading(key, spec), spec] as const)
  const width = Math.max(helpLine.length, ...entries.map(([left]) => left.length))
  const lines = entries.map(([left, spec]) => {
    const defaultValue = defaultOf(spec)
    const notes = [
      defaultValue === undefined ? undefined : `default: ${defaultValue}`,
      spec.env === undefined ? undefined : `env: ${spec.env}`
    ].filter((note) => note !== undefined)
    return `  ${left.padEnd(width)}  ${spec.description}${notes.length === 0 ? "" : ` [${notes.join("; ")}]`}`
  })
  return [...lines, `  ${helpLine.padEnd(width)}  Show this help`]
}

/** The help of one command. */
export const command = (program: string, spec: CommandSpec, style: Style): string => {
  const argument = spec.argument === undefined ? "" : ` ${spec.argument.name}`
  return [
    `${style.heading("Usage:")} ${program} ${spec.name}${argument} [options]`,
    "",
    ...spec.description.flatMap((paragraph) => [paragraph, ""]),
    ...(spec.argument === undefined ? [] : [`${style.heading("Argument:")}`, `  ${spec.argument.name}  ${spec.argument.description}`, ""]),
    style.heading("Options:"),
    ...optionLines(spec.options),
    ""
  ].join("\n")
}

/** The program's help: its commands. */
export const program = (
  name: string,
  version: string,
  summary: string,
  commands: ReadonlyArray<CommandSpec>,
  style: Style
): string => {
  const width = Math.max(...commands.map((c) => c.name.length))
  return [
    `${name} ${version}: ${summary}`,
    "",
    `${style.heading("Usage:")} ${name} COMMAND [options]`,
    "",
    style.heading("Commands:"),
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    `Run \`${name} COMMAND --help\` for a command's options; \`${name} --version\` prints the version.`,
    ""
  ].join("\n")
}
