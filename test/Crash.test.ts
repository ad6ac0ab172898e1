/**
 * Crash safety end to end: a child process tails a loopback SSE server into a
 * SQLite cursor store and is SIGKILLed at random moments, three times, then runs to
 * the end. Real processes, real time, real files.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Option } from "effect"
import * as CursorStore from "../src/store/CursorStore.js"
import * as SqliteCursorStore from "../src/engines/SqliteCursorStore.js"
import { crashChildBundle } from "./support/cliBundle.js"
import { childStartMillis, runKillable, type KilledRun as Run } from "./support/killable.js"

const total = 3_000
const perTick = 5
const tickMillis = 2
const child = crashChildBundle
/** Three random crash points, each checked: a run costs a process start (up to 13 s at a load of 15). */
const kills = 3
const childRuns = kills + 1
/**
 * Each run (two spare, for a child killed before its first event) within its start-up and its
 * part of the work; the last run's part is most of the 3 000 events (~2 s alone).
 */
const testTimeout = (childRuns + 2) * childStartMillis + 30_000

let server: Server
let url: string
const resumedFrom: Array<string | undefined> = []

beforeAll(async () => {
  server = createServer((req, res) => {
    const last = req.headers["last-event-id"]
    resumedFrom.push(typeof last === "string" ? last : undefined)
    let next = typeof last === "string" ? Number(last) + 1 : 1
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" })
    const timer = setInterval(() => {
      let chunk = ""
      for (let i = 0; i < perTick && next <= total; i++, next++) chunk += `id: ${next}\ndata: event ${next}\n\n`
      if (chunk !== "") res.write(chunk)
    }, tickMillis)
    res.on("close", () => clearInterval(timer))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

/** Runs the child; kills it `killAfterMillis` after its first delivered event, if given. */
const runChild = (db: string, killAfterMillis: number | undefined) =>
  runKillable(child, [db, url, "crash-session", String(total)], killAfterMillis)

/** The durable cursor, read through the store from the file the child wrote (the child is gone). */
const durable = (db: string): Promise<number> =>
  Effect.runPromise(
    Effect.flatMap(CursorStore.CursorStore, (store) => store.load("crash-session")).pipe(
      Effect.map(Option.match({ onNone: () => 0, onSome: (cursor) => Number(cursor.lastEventId) })),
      Effect.provide(SqliteCursorStore.layer(db))
    )
  )

describe("crash safety", () => {
  it("three SIGKILLs: every event at least once, in order per run; the cursor never goes back; replays start after it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sse-crash-"))
    const db = join(dir, "state", "cursors.db")
    try {
      const runs: Array<Run> = []
      const cursors: Array<number> = [0]
      for (let attempt = 0; runs.length < childRuns && attempt < childRuns + 2; attempt++) {
        const kill = runs.length < kills ? 30 + Math.floor(Math.random() * 300) : undefined
        const run = await runChild(db, kill)
        const cursor = await durable(db)
        // A child killed before its first write leaves nothing to check; it does not count as a crash run.
        if (run.killed && run.printed.length === 0) continue
        const before = cursors[cursors.length - 1]!
        // In order within the run, and starting right after the durable cursor (the server honours Last-Event-ID).
        expect(run.printed[0]).toBe(before + 1)
        for (let i = 1; i < run.printed.length; i++) expect(run.printed[i]).toBe(run.printed[i - 1]! + 1)
        // The durable cursor never goes back, and never runs ahead of what was delivered.
        expect(cursor).toBeGreaterThanOrEqual(before)
        expect(cursor).toBeLessThanOrEqual(run.printed[run.printed.length - 1]!)
        cursors.push(cursor)
        runs.push(run)
      }
      expect(runs.length).toBe(childRuns)
      expect(runs.slice(0, kills).every((r) => r.killed)).toBe(true)
      expect(runs[kills]!.killed).toBe(false)
      expect(runs[kills]!.printed[runs[kills]!.printed.length - 1]).toBe(total)
      expect(cursors[cursors.length - 1]).toBe(total)
      // Every event at least once.
      const seen = new Set(runs.flatMap((r) => r.printed))
      for (let n = 1; n <= total; n++) expect(seen.has(n)).toBe(true)
      // Repeated only after a durable cursor: each event comes once, plus once more for
      // every killed run that delivered it after the cursor the next run resumed from.
      const lastOf = (run: Run) => run.printed[run.printed.length - 1]!
      const times = new Map<number, number>()
      for (const run of runs) for (const n of run.printed) times.set(n, (times.get(n) ?? 0) + 1)
      for (const [n, count] of times) {
        const replays = runs.slice(0, kills).filter((run, k) => cursors[k + 1]! < n && n <= lastOf(run)).length
        expect(count, `event ${n}`).toBe(1 + replays)
      }
      // And each replay is short: at most what the server sends in a few flush intervals
      // (20 ms) plus the kill's own latency.
      const serverPerMilli = perTick / tickMillis
      for (let k = 0; k < kills; k++) expect(lastOf(runs[k]!) - cursors[k + 1]!).toBeLessThanOrEqual(serverPerMilli * 250)
      // Each restart asked for exactly the stored cursor.
      // (A kill before the first write leaves no cursor: the restart then sends no Last-Event-ID.)
      for (const cursor of cursors.slice(1, childRuns)) expect(resumedFrom).toContain(cursor === 0 ? undefined : String(cursor))
      console.log(`crash runs: delivered ${runs.map((r) => r.printed.length).join(", ")}; durable cursors ${cursors.join(" → ")}; ` +
        `ms to first event ${runs.map((r) => r.startMillis).join(", ")}; ms per run ${runs.map((r) => r.totalMillis).join(", ")}`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, testTimeout)
})
