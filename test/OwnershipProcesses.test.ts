/**
 * Ownership across real processes (test/support/ownerChild.ts): two processes on one
 * SQLite file, and three instances sharing 8 sessions on PostgreSQL, killed with
 * SIGKILL mid-run. Real time, real files, a real database; the child's lease is
 * 1.5 s (12 s in the group), renewed every 0.4 s, polled every 0.1 s.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, ManagedRuntime, Option } from "effect"
import { CursorStore } from "../src/store/CursorStore.js"
import * as PgCursorStore from "../src/engines/PgCursorStore.js"
import { ownerChildBundle } from "./support/cliBundle.js"
import { notePgSkip, pgUrl, runId } from "./support/stores.js"
import { childStartMillis } from "./support/killable.js"

const child = ownerChildBundle
const claimMillis = 100
/**
 * The group's lease: renewals every 0.4 s then survive an 11 s stall of a loaded
 * machine (with 1.5 s, live instances lost sessions to each other at a load of 20),
 * and a killed owner's sessions, taken at once on this host, must be claimed well
 * before it could end. With 6 s, the spare's claim came 6.8–7.6 s after a kill at a
 * load of 13–17 (its own stall, not a lease waited out); a longer lease costs no time
 * here, since no test path waits one out.
 */
const groupLeaseMillis = 12_000

/** Numbered events per session path, `total` each, one every `tickMillis`, after Last-Event-ID. */
let total = 300
let tickMillis = 2
let server: Server
let url: string
beforeAll(async () => {
  server = createServer((req, res) => {
    const last = req.headers["last-event-id"]
    let next = typeof last === "string" ? Number(last) + 1 : 1
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" })
    const timer = setInterval(() => {
      if (next > total) {
        clearInterval(timer)
        return void res.end()
      }
      res.write(`id: ${next}\ndata: ${next}\n\n`)
      next++
    }, tickMillis)
    res.on("close", () => clearInterval(timer))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

interface Line {
  readonly kind: "claim" | "event"
  readonly session: string
  /** The epoch (claim) or event number. */
  readonly n: number
  /** The claim's resume point (0 for none). */
  readonly from: number
  readonly at: number
}

interface Instance {
  readonly proc: ChildProcess
  readonly lines: Array<Line>
  stderr: string
  killedAt: number | undefined
  readonly exited: Promise<number | null>
  readonly started: Promise<void>
}

const start = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Instance => {
  const proc = spawn(process.execPath, [child, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } })
  const lines: Array<Line> = []
  let out = ""
  let onFirst: () => void = () => {}
  const started = new Promise<void>((resolve) => (onFirst = resolve))
  proc.stdout!.on("data", (data: Buffer) => {
    out += data.toString()
    const parts = out.split("\n")
    out = parts.pop()!
    for (const text of parts) {
      const f = text.split(" ")
      if (f[0] === "claim") lines.push({ kind: "claim", session: f[1]!, n: Number(f[2]), from: f[3] === "-" ? 0 : Number(f[3]), at: Number(f[4]) })
      else lines.push({ kind: "event", session: f[1]!, n: Number(f[2]), from: 0, at: Number(f[3]) })
      if (f[0] === "event") onFirst()
    }
  })
  const instance: Instance = {
    proc,
    lines,
    stderr: "",
    killedAt: undefined,
    started,
    exited: new Promise((resolve) => proc.on("exit", (code) => resolve(code)))
  }
  proc.stderr!.on("data", (data: Buffer) => (instance.stderr += data.toString()))
  return instance
}

const events = (instance: Instance) => instance.lines.filter((l) => l.kind === "event")

describe("two processes on one SQLite file", () => {
  it("the second fails busy at once, or waits and takes over right after the first's stored cursor; never both at once", async () => {
    // Slow enough (9 s for a's 300 events) that b and c start while a still consumes,
    // even where starting a process takes 4–5 s (a 2-core machine under a load of 20).
    total = 100_000
    tickMillis = 30
    const dir = mkdtempSync(join(tmpdir(), "sse-owner-"))
    const db = join(dir, "cursors.db")
    try {
      const a = start(["hold", db, url, "one", "300", "nowait"])
      await a.started
      const busyStarted = Date.now()
      const b = start(["hold", db, url, "one", "300", "nowait"])
      expect(await b.exited).toBe(3)
      expect(b.stderr).toContain(`/${a.proc.pid}`)
      expect(events(b)).toHaveLength(0)
      console.log(`busy answer in ${Date.now() - busyStarted} ms (process start included)`)
      const c = start(["hold", db, url, "one", "200", "wait"])
      expect(await a.exited).toBe(0)
      expect(await c.exited).toBe(0)
      const fromA = events(a)
      const fromC = events(c)
      expect(fromA.map((l) => l.n)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1))
      const claim = c.lines.find((l) => l.kind === "claim")!
      expect(claim.from).toBe(300)
      expect(fromC[0]!.n).toBe(301)
      expect(fromC).toHaveLength(200)
      // Never both: c's first event comes after a's last.
      expect(fromC[0]!.at).toBeGreaterThanOrEqual(fromA[fromA.length - 1]!.at)
      console.log(`takeover after a clean stop: ${claim.at - fromA[fromA.length - 1]!.at} ms from a's last event to c's claim`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 30_000)
})

// A kill -9 and an immediate restart waited out the whole lease: "held by host/314"
// though process 314 was gone. The default owner name lets a store on this host see it.
describe.skipIf(process.platform !== "linux")("a killed owner on this host", () => {
  it("its lease is taken at once by the next process; a live owner still blocks", async () => {
    total = 100_000
    tickMillis = 15
    // A lease far longer than the test: a takeover at all shows it was not waited out.
    const lease = { OWNER_CHILD_LEASE_MS: "120000" }
    const dir = mkdtempSync(join(tmpdir(), "sse-dead-owner-"))
    const db = join(dir, "cursors.db")
    try {
      const a = start(["hold", db, url, "one", "100000", "nowait"], lease)
      await a.started
      const live = start(["hold", db, url, "one", "5", "nowait"], lease)
      expect(await live.exited).toBe(3)
      expect(live.stderr).toContain(`/${a.proc.pid}@`)
      a.proc.kill("SIGKILL")
      await a.exited
      const killedAt = Date.now()
      const restarted = start(["hold", db, url, "one", "5", "nowait"], lease)
      expect(await restarted.exited, restarted.stderr).toBe(0)
      const claim = restarted.lines.find((l) => l.kind === "claim")!
      expect(claim.n).toBe(2)
      expect(events(restarted).length).toBeGreaterThanOrEqual(5)
      console.log(`restart after kill -9 claimed in ${claim.at - killedAt} ms (process start included; lease 120 s)`)
      // A holder named without what shows it dead is waited out, as before.
      const b = start(["hold", db, url, "two", "100000", "nowait"], { ...lease, OWNER_CHILD_OWNER: "elsewhere/1" })
      await b.started
      b.proc.kill("SIGKILL")
      await b.exited
      const waited = start(["hold", db, url, "two", "5", "nowait"], lease)
      expect(await waited.exited).toBe(3)
      expect(waited.stderr).toContain("elsewhere/1")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 90_000)
})

notePgSkip("OwnershipProcesses")
/** The group: two instances own `maxOwned` sessions each, the third is the spare that takes over. */
const groupSessions = 8
const maxOwned = groupSessions / 2
/**
 * No cursor moving for this long fails the group test at once: the longest a session may
 * legitimately stand still is a takeover (asserted below to come within the lease) plus
 * starting a process (`childStartMillis`). Progress, not a total wall-clock guess: under load
 * the 300 events of a session take several times their 6 s, and only a stall is a failure.
 */
const stallMillis = groupLeaseMillis + childStartMillis

describe.skipIf(pgUrl === undefined)("three instances sharing sessions on PostgreSQL", () => {
  it("SIGKILLs: every event handled; repeats only after a killed owner's durable cursor; cursors never back; failover within the lease", async () => {
    total = 300
    tickMillis = 20
    const ids = Array.from({ length: groupSessions }, (_, i) => `${runId}-g${i}`)
    const args = ["group", pgUrl!, url, ids.join(","), String(maxOwned)]
    const env = { OWNER_CHILD_LEASE_MS: String(groupLeaseMillis) }
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
    const instances: Array<Instance> = [start(args, env), start(args, env), start(args, env)]
    const reader = ManagedRuntime.make(PgCursorStore.layer(pgUrl!))
    const cursorOf = (id: string) =>
      reader.runPromise(Effect.flatMap(CursorStore, (s) => s.load(id)).pipe(
        Effect.map(Option.match({ onNone: () => 0, onSome: (c) => Number(c.lastEventId) }))
      ))
    const highest = new Map<string, number>()
    let backwards = 0
    let movedAt = Date.now()
    const watch = async () => {
      for (const id of ids) {
        const n = await cursorOf(id)
        if (n < (highest.get(id) ?? 0)) backwards++
        if (n > (highest.get(id) ?? 0)) movedAt = Date.now()
        highest.set(id, Math.max(n, highest.get(id) ?? 0))
      }
    }
    while (instances.filter((i) => events(i).length > 0).length < 2) await sleep(50)
    const killed: Array<Instance> = []
    for (let k = 0; k < 3; k++) {
      await sleep(1_500)
      await watch()
      const owners = instances.filter((i) => i.killedAt === undefined && events(i).length > 0)
      const victim = owners[k % owners.length]!
      victim.killedAt = Date.now()
      victim.proc.kill("SIGKILL")
      killed.push(victim)
      instances.push(start(args, env))
    }
    // Every event once (6 s a session at 20 ms a tick), slowed by kills and a loaded machine:
    // waiting as long as some cursor keeps moving.
    const started = Date.now()
    while (Date.now() - movedAt < stallMillis) {
      await watch()
      if (ids.every((id) => highest.get(id) === total)) break
      await sleep(200)
    }
    for (const i of instances) if (i.killedAt === undefined) i.proc.kill("SIGKILL")
    await Promise.all(instances.map((i) => i.exited))
    await reader.dispose()
    expect(backwards).toBe(0)
    expect(ids.map((id) => highest.get(id))).toEqual(ids.map(() => total))

    let failover = 0
    for (const id of ids) {
      // Each claim with the events handled under it, in epoch order.
      const claims = instances.flatMap((inst) => {
        const mine: Array<{ inst: Instance; epoch: number; from: number; at: number; events: Array<Line> }> = []
        for (const line of inst.lines) {
          if (line.session !== id) continue
          if (line.kind === "claim") mine.push({ inst, epoch: line.n, from: line.from, at: line.at, events: [] })
          else mine[mine.length - 1]!.events.push(line)
        }
        return mine
      }).sort((x, y) => x.epoch - y.epoch)
      const seen = new Set<number>()
      for (let c = 0; c < claims.length; c++) {
        const claim = claims[c]!
        claim.events.forEach((e, i) => expect(e.n, `${id} claim ${claim.epoch}`).toBe(claim.from + 1 + i))
        for (const e of claim.events) seen.add(e.n)
        const next = claims[c + 1]
        if (next === undefined) continue
        expect(next.epoch).toBeGreaterThan(claim.epoch)
        expect(next.from).toBeGreaterThanOrEqual(claim.from)
        const last = claim.events[claim.events.length - 1]?.n ?? claim.from
        const wasKilled = claim.inst.killedAt !== undefined && claim.inst.killedAt <= next.at
        // Only a killed owner's events after its durable cursor are handled again.
        if (!wasKilled) expect(next.from, `${id} after a live owner`).toBeGreaterThanOrEqual(last)
        else {
          // Never both at once: the next owner claims after the kill, and within the failover bound.
          expect(next.at).toBeGreaterThan(claim.inst.killedAt!)
          const took = next.at - claim.inst.killedAt!
          failover = Math.max(failover, took)
          // The killed owners ran on this host, so their leases are taken at once: the
          // next claim comes before the lease could have ended (a claim round and a few
          // statements, against the whole lease).
          expect(took, `${id} failover`).toBeLessThan(groupLeaseMillis)
        }
        const lastAt = claim.events[claim.events.length - 1]?.at ?? claim.at
        if (next.events.length > 0) expect(next.events[0]!.at).toBeGreaterThanOrEqual(lastAt)
      }
      for (let n = 1; n <= total; n++) expect(seen.has(n), `${id} event ${n}`).toBe(true)
    }
    const handled = instances.reduce((sum, i) => sum + events(i).length, 0)
    console.log(`group: ${Date.now() - started} ms to the end after the kills; ${killed.length} SIGKILLs, ${handled} handlings of ${ids.length * total} events, longest failover ${failover} ms (lease ${groupLeaseMillis} ms, claim every ${claimMillis} ms)`)
  // A backstop only: the stall bound above fails a stuck run first. At a load of 20 the
  // 20-session version moved at a quarter of its nominal speed; this allows a tenth.
  }, 240_000)
})
