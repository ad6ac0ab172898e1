/**
 * `sse-resume tail`: the command line checked, then `Tail.run` with the chosen
 * store, stdout, the status printer, and the telemetry SDK only when asked for.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Cli from "../../Cli.js"
import { usageError, type UsageError } from "../../Cli.js"
import * as EventTable from "../../../session/EventTable.js"
import type * as SseClient from "../../../client/SseClient.js"
import * as Tail from "../Tail.js"
import { causeOf } from "./cause.js"
import { statusPrinter } from "./status.js"
import { stdoutWriter } from "./stdout.js"
import * as Store from "./store.js"

/** The retry budget ran out: names the URL and why the last attempt failed. */
export class Unreachable extends Data.TaggedError("Unreachable")<{
  readonly url: string
  readonly attempts: number
  readonly reason: SseClient.ReconnectReason
  /** The last failure's cause in words (`connect ECONNREFUSED 127.0.0.1:1`), if the transport gave one. */
  readonly cause: string | undefined
  readonly status: number | undefined
}> {
  override get message() {
    const why = this.cause ?? (this.status === undefined ? this.reason : `HTTP ${this.status}`)
    return `cannot reach ${this.url}: ${why} (gave up after ${this.attempts} attempts)`
  }
}

export type TailCommandError = Tail.TailError | Unreachable

/** Where `--help` says to look for a failure of `tail`'s arguments. */
const usage = (reason: string) => usageError(reason, "tail")

const checkUrl = (raw: string): Effect.Effect<string, UsageError> =>
  URL.canParse(raw) && ["http:", "https:"].includes(new URL(raw).protocol)
    ? Effect.succeed(new URL(raw).toString())
    : Effect.fail(usage(`not an http(s) URL: ${JSON.stringify(raw)}`))

const parseHeader = (raw: string): Effect.Effect<readonly [string, string], UsageError> => {
  const colon = raw.indexOf(":")
  return colon <= 0
    ? Effect.fail(usage(`--header must look like "Name: value", got ${JSON.stringify(raw)}`))
    : Effect.succeed([raw.slice(0, colon).trim(), raw.slice(colon + 1).trim()] as const)
}

/** The checks no option type makes: each a usage error (exit 2) before anything is opened. */
const check = (args: Cli.TailArguments) =>
  Effect.gen(function*() {
    const { options } = args
    const url = yield* checkUrl(args.argument!)
    const headers = Object.fromEntries(yield* Effect.forEach(options.header, parseHeader))
    // fetch refuses a body on GET/HEAD; unchecked, that surfaces as a transport error
    // retried until the budget runs out (exit 5), not as the usage mistake it is.
    if (options.data !== undefined && ["GET", "HEAD"].includes(options.method.toUpperCase())) {
      return yield* usage(`--data needs a method that takes a body (e.g. --method POST), not ${options.method}`)
    }
    if (options.into !== undefined && !EventTable.isTableName(options.into)) {
      return yield* usage(`--into must be a table name (letters, digits, _; not sse_resume_*), got ${JSON.stringify(options.into)}`)
    }
    if (options.pg !== undefined && !Store.isPgUrl(options.pg)) {
      return yield* usage("--pg must be a PostgreSQL URL (postgres://user@host:port/database)")
    }
    const store: Store.StoreChoice = options.pg === undefined
      ? { _tag: "sqlite", filename: options.store }
      : { _tag: "pg", url: options.pg }
    return { url, headers, store }
  })

/**
 * The HTTP client, keeping the last transport failure's cause for the status line
 * of the reconnect it causes (the client's status says "transport", not why).
 */
const recordingClient = (record: (cause: string | undefined) => void) =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.map(HttpClient.HttpClient, HttpClient.tapError((error) => Effect.sync(() => record(causeOf(error)))))
  ).pipe(Layer.provide(FetchHttpClient.layer))

// The variables of Telemetry.config: when none is set, telemetry is off and its SDK is not loaded.
const telemetryVariables = ["OTEL_EXPORTER_OTLP_ENDPOINT", "SSE_TELEMETRY", "SSE_METRIC_INTERVAL", "OTEL_SERVICE_NAME"]

/** The telemetry SDK when the environment asks for it; a bad value is a usage error (exit 2) like any SSE_* one. */
const telemetry: Layer.Layer<never, Tail.InvalidConfig> = Layer.unwrapEffect(
  telemetryVariables.some((name) => process.env[name] !== undefined)
    ? Effect.promise(() => import("../../../Telemetry.js")).pipe(
      Effect.map((Telemetry) =>
        Layer.mapError(Telemetry.layerConfig, (cause) => new Tail.InvalidConfig({ cause }))
      )
    )
    : Effect.succeed(Layer.empty)
)

/** The last attempt of an exhausted budget, said with the URL and its cause. */
const unreachable = (url: string, lastCause: string | undefined) => (error: SseClient.SseRetriesExhausted) =>
  new Unreachable({
    url,
    attempts: error.attempts,
    reason: error.last.reason,
    // The client's own words when it has them (`lastCause`), else the cause chain, else the last recorded one.
    cause: (error as { readonly lastCause?: string }).lastCause ?? causeOf(error.last.cause) ?? lastCause,
    status: error.last.status
  })

export const run = (args: Cli.TailArguments): Effect.Effect<void, UsageError | TailCommandError> =>
  Effect.gen(function*() {
    const { headers, store, url } = yield* check(args)
    const { options } = args
    let lastCause: string | undefined
    const report = statusPrinter(url, () => lastCause)
    const summary = yield* Tail.run({
      url,
      session: options.session,
      store: Store.layer(store),
      storeName: Store.storeName(store),
      method: options.method,
      headers,
      body: options.data,
      format: options.format as Tail.Format,
      client: {
        ...(options.resumeWith === undefined ? {} : { resumeWith: "get" as const }),
        // A server refused at the very first try fails at once, as curl does, instead of
        // after the whole retry budget; once connected, the budget applies as usual.
        connectAttempts: 1
      },
      maxEvents: options.maxEvents,
      wait: options.wait,
      into: options.into,
      idleTimeout: options.idleTimeout === undefined ? undefined : Duration.seconds(options.idleTimeout),
      write: stdoutWriter(),
      report
    }).pipe(
      Effect.catchTag("SseRetriesExhausted", (error) => Effect.fail(unreachable(url, lastCause)(error))),
      Effect.provide(Layer.merge(recordingClient((cause) => void (lastCause = cause)), telemetry))
    )
    yield* report({ _tag: "Stopped", summary })
  })
