/**
 * Exactly once across crashes, end to end: a child process tails a chaos server
 * (cuts, replayed overlap, 503s) and inserts each event, keyed by its id, in the
 * transaction that commits the cursor (ExactlyOnce.handle). It is SIGKILLed at
 * random moments three times, then runs to the end. On SQLite and on PostgreSQL.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Layer, Option } from "effect"
import { CursorStore, CursorTransactions } from "../src/store/CursorStore.js"
import * as PgCursorStore from "../src/engines/PgCursorStore.js"
import * as SqliteCursorStore from "../src/engines/SqliteCursorStore.js"
import { exactlyOnceChildBundle } from "./support/cliBundle.js"
import { seeded } from "./support/random.js"
import { notePgSkip, pgUrl, runId } from "./support/stores.js"
import { childStartMillis, runKillable, type KilledRun as Run } from "./support/killable.js"

const total = 3_000
/**
 * The child's lease. Each restart waits for the killed child's lease to expire, and
 * the child renews at a tenth of it: 400 ms was lost under load (a busy 2-core
 * machine stalled the child past it), this leaves 2.7 s of stall.
 */
const leaseMillis = 3_000
/**
 * Three kills: each is a random crash point where the invariant is checked, and a run
 * costs a process start (up to 13 s at a load of 15), so five kills on two engines
 * outgrew any fixed timeout on a loaded machine without checking anything new.
 */
const kills = 3
const childRuns = kills + 1
/**
 * Each run (two spare, for a child killed before its first commit): its start-up, at most a
 * lease waiting for the killed predecessor's, and its part of the work; the last run's part
 * is most of the 3 000 events (~5 s alone, 16 s measured at a load of 15).
 */
const testTimeout = (childRuns + 2) * (childStartMillis + leaseMillis) + 30_000
const perTick = 5
const tickMillis = 2

let server: Server
let url: string
const random = seeded(12)

beforeAll(async () => {
  server = createServer((req, res) => {
    const header = req.headers["last-event-id"]
    const last = typeof header === "string" ? Number(header) : 0
    if (last >= total) return void res.writeHead(204).end()
    if (random() < 0.1) return void res.writeHead(503, { "retry-after": "0" }).end()
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" })
    // Replays a few events before the requested one, and cuts the stream after a while.
    let next = last + 1 - Math.min(last, Math.floor(random() * 4))
    const end = Math.min(total, next + 50 + Math.floor(random() * 400))
    const timer = setInterval(() => {
      let chunk = ""
      for (let i = 0; i < perTick && next <= end; i++, next++) chunk += `id: ${next}\ndata: event ${next}\n\n`
      if (chunk !== "") res.write(chunk)
      if (next > end) res.end()
    }, tickMillis)
    res.on("close", () => clearInterval(timer))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

/** Runs the child; kills it `killAfterMillis` after its first commit, if given. Any other failed exit rejects. */
const runChild = (store: string, session: string, table: string, killAfterMillis: number | undefined) =>
  runKillable(exactlyOnceChildBundle, [store, url, session, table, String(total), String(leaseMillis)], killAfterMillis)

/** The table's ids in order and the stored cursor, read after the child is gone. */
const readBack = (layer: Layer.Layer<CursorStore | CursorTransactions, unknown>, session: string, table: string) =>
  Effect.runPromise(Effect.gen(function*() {
    const { sql } = yield* CursorTransactions
    const rows = yield* sql<{ id: number | string }>`SELECT id FROM ${sql(table)} ORDER BY id`.pipe(
      Effect.catchAll(() => Effect.succeed([]))
    )
    const cursor = yield* Effect.flatMap(CursorStore, (store) => store.load(session))
    return {
      ids: rows.map((row) => Number(row.id)),
      cursor: Option.match(cursor, { onNone: () => 0, onSome: (c) => Number(c.lastEventId) })
    }
  }).pipe(Effect.provide(layer)))

const dropTable = (layer: Layer.Layer<CursorTransactions, unknown>, table: string) =>
  Effect.runPromise(
    Effect.flatMap(CursorTransactions, ({ sql }) => sql`DROP TABLE IF EXISTS ${sql(table)}`).pipe(Effect.provide(layer))
  )

const crashThenFinish = async (store: string, layer: Layer.Layer<CursorStore | CursorTransactions, unknown>) => {
  const session = `once-crash-${runId}`
  const table = `once_crash_${runId.replace(/\W/g, "_")}`
  const runs: Array<Run> = []
  const cursors: Array<number> = []
  try {
    for (let attempt = 0; runs.length < childRuns && attempt < childRuns + 2; attempt++) {
      const kill = runs.length < kills ? 20 + Math.floor(Math.random() * 300) : undefined
      const run = await runChild(store, session, table, kill)
      const { cursor, ids } = await readBack(layer, session, table)
      // At every crash point: each committed event in the table once, ids contiguous
      // from 1, and the cursor exactly at the last row (the primary key refuses a
      // repeat, which would have failed the child).
      expect(ids, `after run ${runs.length + 1}`).toStrictEqual(Array.from({ length: ids.length }, (_, i) => i + 1))
      expect(cursor).toBe(ids.length)
      if (run.killed && run.printed.length === 0) continue
      // What the child reported committed is in the table.
      expect(ids.length).toBeGreaterThanOrEqual(run.printed.at(-1)!)
      cursors.push(cursor)
      runs.push(run)
    }
    expect(runs.length).toBe(childRuns)
    expect(runs.slice(0, kills).every((run) => run.killed)).toBe(true)
    expect(runs[kills]!.killed).toBe(false)
    expect(cursors.at(-1)).toBe(total)
    console.log(`exactly-once crash runs on ${store.startsWith("postgres") ? "PostgreSQL" : "SQLite"}: cursors ${cursors.join(" → ")}; ` +
      `ms to first commit ${runs.map((r) => r.startMillis).join(", ")}; ms per run ${runs.map((r) => r.totalMillis).join(", ")}`)
  } finally {
    await dropTable(layer, table)
  }
}

notePgSkip("ExactlyOnceCrash")

describe("exactly once across crashes", () => {
  it("SQLite: three SIGKILLs, then to the end: every event in the table exactly once, the cursor at the last row", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sse-once-crash-"))
    const db = join(dir, "state", "cursors.db")
    try {
      await crashThenFinish(db, SqliteCursorStore.layer(db))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, testTimeout)

  it.skipIf(pgUrl === undefined)("PostgreSQL: the same", async () => {
    await crashThenFinish(pgUrl!, PgCursorStore.layer(pgUrl!))
  }, testTimeout)
})
