/**
 * `sse-resume`: a resumable `curl -N` for SSE (`tail`) and a local server to try
 * it against (`serve-demo`). Events go to stdout as JSON lines, status to stderr;
 * user mistakes end in one line and a documented exit code, never a stack trace.
 *
 * This module is the command tree and the exit codes. It loads no driver, no
 * telemetry SDK and no Effect runtime: `--help`, `--version` and a usage error
 * are answered from it alone, and a command's module is imported only to run it.
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as DemoServer from "./demo/DemoServer.js"
import type * as DemoPage from "./demo/ui/DemoPage.js"
import type * as TailCommand from "./commands/tail/command.js"
import * as Arguments from "./internal/arguments.js"
import * as Help from "./internal/help.js"

export const name = "sse-resume"
const version = "0.1.0"

/** The optional peers the commands load, with package.json's ranges (a test keeps them equal). */
export const peerRanges = {
  "@effect/platform-node": "^0.108.2",
  "@effect/sql-sqlite-node": "^0.53.0",
  "@effect/sql-pg": "^0.53.0"
} as const

/** Exit codes, as the README documents them. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  http: 3,
  contentType: 4,
  unreachable: 5,
  store: 6,
  protocol: 7,
  owned: 8,
  otherStream: 9
} as const

export type ExitCode = typeof ExitCode[keyof typeof ExitCode]

/** A mistake in the command line or the environment; its message ends with where to read the usage. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/** A usage error of `command` (undefined: of the program), pointing at its `--help`. */
export const usageError = (reason: string, command?: string): UsageError =>
  new UsageError({ message: `${reason} (see \`${name}${command === undefined ? "" : ` ${command}`} --help\`)` })

/** Every error the CLI can end with; each has its exit code in `exitCodes`. */
export type CliError =
  | UsageError
  | TailCommand.TailCommandError
  | DemoServer.DemoServerError
  | DemoPage.DemoPageMissing

/** Exhaustive, so an error the CLI can newly end with does not compile until it has a code. */
const exitCodes: { readonly [K in CliError["_tag"]]: ExitCode } = {
  UsageError: ExitCode.usage,
  InvalidConfig: ExitCode.usage,
  DemoServerError: ExitCode.usage,
  // serve-demo --ui from a checkout that was never built: the message says to build.
  DemoPageMissing: ExitCode.usage,
  SseHttpError: ExitCode.http,
  // A redirect loop or chain that cannot be followed: retrying gets the same answers.
  SseRedirectError: ExitCode.http,
  SseContentTypeError: ExitCode.contentType,
  // Not an event stream the client can read, like a wrong content type.
  SseContentEncodingError: ExitCode.contentType,
  SseRetriesExhausted: ExitCode.unreachable,
  Unreachable: ExitCode.unreachable,
  SseStreamDropped: ExitCode.unreachable,
  StoreUnavailable: ExitCode.store,
  // Another process holds the session, or took it from this one.
  SessionBusy: ExitCode.owned,
  SessionLost: ExitCode.owned,
  // The session's cursor belongs to another stream: resuming it there would skip that stream's events.
  SessionStreamMismatch: ExitCode.otherStream,
  // The server broke the protocol: an event past maxEventBytes, an id no header can resume from.
  SseEventTooLarge: ExitCode.protocol,
  SseResumeIdError: ExitCode.protocol,
  // The server's retention dropped events after the stored cursor: resuming would skip them silently.
  SseResumeGap: ExitCode.protocol,
  // A setting the library refuses: from SSE_* (already checked by config) or a flag, so a usage error.
  SettingsError: ExitCode.usage
}

/**
 * What to do next, for the errors where the CLI knows: the library's messages
 * name the failure, not the option that changes the outcome.
 */
const hint = (error: CliError): string => {
  switch (error._tag) {
    case "SessionBusy":
      return `; run with --wait to take it over when it stops, or --session NAME for another session`
    case "SseStreamDropped":
      // With a resume point, --resume-with was not given (else the client would have resumed).
      return error.lastEventId === undefined
        ? ""
        : `; --resume-with get resumes it by GET with that Last-Event-ID; running it again without it re-sends the ${error.method}`
    default:
      return ""
  }
}

/** What the line says: the error's message and a hint, or the CLI's own words where it knows better. */
const describe = (error: CliError): string => {
  if (error._tag === "SessionStreamMismatch") {
    return `session "${error.sessionId}" follows ${error.stored}, not ${error.requested}: resuming its cursor there ` +
      `would skip that stream's events; use --session NAME to start another session for ${error.requested}`
  }
  return `${error.message || error._tag}${hint(error)}`
}

/** The exit code and the one line to print for how the program ended. */
export const outcome = (exit: Exit.Exit<unknown, CliError>): { readonly code: ExitCode; readonly line?: string } => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return { code: ExitCode.ok }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return { code: ExitCode.failure, line: `${name}: internal error: ${Cause.pretty(exit.cause)}` }
  const error = failure.value
  return { code: exitCodes[error._tag], line: `${name}: ${describe(error)}` }
}

// --- The command tree ---

const resumeWithout = "A stream of a method other than GET, HEAD, OPTIONS or TRACE is never sent twice: " +
  "it ends when the server closes it, and a cut fails with its resume point unless --resume-with says how to resume it."

const tail = {
  name: "tail",
  summary: "print each new event of an SSE endpoint once, resuming after the stored cursor",
  description: [
    "Prints each new event of an SSE endpoint once on stdout (one JSON line each; status on stderr), resuming " +
    "after the session's stored cursor. Ctrl-C or SIGTERM stores the cursor and exits 0.",
    resumeWithout,
    "Client settings come from SSE_* environment variables (SSE_MAX_ATTEMPTS, SSE_INITIAL_DELAY, SSE_MAX_DELAY, " +
    "SSE_MAX_EVENT_BYTES, SSE_FLUSH_INTERVAL, …; see the README)."
  ],
  argument: { name: "URL", description: "the http(s) URL of the SSE endpoint" },
  options: {
    session: { kind: "text", placeholder: "NAME", default: "default", description: "Session name: the key of the stored cursor" },
    store: { kind: "text", placeholder: "FILE", default: "./.sse-resume/cursors.db", description: "SQLite file holding cursors" },
    pg: { kind: "text", placeholder: "URL", description: "PostgreSQL URL (postgres://…): store cursors there instead of in --store", defaultText: "none" },
    header: { kind: "list", alias: "H", placeholder: "\"NAME: VALUE\"", description: "Request header, repeatable" },
    method: { kind: "text", placeholder: "METHOD", default: "GET", description: "Request method; see above for methods other than GET, HEAD, OPTIONS, TRACE" },
    data: {
      kind: "text",
      placeholder: "BODY",
      description: "Request body, with --method POST; sent as -H's Content-Type, else JSON when it parses, else text/plain", defaultText: "none"
    },
    resumeWith: {
      kind: "text",
      placeholder: "get",
      choices: ["get"],
      description: "Resume a cut stream of another method by a GET to the same URL with Last-Event-ID (MCP)",
      defaultText: "none, a cut fails"
    },
    format: { kind: "text", placeholder: "json|data", default: "json", choices: ["json", "data"], description: "json: one {\"id\",\"event\",\"data\"} per line; data: each event's data alone" },
    wait: { kind: "flag", description: "While another process holds the session, wait for it instead of exiting 8" },
    into: {
      kind: "text",
      placeholder: "TABLE",
      description: "Also append each event to this table of the store's database, in the cursor's transaction: exactly once", defaultText: "none"
    },
    maxEvents: { kind: "integer", placeholder: "N", min: 1, description: "Stop after N new events", defaultText: "never" },
    idleTimeout: { kind: "integer", placeholder: "SECONDS", min: 1, env: "SSE_IDLE_TIMEOUT", description: "Reconnect when no byte arrives for this long", defaultText: "60" }
  }
} as const satisfies Arguments.CommandSpec

const serveDemo = {
  name: "serve-demo",
  summary: "serve numbered events on 127.0.0.1, cut now and then, to try tail against",
  description: ["Serves numbered events at http://127.0.0.1:PORT/events, resuming after Last-Event-ID. Ctrl-C stops it."],
  options: {
    port: { kind: "integer", placeholder: "PORT", min: 0, default: 8080, description: "Port on 127.0.0.1 (0: any free port)" },
    dropEvery: { kind: "integer", placeholder: "N", min: 0, default: 0, description: "Cut each connection after N events (0: never)" },
    rate: { kind: "integer", placeholder: "N", min: 1, default: 100, description: "Events per second" },
    ui: { kind: "flag", description: "Also serve the demo page on / : it tails the stream in the browser, resuming after a reload" }
  }
} as const satisfies Arguments.CommandSpec

export type TailArguments = Arguments.Parsed<typeof tail.options>
export type ServeDemoArguments = Arguments.Parsed<typeof serveDemo.options>

/** What the command line asks for. */
export type Invocation =
  | { readonly _tag: "Print"; readonly text: string }
  | { readonly _tag: "Usage"; readonly error: UsageError }
  | { readonly _tag: "Tail"; readonly args: TailArguments }
  | { readonly _tag: "ServeDemo"; readonly args: ServeDemoArguments }

const summary = "resumable, de-duplicating Server-Sent Events with durable cursors"

/**
 * Reads the command line (`process.argv` without node and the script). `style`
 * decides how help is printed (`Help.styleFor(process.stdout, process.env)`).
 */
export const parse = (args: ReadonlyArray<string>, style: Help.Style = Help.plain): Invocation => {
  const [first, ...rest] = args
  const commands = [tail, serveDemo]
  if (first === "--version" || first === "-V") return { _tag: "Print", text: `${name} ${version}\n` }
  if (first === "--help" || first === "-h") return { _tag: "Print", text: Help.program(name, version, summary, commands, style) }
  if (first === undefined) return { _tag: "Usage", error: usageError("missing command: tail or serve-demo") }
  const command = commands.find((c) => c.name === first)
  if (command === undefined) {
    const guess = Arguments.closest(first, commands.map((c) => c.name))
    return { _tag: "Usage", error: usageError(`unknown command ${JSON.stringify(first)}${guess === undefined ? "" : ` (did you mean ${guess}?)`}`) }
  }
  const result = command === tail ? Arguments.parse(tail, rest) : Arguments.parse(serveDemo, rest)
  switch (result._tag) {
    case "Help":
      return { _tag: "Print", text: Help.command(name, command, style) }
    case "Invalid":
      return { _tag: "Usage", error: usageError(result.reason, command.name) }
    case "Parsed":
      return command === tail
        ? { _tag: "Tail", args: result.parsed as TailArguments }
        : { _tag: "ServeDemo", args: result.parsed as ServeDemoArguments }
  }
}
