/**
 * The process the exactly-once crash test kills: tails a chaos SSE server through
 * SseClient as a held session and, per chunk, inserts each event into TABLE (its
 * primary key the event id) with ExactlyOnce.handle, printing the last id of each
 * committed chunk. Any failure (a unique violation first of all) exits 1.
 *
 *   node exactlyOnceChild.mjs <sqlite file | postgres url> <sse url> <session id> <table> <last id> <lease ms>
 *
 * The lease comes from the test, which derives its own waits from it; renewals at a
 * tenth of it survive a busy machine stalling the child for most of a lease.
 */
import { FetchHttpClient, HttpClientRequest } from "@effect/platform"
import { Duration, Effect, Layer, Option, Stream } from "effect"
import { writeSync } from "node:fs"
import { CursorTransactions } from "../../src/store/CursorStore.js"
import * as EventTracker from "../../src/client/EventTracker.js"
import * as ExactlyOnce from "../../src/session/ExactlyOnce.js"
import * as PersistenceWorker from "../../src/session/PersistenceWorker.js"
import * as PgCursorStore from "../../src/engines/PgCursorStore.js"
import * as SessionManager from "../../src/session/SessionManager.js"
import * as SqliteCursorStore from "../../src/engines/SqliteCursorStore.js"
import * as SseClient from "../../src/client/SseClient.js"

const [store, url, sessionId, table, lastId, leaseMillis] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string
]
const leaseTtl = Duration.millis(Number(leaseMillis))

const program = Effect.gen(function*() {
  const { sql } = yield* CursorTransactions
  yield* sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (id BIGINT PRIMARY KEY, data TEXT NOT NULL)`
  const sessions = yield* SessionManager.SessionManager
  // A killed predecessor's lease runs out after leaseTtl: wait for it.
  const session = yield* sessions.hold(sessionId, { wait: true })
  const events = SseClient.stream(HttpClientRequest.get(url), {
    tracker: yield* EventTracker.copy(session.tracker),
    initialDelay: "5 millis",
    maxDelay: "20 millis",
    maxAttempts: 10_000
  })
  yield* events.pipe(
    Stream.takeUntil((event) => event.id === lastId),
    Stream.interruptWhen(session.lost),
    Stream.runForEachChunk((chunk) =>
      ExactlyOnce.handle(session, chunk, (batch, sql) =>
        sql`INSERT INTO ${sql(table)} ${sql.insert(batch.map((event) => ({ id: Number(event.id), data: event.data })))}`
      ).pipe(Effect.zipRight(Effect.sync(() => writeSync(1, `${Array.from(chunk).at(-1)?.id}\n`))))
    )
  )
}).pipe(Effect.scoped)

const storeLayer = store.startsWith("postgres") ? PgCursorStore.layer(store) : SqliteCursorStore.layer(store)
const layer = SessionManager.layer({
  leaseTtl,
  renewInterval: Duration.divide(leaseTtl, 10).pipe(Option.getOrThrow),
  pollInterval: Duration.divide(leaseTtl, 20).pipe(Option.getOrThrow)
}).pipe(
  Layer.provideMerge(PersistenceWorker.layer()),
  Layer.provideMerge(storeLayer),
  Layer.merge(FetchHttpClient.layer)
)

Effect.runPromise(program.pipe(Effect.provide(layer))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
