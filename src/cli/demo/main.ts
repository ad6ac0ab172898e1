/**
 * `npm start`: the whole promise in one run, on embedded defaults. A local demo
 * server that drops connections is tailed as session "demo" with its cursor in
 * SQLite under ./.sse-resume/; run it again and it resumes after the stored cursor.
 */
import { FetchHttpClient } from "@effect/platform"
import { Config, Effect, Option } from "effect"
import { appendFileSync, mkdirSync } from "node:fs"
import { positiveInt } from "../../internal/settings.js"
import { CursorTransactions } from "../../store/CursorStore.js"
import * as SqliteCursorStore from "../../engines/SqliteCursorStore.js"
import * as DemoServer from "./DemoServer.js"
import * as Tail from "../commands/Tail.js"
import { statusPrinter } from "../commands/tail/status.js"
import { runMain } from "../Runtime.js"

const settings = Config.all({
  dir: Config.withDefault(Config.string("SSE_DEMO_DIR"), "./.sse-resume").pipe(
    Config.withDescription("Directory of the demo's SQLite store and event log")
  ),
  events: positiveInt("SSE_DEMO_EVENTS", 2_000, "Events the demo prints before it stops"),
  dropEvery: Config.withDefault(Config.integer("SSE_DEMO_DROP_EVERY"), 300).pipe(
    Config.withDescription("The demo server cuts each connection after this many events (0: never)")
  ),
  killAfter: Config.option(Config.integer("SSE_DEMO_KILL_AFTER")).pipe(
    Config.withDescription("Kill the demo with SIGKILL after this many events, to show nothing is lost or repeated")
  )
})

const table = "demo_events"

/** The demo table's account: every id from 1 to the last, each exactly once. */
const checkTable = (filename: string) =>
  Effect.gen(function*() {
    const { sql } = yield* CursorTransactions
    const [row] = yield* sql<{ rows: number | string; ids: number | string; last: number | string | null }>`
      SELECT COUNT(*) AS rows, COUNT(DISTINCT event_id) AS ids, MAX(CAST(event_id AS INTEGER)) AS last
      FROM ${sql(table)} WHERE session_id = 'demo'`
    const rows = Number(row!.rows)
    const last = Number(row!.last ?? 0)
    return { rows, last, exactlyOnce: rows === last && Number(row!.ids) === last }
  }).pipe(Effect.provide(SqliteCursorStore.layer(filename)), Effect.orDie)

const program = Effect.gen(function*() {
  const { dir, dropEvery, events, killAfter } = yield* Effect.mapError(settings, (cause) => new Tail.InvalidConfig({ cause }))
  mkdirSync(dir, { recursive: true })
  const log = `${dir}/demo-events.jsonl`

  const server = yield* DemoServer.make({ dropEvery, eventsPerSecond: 2_000, retryMillis: 100 })
  process.stderr.write(`demo server on ${server.url}, dropping every connection after ${dropEvery} events\n`)

  const ids: Array<number> = []
  const summary = yield* Tail.run({
    url: server.url,
    session: "demo",
    // The server listens on a free port each run; it is the same stream of numbered events.
    stream: "GET http://127.0.0.1/events",
    store: SqliteCursorStore.layer(`${dir}/demo.db`),
    storeName: `${dir}/demo.db`,
    into: table,
    // After a kill, the dead run's lease lapses by itself (SSE_LEASE_TTL): wait for it.
    wait: true,
    maxEvents: events,
    client: { initialDelay: "50 millis", maxDelay: "1 second" },
    write: (lines) =>
      Effect.sync(() => {
        for (const line of lines.split("\n")) if (line !== "") ids.push(Number(JSON.parse(line).id))
        appendFileSync(log, lines)
        // A hard kill mid-run: no cursor write on the way out, no chance to clean up.
        if (Option.isSome(killAfter) && ids.length >= killAfter.value) process.kill(process.pid, "SIGKILL")
      }),
    report: statusPrinter(server.url, () => undefined)
  })

  const resumedAfter = Option.match(summary.resumedFrom, { onNone: () => 0, onSome: Number })
  const exactlyOnce = ids.every((id, i) => id === resumedAfter + 1 + i)
  const stored = yield* checkTable(`${dir}/demo.db`)
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
      `  table ${table}       ${stored.rows} rows, ids 1 to ${stored.last}: ` +
      `${stored.exactlyOnce ? "every event exactly once" : "events LOST OR REPEATED"} (across every run so far)`,
      "",
      "Run `npm start` again: it resumes after the stored cursor. Kill it mid-run " +
      "(SSE_DEMO_KILL_AFTER=500 npm start does, with SIGKILL), run it again, and the table still holds every event once.",
      ""
    ].join("\n")
  )
  if (!exactlyOnce || !stored.exactlyOnce) return yield* Effect.dieMessage("events were lost or repeated")
}).pipe(Effect.scoped, Effect.provide(FetchHttpClient.layer))

runMain(program)
