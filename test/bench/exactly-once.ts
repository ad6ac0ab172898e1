/**
 * Exactly-once throughput into SQLite (a WAL file), 1,000 held sessions.
 *
 *   npx tsx test/bench/exactly-once.ts
 *
 * Each session gets its events in chunks of `chunk` (one call per chunk, like a
 * network read), the sessions one after another as a single consumer's stream
 * interleaves them. Three forms, events/s until the last event is durable, median
 * of 3 rounds after a warm-up:
 *   transactional  ExactlyOnce.handle: the handler inserts each event (one multi-row
 *                  INSERT per chunk) and the cursor commits with it, one transaction a chunk
 *   worker         the at-least-once path, no inserts: recordAll on the session's
 *                  tracker, PersistenceWorker batching cursor writes
 *   naive          one transaction per event: insert the event, upsert its cursor
 */
import { Context, Effect, Layer } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as CursorStore from "../../src/store/CursorStore.js"
import * as ExactlyOnce from "../../src/session/ExactlyOnce.js"
import * as PersistenceWorker from "../../src/session/PersistenceWorker.js"
import * as SessionManager from "../../src/session/SessionManager.js"
import * as SqliteCursorStore from "../../src/engines/SqliteCursorStore.js"
import { SseEvent } from "../../src/wire/SseEvent.js"

const sessions = 1_000
const perSession = 200
const chunk = 50
const rounds = 3
const dir = mkdtempSync(join(tmpdir(), "sse-bench-once-"))
let files = 0

const events = Array.from({ length: perSession }, (_, i) => new SseEvent({ id: String(i + 1), data: `event ${i + 1}` }))
const chunks = Array.from({ length: perSession / chunk }, (_, i) => events.slice(i * chunk, (i + 1) * chunk))

/** A fresh store file with a manager, its worker and a table `events`; 1,000 sessions held. */
const setup = Effect.gen(function*() {
  const ctx = yield* Layer.build(
    SessionManager.layer({ maxSessions: sessions }).pipe(
      Layer.provideMerge(PersistenceWorker.layer()),
      Layer.provideMerge(SqliteCursorStore.layer(join(dir, `bench-${files++}.db`)))
    )
  )
  const { sql } = Context.get(ctx, CursorStore.CursorTransactions)
  yield* sql`CREATE TABLE events (session_id TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (session_id, id))`
  const manager = Context.get(ctx, SessionManager.SessionManager)
  const held = yield* Effect.forEach(Array.from({ length: sessions }, (_, i) => `s${i}`), (id) => manager.hold(id))
  return { ctx, sql, manager, held }
})

type Setup = Effect.Effect.Success<typeof setup>

const transactional = ({ ctx, held }: Setup) =>
  Effect.forEach(chunks, (batch) =>
    Effect.forEach(held, (session) =>
      ExactlyOnce.handle(session, batch, (fresh, sql) =>
        sql`INSERT INTO events ${
          sql.insert(fresh.map((event) => ({ session_id: session.sessionId, id: event.id!, data: event.data })))
        }`), { discard: true }), { discard: true }).pipe(Effect.provide(ctx))

/** The worker path ends once every session's cursor is written (`close` flushes what the worker has not). */
const worker = ({ held, manager }: Setup) =>
  Effect.forEach(chunks, (batch) => Effect.forEach(held, (session) => session.tracker.recordAll(batch), { discard: true }), {
    discard: true
  }).pipe(Effect.zipRight(Effect.forEach(held, (session) => manager.close(session.sessionId), { discard: true })))

const naive = ({ held, sql }: Setup) =>
  Effect.forEach(chunks, (batch) =>
    Effect.forEach(held, (session) =>
      Effect.forEach(batch, (event, i) =>
        sql.withTransaction(
          sql`INSERT INTO events ${sql.insert({ session_id: session.sessionId, id: event.id!, data: event.data })}`.pipe(
            Effect.zipRight(sql`INSERT INTO sse_resume_cursors ${
              sql.insert({
                session_id: session.sessionId,
                last_event_id: event.id!,
                seq: i + 1,
                recent_ids: null,
                updated_at: Date.now()
              })
            } ON CONFLICT (session_id) DO UPDATE SET last_event_id = excluded.last_event_id, seq = excluded.seq`)
          )
        ), { discard: true }), { discard: true }), { discard: true })

/** Events/s of one round of `form` on a fresh store. */
const measure = (form: (setup: Setup) => Effect.Effect<void, unknown>) =>
  Effect.scoped(Effect.gen(function*() {
    const ready = yield* setup
    const start = performance.now()
    yield* form(ready)
    return (sessions * perSession) / ((performance.now() - start) / 1000)
  }))

const median = (xs: Array<number>) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const program = Effect.gen(function*() {
  const forms = { transactional, worker, naive } as const
  const results: Record<string, number> = {}
  for (const [name, form] of Object.entries(forms)) {
    yield* measure(form) // warm-up
    const samples: Array<number> = []
    for (let i = 0; i < rounds; i++) samples.push(yield* measure(form))
    results[name] = median(samples)
  }
  const rate = (n: number) => `${Math.round(n).toLocaleString("en-US")} events/s`
  console.log(`exactly once into SQLite: ${sessions} held sessions × ${perSession} events, chunks of ${chunk}`)
  console.log(`  transactional (handler inserts each event)  ${rate(results.transactional!)}`)
  console.log(`  worker, at least once, no inserts           ${rate(results.worker!)}  (transactional ×${(results.transactional! / results.worker!).toFixed(2)})`)
  console.log(`  naive, one transaction per event            ${rate(results.naive!)}  (transactional ×${(results.transactional! / results.naive!).toFixed(1)})`)
})

Effect.runPromise(program).finally(() => rmSync(dir, { recursive: true, force: true }))
