import { describe, expect, it } from "@effect/vitest"
import { PendingTable } from "../src/session/internal/pendingTable.js"
import type { PersistenceRequest } from "../src/session/PersistenceWorker.js"

const settings = { batchSize: 3, flushIntervalMillis: 100, maxSaveAttempts: 3, retryBaseMillis: 100 }

const request = (sessionId: string, seq: number, recordedAt = 0): PersistenceRequest => ({
  sessionId,
  eventId: `e${seq}`,
  seq,
  recordedAt
})

const written = (batch: ReadonlyArray<{ readonly sessionId: string; readonly seq: number }>) =>
  batch.map((c) => `${c.sessionId}@${c.seq}`).sort()

describe("PendingTable", () => {
  it("a later owner's cursor replaces the held one whatever its seq, and carries its epoch and notice", () => {
    const table = new PendingTable(settings)
    const older = () => undefined
    const newer = () => undefined
    table.absorb({ ...request("a", 50), epoch: 1, onFenced: older }, 0)
    table.absorb({ ...request("a", 12), epoch: 2, onFenced: newer }, 1)
    // The old owner's late, higher-seq cursor does not come back.
    table.absorb({ ...request("a", 60), epoch: 1, onFenced: older }, 2)
    expect(table.due(200).map((c) => [c.seq, c.epoch])).toEqual([[12, 2]])
    expect(table.onFenced("a")).toBe(newer)
  })

  it("keeps the newest cursor per session, whatever order requests arrive in", () => {
    const table = new PendingTable(settings)
    expect(table.absorb(request("a", 2, 20), 20)).toBe(false)
    expect(table.absorb(request("a", 3, 30), 21)).toBe(true)
    // A late, older request (a parked one) neither replaces the newer cursor...
    expect(table.absorb(request("a", 1, 10), 22)).toBe(true)
    expect(table.absorb(request("b", 1, 15), 23)).toBe(false)
    expect(table.size).toBe(2)
    const batch = table.due(200)
    expect(written(batch)).toEqual(["a@3", "b@1"])
    expect(batch.every((c) => c.updatedAt === 200)).toBe(true)
    // ...nor is forgotten: staleness runs from the oldest event a cursor covers.
    expect(table.succeeded(batch, 250).sort()).toEqual([235, 240])
    expect(table.size).toBe(0)
  })

  it("reads the de-duplication window at write time, cut at the cursor's event", () => {
    const table = new PendingTable(settings)
    const cuts: Array<string> = []
    const window = (ids: ReadonlyArray<string>) => (upTo: string) => {
      cuts.push(upTo)
      return ids
    }
    table.absorb({ ...request("a", 1), recentIds: window(["e1"]) }, 0)
    table.absorb({ ...request("a", 2), recentIds: window(["e1", "e2"]) }, 0)
    expect(cuts).toEqual([])
    expect(table.due(100)[0]!.recentIds).toEqual(["e1", "e2"])
    expect(cuts).toEqual(["e2"])
  })

  it("writes untried cursors once the oldest has waited flushInterval", () => {
    const table = new PendingTable(settings)
    expect(table.nextWrite()).toBeUndefined()
    table.absorb(request("a", 1), 10)
    table.absorb(request("b", 1), 60)
    expect(table.nextWrite()).toBe(110)
    table.succeeded(table.due(110), 110)
    expect(table.nextWrite()).toBeUndefined()
    table.absorb(request("c", 1), 500)
    expect(table.nextWrite()).toBe(600)
  })

  it("writes at once when batchSize sessions wait, a batch at most batchSize, the rest due at once", () => {
    const table = new PendingTable(settings)
    table.absorb(request("a", 1), 0)
    table.absorb(request("b", 1), 0)
    expect(table.nextWrite()).toBe(100)
    for (const s of ["c", "d", "e"]) table.absorb(request(s, 1), 0)
    expect(table.nextWrite()).toBeLessThanOrEqual(0)
    const first = table.due(1)
    expect(first).toHaveLength(3)
    table.succeeded(first, 1)
    // The two left keep the first flush time: a write does not push it back.
    expect(table.nextWrite()).toBe(100)
  })

  it("while draining, untried cursors are due at once", () => {
    const table = new PendingTable(settings)
    table.absorb(request("a", 1), 0)
    expect(table.nextWrite(true)).toBeLessThanOrEqual(0)
  })

  it("backs a failed cursor off: doubling from half retryBase with jitter, capped at 100×", () => {
    const table = new PendingTable({ ...settings, maxSaveAttempts: 100 })
    table.absorb(request("a", 1), 0)
    let now = 100
    const delays: Array<number> = []
    for (let attempt = 1; attempt <= 9; attempt++) {
      const batch = table.due(now)
      expect(written(batch)).toEqual(["a@1"])
      const { retryAt } = table.failed(batch, now, 0)
      expect(table.nextWrite()).toBe(retryAt)
      // Not written again before its retry time, even when draining.
      expect(table.due(retryAt - 1)).toEqual([])
      expect(table.nextWrite(true)).toBe(retryAt)
      delays.push(retryAt - now)
      now = retryAt
    }
    expect(delays).toEqual([50, 100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000])
    // The other end of the jitter: just under the full delay.
    const { retryAt } = table.failed(table.due(now), now, 0.999)
    expect(retryAt - now).toBe(9_995)
  })

  it("counts a cursor as given up at maxSaveAttempts, keeps it, and starts its backoff over", () => {
    const table = new PendingTable(settings)
    table.absorb(request("a", 1), 0)
    let now = 100
    const results = []
    for (let attempt = 1; attempt <= 4; attempt++) {
      const result = table.failed(table.due(now), now, 0)
      results.push({ gaveUp: result.gaveUp, firstFailure: result.firstFailure, delay: result.retryAt - now })
      now = result.retryAt
    }
    expect(results).toEqual([
      { gaveUp: 0, firstFailure: true, delay: 50 },
      { gaveUp: 0, firstFailure: false, delay: 100 },
      { gaveUp: 1, firstFailure: false, delay: 200 },
      { gaveUp: 0, firstFailure: true, delay: 50 }
    ])
    expect(table.size).toBe(1)
  })

  it("a newer cursor of a failed session takes over its retry time, and the retry writes the newest", () => {
    const table = new PendingTable({ ...settings, batchSize: 10 })
    table.absorb(request("a", 1), 0)
    table.absorb(request("b", 1), 0)
    const { retryAt } = table.failed(table.due(100), 100, 0)
    expect(retryAt).toBe(150)
    table.absorb(request("a", 2), 120)
    table.absorb(request("c", 1), 120)
    // c is untried (flush at 220); a keeps waiting for its retry at 150.
    expect(table.nextWrite()).toBe(150)
    expect(written(table.due(149))).toEqual(["c@1"])
    expect(written(table.due(150))).toEqual(["a@2", "b@1", "c@1"])
  })

  it("a success keeps the schedule of what is left", () => {
    const table = new PendingTable(settings)
    table.absorb(request("a", 1), 0)
    table.failed(table.due(100), 100, 0)
    table.absorb(request("b", 1), 110)
    const untried = table.due(120)
    expect(written(untried)).toEqual(["b@1"])
    table.succeeded(untried, 125)
    expect(table.size).toBe(1)
    expect(table.nextWrite()).toBe(150)
  })
})
