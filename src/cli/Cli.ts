/**
 * `sse-resume`: a resumable `curl -N` for SSE (`tail`) and a local server to try
 * it against (`serve-demo`). Events go to stdout as JSON lines, status to stderr;
 * user mistakes end in one line and a documented exit code, never a stack trace.
 */
import { Args, Command, Options, ValidationError } from "@effect/cli"
import { FetchHttpClient } from "@effect/platform"
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Data, Duration, Effect, Exit, Layer, Logger, Option } from "effect"
import * as SqliteCursorStore from "../engines/SqliteCursorStore.js"
import * as DemoServer from "./demo/DemoServer.js"
import * as DemoPage from "./demo/ui/DemoPage.js"
import type * as SseClient from "../client/SseClient.js"
import * as Tail from "./commands/Tail.js"
import * as Telemetry from "../Telemetry.js"

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
  owned: 8
} as const

export type ExitCode = typeof ExitCode[keyof typeof ExitCode]

export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/** Every error the CLI can end with; each has its exit code in `exitCodes`. */
export type CliError =
  | ValidationError.ValidationError
  | UsageError
  | Tail.TailError
  | DemoServer.DemoServerError
  | DemoPage.DemoPageMissing

/** Exhaustive, so an error the CLI can newly end with does not compile until it has a code. */
export const exitCodes: { readonly [K in CliError["_tag"]]: ExitCode } = {
  // @effect/cli's own: bad arguments.
  CommandMismatch: ExitCode.usage,
  CorrectedFlag: ExitCode.usage,
  HelpRequested: ExitCode.usage,
  InvalidArgument: ExitCode.usage,
  InvalidValue: ExitCode.usage,
  MissingFlag: ExitCode.usage,
  MissingValue: ExitCode.usage,
  MissingSubcommand: ExitCode.usage,
  MultipleValuesDetected: ExitCode.usage,
  NoBuiltInMatch: ExitCode.usage,
  UnclusteredFlag: ExitCode.usage,
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
  SseStreamDropped: ExitCode.unreachable,
  StoreUnavailable: ExitCode.store,
  // Another process holds the session, or took it from this one.
  SessionBusy: ExitCode.owned,
  SessionLost: ExitCode.owned,
  // The server broke the protocol: an event past maxEventBytes, an id no header can resume from.
  SseEventTooLarge: ExitCode.protocol,
  SseResumeIdError: ExitCode.protocol,
  // Tail validates every setting a tracker takes, so this one is a bug of ours.
  TrackerOptionsError: ExitCode.failure
}

/** The exit code and the one line to print for how the program ended. */
export const outcome = (exit: Exit.Exit<unknown, CliError>): { readonly code: ExitCode; readonly line?: string } => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return { code: ExitCode.ok }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return { code: ExitCode.failure, line: `sse-resume: internal error: ${Cause.pretty(exit.cause)}` }
  const error = failure.value
  const code = exitCodes[error._tag]
  // @effect/cli has already printed its own message for these.
  if (ValidationError.isValidationError(error)) return { code }
  return { code, line: `sse-resume: ${error.message || error._tag}` }
}

/**
 * Runs a program as a process: the documented exit code, and one line on failure.
 * Logs go to stderr, as status does: stdout carries event lines only.
 */
export const runMain = <A>(program: Effect.Effect<A, CliError>): void =>
  NodeRuntime.runMain(
    Effect.provide(program, Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))),
    {
      disableErrorReporting: true,
      // Its own pretty logger writes to stdout.
      disablePrettyLogger: true,
      teardown: (exit, onExit) => {
        // The Teardown type is generic; the exit it gets is this program's.
        const { code, line } = outcome(exit as Exit.Exit<unknown, CliError>)
        if (line !== undefined) process.stderr.write(`${line}\n`)
        onExit(code)
      }
    }
  )

/**
 * Writes to stdout, waiting for 'drain' when its buffer is full: that is what makes
 * a slow reader (a pipe) slow the stream. A reader that goes away (`| head`) stops
 * the run the way Ctrl-C does: quietly, with the cursor stored.
 */
const stdoutWriter = (): ((text: string) => Effect.Effect<void>) => {
  let closed = false
  process.stdout.on("error", () => {
    closed = true
    process.stdout.emit("drain")
  })
  return (text) =>
    Effect.suspend(() =>
      closed ? Effect.interrupt : Effect.async<void>((resume) => {
        if (process.stdout.write(text)) return resume(Effect.void)
        const onDrain = () => resume(closed ? Effect.interrupt : Effect.void)
        process.stdout.once("drain", onDrain)
        return Effect.sync(() => process.stdout.off("drain", onDrain))
      })
    )
}

const describeConnection = (status: SseClient.ConnectionStatus): string => {
  switch (status.state) {
    case "connecting":
      return `connecting (attempt ${status.attempt}${status.lastEventId ? `, Last-Event-ID ${status.lastEventId}` : ""})`
    case "connected":
      return `connected (HTTP ${status.status})`
    case "reconnecting":
      return `reconnecting in ${(status.delayMillis / 1000).toFixed(1)} s: ${status.reason}` +
        (status.status === undefined ? "" : ` (HTTP ${status.status})`)
  }
}

/** Status lines on stderr: rewritten in place on a terminal, appended otherwise. */
export const statusPrinter = (stream: NodeJS.WriteStream = process.stderr) => {
  const live = stream.isTTY === true
  let progress = ""
  const say = (line: string) =>
    Effect.sync(() => {
      if (live) stream.write(`\r\x1b[2K${line}\n${progress}`)
      else stream.write(`${line}\n`)
    })
  return (status: Tail.Status): Effect.Effect<void> => {
    switch (status._tag) {
      case "Waiting":
        return say(`waiting: ${status.busy.message}`)
      case "Resuming":
        return say(Option.match(status.lastEventId, {
          onNone: () => "starting from the beginning (no stored cursor)",
          onSome: (id) => `resuming after stored cursor ${id}`
        }))
      case "Connection":
        return say(describeConnection(status))
      case "Stopped": {
        const s = status.summary
        const cursor = Option.match(s.storedCursor, {
          onNone: () => "none",
          onSome: (c) => `${c.lastEventId} (seq ${c.seq})`
        })
        return Effect.sync(() => {
          progress = ""
          stream.write(
            `${live ? "\r\x1b[2K" : ""}stopped: ${s.delivered} delivered, ${s.duplicatesDropped} duplicates dropped, ` +
              `${s.reconnects} reconnects; stored cursor ${cursor}\n`
          )
        })
      }
      case "Progress": {
        const c = status.counts
        const line = `${status.eventsPerSecond.toFixed(0)} events/s, ${c.delivered} delivered, ` +
          `${c.duplicatesDropped} duplicates dropped, ${c.reconnects} reconnects, ` +
          `${c.backpressureTimeouts} backpressure timeouts`
        return Effect.sync(() => {
          if (live) {
            progress = line
            stream.write(`\r\x1b[2K${line}`)
          } else stream.write(`${line}\n`)
        })
      }
    }
  }
}

const parseHeader = (raw: string): Effect.Effect<readonly [string, string], UsageError> => {
  const colon = raw.indexOf(":")
  return colon <= 0
    ? Effect.fail(new UsageError({ message: `--header must look like "Name: value", got ${JSON.stringify(raw)}` }))
    : Effect.succeed([raw.slice(0, colon).trim(), raw.slice(colon + 1).trim()] as const)
}

const checkUrl = (raw: string): Effect.Effect<string, UsageError> =>
  Effect.try({
    try: () => {
      const url = new URL(raw)
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("not http")
      return url.toString()
    },
    catch: () => new UsageError({ message: `not an http(s) URL: ${JSON.stringify(raw)}` })
  })

const tail = Command.make("tail", {
  url: Args.text({ name: "url" }).pipe(Args.withDescription("The SSE endpoint")),
  session: Options.text("session").pipe(
    Options.withDefault("default"),
    Options.withDescription("Session name: the key of the stored cursor (default: default)")
  ),
  store: Options.text("store").pipe(
    Options.withDefault(SqliteCursorStore.defaultFilename),
    Options.withDescription(`SQLite file holding cursors (default: ${SqliteCursorStore.defaultFilename})`)
  ),
  pg: Options.text("pg").pipe(
    Options.optional,
    Options.withDescription("PostgreSQL URL: store cursors there instead of in --store (default: none)")
  ),
  header: Options.text("header").pipe(
    Options.withAlias("H"),
    Options.repeated,
    Options.withDescription("Request header \"Name: value\", repeatable (default: none)")
  ),
  method: Options.text("method").pipe(
    Options.withDefault("GET"),
    Options.withDescription(
      "Request method (default: GET). A stream of a method other than GET or HEAD is never sent twice: " +
        "it ends when the server closes it, and a cut fails with its resume point unless --resume-with says how to resume"
    )
  ),
  data: Options.text("data").pipe(
    Options.optional,
    Options.withDescription(
      "Request body, with --method POST (default: none). Sent as the Content-Type given with -H, " +
        "else application/json when it parses as JSON, else text/plain"
    )
  ),
  resumeWith: Options.choice("resume-with", ["get"]).pipe(
    Options.optional,
    Options.withDescription(
      "How to resume a cut stream of another method: get sends a GET to the same URL with the same headers " +
        "and Last-Event-ID, as MCP servers expect (default: none, a cut fails)"
    )
  ),
  format: Options.choice("format", ["json", "data"]).pipe(
    Options.withDefault("json" as const),
    Options.withDescription(
      "How each event is printed on stdout: json, one {\"id\",\"event\",\"data\"} object per line; " +
        "data, the event's data alone, for jq on JSON messages (default: json)"
    )
  ),
  wait: Options.boolean("wait").pipe(
    Options.withDescription(
      "While another process holds the session (same --session and store), wait for it to stop instead of " +
        "exiting with code 8 (default: off)"
    )
  ),
  into: Options.text("into").pipe(
    Options.optional,
    Options.withDescription(
      "Also append each event (session_id, event_id, event, data, received_at) to this table of the store's " +
        "database, created if missing, in the transaction that stores the cursor: exactly once, even across a " +
        "kill (default: none)"
    )
  ),
  maxEvents: Options.integer("max-events").pipe(
    Options.optional,
    Options.withDescription("Stop after N new events (default: never)")
  ),
  idleTimeout: Options.integer("idle-timeout").pipe(
    Options.optional,
    Options.withDescription("Reconnect when no byte arrives for S seconds (default: SSE_IDLE_TIMEOUT, else 60)")
  )
}, (args) =>
  Effect.gen(function*() {
    const url = yield* checkUrl(args.url)
    const headers = Object.fromEntries(yield* Effect.forEach(args.header, parseHeader))
    if (Option.isSome(args.maxEvents) && args.maxEvents.value < 1) {
      return yield* new UsageError({ message: "--max-events must be at least 1" })
    }
    // fetch refuses a body on GET/HEAD; unchecked, that surfaces as a transport error
    // retried until the budget runs out (exit 5), not as the usage mistake it is.
    if (Option.isSome(args.data) && ["GET", "HEAD"].includes(args.method.toUpperCase())) {
      return yield* new UsageError({ message: `--data needs a method that takes a body (e.g. --method POST), not ${args.method}` })
    }
    if (Option.isSome(args.into) && !Tail.isTableName(args.into.value)) {
      return yield* new UsageError({
        message: `--into must be a table name (letters, digits, _; not sse_resume_*), got ${JSON.stringify(args.into.value)}`
      })
    }
    if (Option.isSome(args.idleTimeout) && args.idleTimeout.value < 1) {
      return yield* new UsageError({ message: "--idle-timeout must be at least 1 second" })
    }
    const report = statusPrinter()
    const summary = yield* Tail.run({
      url,
      session: args.session,
      store: Option.match(args.pg, {
        onNone: () => ({ _tag: "sqlite", filename: args.store }) as const,
        onSome: (url) => ({ _tag: "pg", url }) as const
      }),
      method: args.method,
      headers,
      body: Option.getOrUndefined(args.data),
      format: args.format,
      client: Option.match(args.resumeWith, { onNone: () => ({}), onSome: (resumeWith) => ({ resumeWith }) }),
      maxEvents: Option.getOrUndefined(args.maxEvents),
      wait: args.wait,
      into: Option.getOrUndefined(args.into),
      idleTimeout: Option.getOrUndefined(Option.map(args.idleTimeout, Duration.seconds)),
      write: stdoutWriter(),
      report
    })
    yield* report({ _tag: "Stopped", summary })
  })).pipe(Command.withDescription(
  "Prints each new event of an SSE endpoint once on stdout (status on stderr), resuming after the session's " +
    "stored cursor. Client settings come from SSE_* environment variables (SSE_MAX_ATTEMPTS, SSE_INITIAL_DELAY, " +
    "SSE_MAX_DELAY, SSE_MAX_EVENT_BYTES, SSE_FLUSH_INTERVAL, …; see the README)"
))

const serveDemo = Command.make("serve-demo", {
  port: Options.integer("port").pipe(Options.withDefault(8080), Options.withDescription("Port on 127.0.0.1 (default: 8080)")),
  dropEvery: Options.integer("drop-every").pipe(
    Options.withDefault(0),
    Options.withDescription("Cut each connection after N events (default: 0, never)")
  ),
  rate: Options.integer("rate").pipe(Options.withDefault(100), Options.withDescription("Events per second (default: 100)")),
  ui: Options.boolean("ui").pipe(
    Options.withDescription(
      "Also serve the demo page on / : it tails the stream in the browser, resuming after a reload (default: off)"
    )
  )
}, (args) =>
  Effect.gen(function*() {
    const pageScript = args.ui ? yield* DemoPage.load(import.meta.url) : undefined
    const server = yield* DemoServer.make({
      port: args.port,
      dropEvery: args.dropEvery,
      eventsPerSecond: args.rate,
      pageScript
    })
    yield* Effect.sync(() => {
      process.stderr.write(`serving numbered events on ${server.url} (Ctrl-C stops)\n`)
      if (pageScript !== undefined) process.stderr.write(`demo page: open ${server.origin}/ in a browser\n`)
    })
    return yield* Effect.never
  }).pipe(Effect.scoped))

export const command = Command.make("sse-resume").pipe(Command.withSubcommands([tail, serveDemo]))

/** The CLI's program for `argv` (as `process.argv`), with everything it needs but the platform. */
export const main = (argv: ReadonlyArray<string>) =>
  Command.run(command, { name: "sse-resume", version: "0.1.0" })(argv).pipe(
    // A bad SSE_TELEMETRY / SSE_METRIC_INTERVAL is a usage error (exit 2) like any SSE_* value.
    Effect.provide(Layer.merge(
      FetchHttpClient.layer,
      Layer.mapError(Telemetry.layerConfig, (cause) => new Tail.InvalidConfig({ cause }))
    ))
  )
