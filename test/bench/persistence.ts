/**
 * Durable cursors under load, side by side in one run.
 *
 *   npx tsx test/bench/persistence.ts
 *
 * Events go tracker → PersistenceWorker → SQLite file (WAL), through
 * `SessionManager` sessions, with 1, 1,000 and 10,000 sessions; each session gets
 * its events in chunks of `chunk` (one `recordAll` per chunk, like a network read).
 * Events/s runs until the last event is recorded and durable; median of 3 rounds
 * after a warm-up. "Writes" are
 * `saveAll` calls (transactions), "rows" the cursors they carried. Staleness is the
 * `cursor_staleness` histogram of this run (per written cursor, from its oldest
 * covered event to the commit), so p50/p99 are bucket upper bounds.
 *
 * Beside it: a naive worker that writes one cursor per event (the naive shape,
 * without the drop), on the same tracker and store, 1,000 sessions.
 *
 * Heap per idle session is measured on the compiled build by idle-heap.mjs: under
 * tsx, esbuild's keepNames gives every closure a `name`, which overstates it.
 */
import { Context, Duration, Effect, Layer, Metric, Queue } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Backpressure from "../../src/client/Backpressure.js"
import * as CursorStore from "../../src/store/CursorStore.js"
import * as SqliteCursorStore from "../../src/engines/SqliteCursorStore.js"
import * as EventTracker from "../../src/client/EventTracker.js"
import * as PersistenceWorker from "../../src/session/PersistenceWorker.js"
import * as SessionManager from "../../src/session/SessionManager.js"
import { SseEvent } from "../../src/wire/SseEvent.js"

const chunk = 20
const rounds = 3
const maxTracked = 100
const dir = mkdtempSync(join(tmpdir(), "sse-bench-"))
let files = 0

/** Events 1..n, shared by all sessions (ids need only be unique within a session). */
const makeEvents = (n: number) => Array.from({ length: n }, (_, i) => new SseEvent({ id: String(i + 1), data: "x" }))

/** The real SQLite store, counting its saveAll calls and rows. */
const countingStore = (counts: { writes: number; rows: number }) =>
  Layer.effect(
    CursorStore.CursorStore,
    Effect.map(CursorStore.CursorStore, (real) =>
      CursorStore.CursorStore.of({
        ...real,
        saveAll: (cursors) =>
          Effect.suspend(() => {
            const batch = Array.from(cursors)
            counts.writes++
            counts.rows += batch.length
            return real.saveAll(batch)
          })
      }))
  ).pipe(Layer.provide(SqliteCursorStore.layer(join(dir, `bench-${files++}.db`))))

const quantile = (before: ReadonlyArray<readonly [number, number]>, after: ReadonlyArray<readonly [number, number]>, q: number) => {
  const counts = after.map(([bound, n], i) => [bound, n - before[i]![1]] as const)
  const total = counts[counts.length - 1]![1]
  if (total === 0) return NaN
  for (const [bound, n] of counts) if (n >= q * total) return bound
  return Infinity
}

interface Result {
  readonly name: string
  readonly sessions: number
  readonly events: number
  readonly seconds: number
  readonly writes: number
  readonly rows: number
  readonly p50?: number
  readonly p99?: number
}

/** Records `perSession` events into each of `sessions` sessions, round-robin by chunk. */
const drive = (trackers: ReadonlyArray<EventTracker.EventTracker<unknown>>, events: ReadonlyArray<SseEvent>) =>
  Effect.gen(function*() {
    for (let from = 0; from < events.length; from += chunk) {
      const slice = events.slice(from, from + chunk)
      for (const tracker of trackers) yield* tracker.recordAll(slice)
    }
  })

const coalescing = (sessions: number, perSession: number) =>
  Effect.gen(function*() {
    const counts = { writes: 0, rows: 0 }
    const events = makeEvents(perSession)
    const before = (yield* Metric.value(PersistenceWorker.cursorStaleness)).buckets
    const seconds = yield* Effect.scoped(Effect.gen(function*() {
      const ctx = yield* Layer.build(
        SessionManager.layer({ maxSessions: sessions, maxTracked }).pipe(
          Layer.provideMerge(PersistenceWorker.layer()),
          Layer.provideMerge(countingStore(counts))
        )
      )
      const manager = Context.get(ctx, SessionManager.SessionManager)
      const worker = Context.get(ctx, PersistenceWorker.PersistenceWorker)
      const opened = yield* Effect.forEach(Array.from({ length: sessions }, (_, i) => `s${i}`), manager.open)
      const started = performance.now()
      yield* drive(opened.map((s) => s.tracker), events)
      // Durable: the worker holds nothing more.
      while (true) {
        const stats = yield* worker.stats
        if (stats.queued + stats.parked + stats.pending === 0) break
        yield* Effect.sleep(Duration.millis(1))
      }
      return (performance.now() - started) / 1000
    }))
    const after = (yield* Metric.value(PersistenceWorker.cursorStaleness)).buckets
    return {
      name: "coalescing worker",
      sessions,
      events: sessions * perSession,
      seconds,
      ...counts,
      p50: quantile(before, after, 0.5),
      p99: quantile(before, after, 0.99)
    } satisfies Result
  })

/** One `saveAll` per event, behind the same bounded queue and tracker callback. */
const naive = (sessions: number, perSession: number) =>
  Effect.scoped(Effect.gen(function*() {
    const counts = { writes: 0, rows: 0 }
    const events = makeEvents(perSession)
    const store = Context.get(yield* Layer.build(countingStore(counts)), CursorStore.CursorStore)
    const queue = yield* Queue.bounded<CursorStore.Cursor>(1_000)
    yield* Effect.forkScoped(Effect.forever(
      Effect.flatMap(Queue.take(queue), (cursor) => Effect.orDie(store.saveAll([cursor])))
    ))
    const trackers = yield* Effect.forEach(Array.from({ length: sessions }, (_, i) => `n${i}`), (sessionId) => {
      let seq = 0
      return EventTracker.make({
        maxTracked,
        onNewEventAsync: (eventId) =>
          Backpressure.offer(queue, { sessionId, lastEventId: eventId, seq: ++seq, updatedAt: Date.now() }, {
            timeout: Duration.seconds(60)
          })
      })
    })
    const started = performance.now()
    yield* drive(trackers, events)
    while ((yield* Queue.size(queue)) > 0) yield* Effect.sleep(Duration.millis(1))
    return {
      name: "naive, one write per event",
      sessions,
      events: sessions * perSession,
      seconds: (performance.now() - started) / 1000,
      ...counts
    } satisfies Result
  }))

/** The round with the median events/s out of `rounds`. */
const median = (scenario: Effect.Effect<Result, unknown>) =>
  Effect.map(Effect.replicateEffect(scenario, rounds), (all) =>
    all.sort((a, b) => a.events / a.seconds - b.events / b.seconds)[Math.floor(rounds / 2)]!)

const fmt = (n: number) => Math.round(n).toLocaleString("en")

const main = Effect.gen(function*() {
  // Warm-up (untimed), so the JIT has settled before the measured rounds.
  yield* coalescing(1_000, 100)
  yield* naive(100, 20)
  const results: Array<Result> = [
    yield* median(coalescing(1, 200_000)),
    yield* median(coalescing(1_000, 400)),
    yield* median(coalescing(10_000, 40)),
    yield* naive(1_000, 20)
  ]
  const naiveRate = results[3]!.events / results[3]!.seconds
  const rows = [
    "| worker | sessions | events | events/s | × naive | writes (saveAll) | events per write | rows | events per row | staleness p50 / p99 |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  ]
  for (const r of results) {
    const rate = r.events / r.seconds
    rows.push(
      `| ${r.name} | ${fmt(r.sessions)} | ${fmt(r.events)} | ${fmt(rate)} | ${(rate / naiveRate).toFixed(1)}× | ${fmt(r.writes)} | ${
        (r.events / r.writes).toFixed(1)
      } | ${fmt(r.rows)} | ${(r.events / r.rows).toFixed(1)} | ${r.p50 === undefined ? "–" : `≤ ${r.p50} ms / ≤ ${r.p99} ms`} |`
    )
  }
  console.log(`Persistence benchmark (SQLite file, WAL; chunks of ${chunk} events; median of ${rounds} rounds; flushInterval 100 ms, batchSize 1,000, maxPending 1,000)\n`)
  console.log(rows.join("\n"))
  const target = results[1]!
  const targetRate = target.events / target.seconds
  console.log(
    `\ntargets, 1,000 sessions: ≥ 200,000 events/s: ${fmt(targetRate)} ${targetRate >= 200_000 ? "ok" : "MISSED"}; ` +
      `p99 staleness < 250 ms: ≤ ${target.p99} ms ${target.p99! < 250 ? "ok" : "MISSED"}; ` +
      `≥ 50× fewer writes than events: ${(target.events / target.writes).toFixed(0)}× ${target.events / target.writes >= 50 ? "ok" : "MISSED"}`
  )
})

Effect.runPromise(main).finally(() => rmSync(dir, { recursive: true, force: true }))
