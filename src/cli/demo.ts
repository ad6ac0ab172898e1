/**
 * `npm start`: the whole promise in one run, on embedded defaults. A local demo
 * server that drops connections is tailed as session "demo" with its cursor in
 * SQLite under ./.sse-resume/; run it again and it resumes after the stored cursor.
 */
import { FetchHttpClient } from "@effect/platform"
import { Config, Effect, Option } from "effect"
import { appendFileSync, mkdirSync } from "node:fs"
import { positiveInt } from "../internal/settings.js"
import * as Cli from "./Cli.js"
import * as DemoServer from "./DemoServer.js"
import * as Tail from "./Tail.js"

const settings = Config.all({
  dir: Config.withDefault(Config.string("SSE_DEMO_DIR"), "./.sse-resume").pipe(
    Config.withDescription("Directory of the demo's SQLite store and event log")
  ),
  events: positiveInt("SSE_DEMO_EVENTS", 2_000, "Events the demo prints before it stops"),
  dropEvery: Config.withDefault(Config.integer("SSE_DEMO_DROP_EVERY"), 300).pipe(
    Config.withDescription("The demo server cuts each connection after this many events (0: never)")
  )
})

const program = Effect.gen(function*() {
  const { dir, dropEvery, events } = yield* Effect.mapError(settings, (cause) => new Tail.InvalidConfig({ cause }))
  mkdirSync(dir, { recursive: true })
  const log = `${dir}/demo-events.jsonl`

  const server = yield* DemoServer.make({ dropEvery, eventsPerSecond: 2_000, retryMillis: 100 })
  process.stderr.write(`demo server on ${server.url}, dropping every connection after ${dropEvery} events\n`)

  const ids: Array<number> = []
  const summary = yield* Tail.run({
    url: server.url,
    session: "demo",
    store: { _tag: "sqlite", filename: `${dir}/demo.db` },
    maxEvents: events,
    client: { initialDelay: "50 millis", maxDelay: "1 second" },
    write: (lines) =>
      Effect.sync(() => {
        for (const line of lines.split("\n")) if (line !== "") ids.push(Number(JSON.parse(line).id))
        appendFileSync(log, lines)
      }),
    report: Cli.statusPrinter()
  })

  const resumedAfter = Option.match(summary.resumedFrom, { onNone: () => 0, onSome: Number })
  const exactlyOnce = ids.every((id, i) => id === resumedAfter + 1 + i)
  const cursor = Option.match(summary.storedCursor, {
    onNone: () => "none",
    onSome: (c) => `${c.lastEventId} (seq ${c.seq})`
  })
  process.stdout.write(
    [
      "",
      `session "demo": ${
        Option.isSome(summary.resumedFrom) ? `resumed after stored cursor ${resumedAfter}` : "started fresh"
      }`,
      `  events delivered        ${summary.delivered} (ids ${ids[0]} to ${ids.at(-1)}, appended to ${log})`,
      `  exactly once, in order  ${exactlyOnce ? "yes" : "NO"}`,
      `  duplicates dropped      ${summary.duplicatesDropped} (replayed by the server after reconnects)`,
      `  reconnects              ${summary.reconnects}`,
      `  backpressure timeouts   ${summary.backpressureTimeouts}`,
      `  stored cursor           ${cursor} in ${dir}/demo.db`,
      "",
      "Run `npm start` again: it resumes after the stored cursor.",
      ""
    ].join("\n")
  )
  if (!exactlyOnce) return yield* Effect.dieMessage("events were lost or repeated")
}).pipe(Effect.scoped, Effect.provide(FetchHttpClient.layer))

Cli.runMain(program)
