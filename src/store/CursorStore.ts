/**
 * Durable resume points. A cursor says how far a session got (`lastEventId`) and
 * how many new events it had seen then (`seq`); because `seq` only rises, a store
 * can refuse any save that would move a cursor backwards, which is what makes late
 * retries and several instances writing the same session harmless.
 *
 * This module holds the contract, the in-memory store, the store on any
 * `@effect/platform` `KeyValueStore` (a browser's `localStorage`, files) and the
 * store on any `@effect/sql` client; the SQL engines have their own entry points
 * (`effect-sse-resume/sqlite`, `effect-sse-resume/pg`), so importing the library
 * loads no database driver.
 */
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Context, Data, Effect, Layer, Option, Schema } from "effect"
import * as keyValueCursors from "./internal/keyValueCursors.js"
import { makeCommit } from "./internal/sqlCommit.js"
import { createOwnersTable, lockEpochs, makeLeases } from "./internal/sqlLeases.js"

/** A store could not be opened, read or written; `message` is one line naming the underlying reason. */
export class CursorStoreError extends Data.TaggedError("CursorStoreError")<{
  readonly operation: "open" | "load" | "save" | "remove" | "acquire" | "renew" | "release"
  readonly cause: unknown
}> {
  override get message() {
    return `${this.operation} failed: ${reasonOf(this.cause)}`
  }
}

/**
 * The messages down a chain of causes, on one line: drivers' errors come wrapped
 * ("Failed to execute statement" around "no such table"), and Node reports a
 * connection refused on several addresses as an AggregateError with no message.
 */
const reasonOf = (cause: unknown): string => {
  const parts: Array<string> = []
  let link = cause
  for (let depth = 0; depth < 5 && link !== undefined && link !== null; depth++) {
    if (!(link instanceof Error)) {
      parts.push(String(link))
      break
    }
    const message = link.message === "" && link instanceof AggregateError
      ? link.errors.map((error) => (error instanceof Error ? error.message : String(error))).join("; ")
      : link.message
    if (message !== "" && !parts.includes(message)) parts.push(message)
    link = link.cause
  }
  return parts.length === 0 ? String(cause) : parts.join(": ").replace(/\s+/g, " ").trim()
}

/**
 * Makes every failure of a store operation a `CursorStoreError`, defects included:
 * drivers throw on some I/O errors (better-sqlite3 on a directory or a corrupt
 * file), and a store's caller should see a reason, not a crash.
 */
export const mapStoreFailure = (operation: CursorStoreError["operation"]) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, CursorStoreError, R> =>
  effect.pipe(
    Effect.mapError((cause) => new CursorStoreError({ operation, cause })),
    Effect.catchAllDefect((cause) => Effect.fail(new CursorStoreError({ operation, cause })))
  )

export interface Cursor {
  readonly sessionId: string
  /** The `Last-Event-ID` to resume from. */
  readonly lastEventId: string
  /** Rises with every new event of the session; a save never lowers it. */
  readonly seq: number
  /** The tracker's de-duplication window at `lastEventId`, oldest first. */
  readonly recentIds?: ReadonlyArray<string> | undefined
  /** Epoch milliseconds of the write. */
  readonly updatedAt: number
  /**
   * The writer's lease epoch (fencing token). When set, the store writes the cursor
   * only if this is still the session's current epoch, checked in the same
   * transaction as the write; when absent the write is unowned, as before leases.
   */
  readonly epoch?: number | undefined
  /** The stream this cursor resumes, `"<METHOD> <url>"`; none in cursors written before streams were recorded. */
  readonly stream?: string | undefined
}

/**
 * Ownership of one session: `epoch` rises with every new owner, so a write that
 * carries an older one comes from an owner that lost the session.
 */
export interface Lease {
  readonly sessionId: string
  /** Who holds it, as named in `SessionBusy`. */
  readonly owner: string
  readonly epoch: number
}

/** Another owner holds the session's lease. */
export class SessionBusy extends Data.TaggedError("SessionBusy")<{
  readonly sessionId: string
  readonly owner: string
  /** Until the lease ends if its owner stops renewing it (by the store's clock). */
  readonly expiresInMillis: number
}> {
  override get message() {
    return `session "${this.sessionId}" is held by ${this.owner} (lease ends within ${Math.max(0, this.expiresInMillis)} ms unless renewed)`
  }
}

/**
 * This process no longer owns the session: another owner took it after the lease
 * expired ("taken"), a write carried a stale epoch ("fenced"), or renewals failed
 * for a whole lease ("unrenewed", so another owner may hold it by now).
 */
export class SessionLost extends Data.TaggedError("SessionLost")<{
  readonly sessionId: string
  readonly epoch: number
  readonly reason: "taken" | "fenced" | "unrenewed"
}> {
  override get message() {
    return `session "${this.sessionId}" lost (epoch ${this.epoch}, ${this.reason}): another owner may hold it`
  }
}

/**
 * A chunk's cursor was not committed: the stored `seq` is no longer `previousSeq`, so
 * another writer (a concurrent commit of the same session, or the PersistenceWorker)
 * moved it after this process read it. Nothing of the transaction was kept.
 */
export class CursorConflict extends Data.TaggedError("CursorConflict")<{
  readonly sessionId: string
  readonly previousSeq: number
}> {
  override get message() {
    return `session "${this.sessionId}": the stored cursor moved past seq ${this.previousSeq} meanwhile; nothing committed`
  }
}

/** What one transaction writes for a session besides the caller's own statements. */
export interface CursorCommit {
  readonly sessionId: string
  /** The writer's lease epoch, checked (and locked) in the transaction; none for an unowned session. */
  readonly epoch: number | undefined
  /** The stored `seq` the cursor must still have for the write to happen. */
  readonly previousSeq: number
  /** The cursor after the chunk; none when the chunk carries no new id. */
  readonly cursor: Cursor | undefined
}

/**
 * The SQL store's transactions, for consumers whose own writes go to the store's
 * database: their statements and the cursor commit together or not at all.
 */
export class CursorTransactions extends Context.Tag("effect-sse-resume/CursorTransactions")<CursorTransactions, {
  /** The store's client as given to `layerSql`: statements through it inside `commit` join its transaction. */
  readonly sql: SqlClient.SqlClient
  /**
   * Runs `work`, then writes the cursor, in one `sql.withTransaction`: refused with
   * `SessionLost` ("fenced") if `epoch` is no longer the session's, `CursorConflict`
   * if the stored `seq` is no longer `previousSeq`. Any failure, `work`'s included,
   * rolls everything back; `work`'s own failures and defects come out unchanged.
   * Not to be nested in another transaction: its commit would then be the outer one's.
   */
  readonly commit: <E, R>(
    request: CursorCommit,
    work: Effect.Effect<void, E, R>
  ) => Effect.Effect<void, E | SessionLost | CursorConflict | CursorStoreError, R>
}>() {}

export class CursorStore extends Context.Tag("effect-sse-resume/CursorStore")<CursorStore, {
  /** The newest stored cursor of a session, if any. */
  readonly load: (sessionId: string) => Effect.Effect<Option.Option<Cursor>, CursorStoreError>
  /**
   * Stores cursors in one transaction; a cursor never replaces one with a higher `seq`.
   * Cursors whose `epoch` is no longer the session's are not written: they come back
   * as `SessionLost` (reason "fenced"), the others are durable.
   */
  readonly saveAll: (cursors: Iterable<Cursor>) => Effect.Effect<ReadonlyArray<SessionLost>, CursorStoreError>
  /** Forgets a session's cursor. */
  readonly remove: (sessionId: string) => Effect.Effect<void, CursorStoreError>
  /**
   * Takes the session's lease for `ttlMillis` (by the store's clock) with the next
   * epoch, if nobody holds a live one; `SessionBusy` names the holder otherwise.
   */
  readonly acquire: (
    sessionId: string,
    owner: string,
    ttlMillis: number
  ) => Effect.Effect<Lease, SessionBusy | CursorStoreError>
  /** Extends the leases still held at their epoch to `ttlMillis` from now; returns those no longer held. */
  readonly renew: (leases: ReadonlyArray<Lease>, ttlMillis: number) => Effect.Effect<ReadonlyArray<Lease>, CursorStoreError>
  /** Ends the lease at once (if still held at its epoch), keeping its epoch for the next owner to pass. */
  readonly release: (lease: Lease) => Effect.Effect<void, CursorStoreError>
}>() {}

const RecentIds = Schema.parseJson(Schema.Array(Schema.String))

/** A row whose window is not a JSON array of strings is a typed load error, not a defect. */
const decodeRecentIds = (text: string | null) =>
  text === null ? Effect.succeed(undefined) : Schema.decodeUnknown(RecentIds)(text)

/** Whether `a` supersedes `b`: a later owner's cursor first, then the higher `seq`. */
const supersedes = (a: Cursor, b: Cursor) =>
  (a.epoch ?? 0) !== (b.epoch ?? 0) ? (a.epoch ?? 0) > (b.epoch ?? 0) : a.seq > b.seq

/** @internal The newest cursor per session among `cursors`, so one statement never touches a row twice. */
export const newestPerSession = (cursors: Iterable<Cursor>): Map<string, Cursor> => {
  const newest = new Map<string, Cursor>()
  for (const cursor of cursors) {
    const seen = newest.get(cursor.sessionId)
    if (seen === undefined || supersedes(cursor, seen)) newest.set(cursor.sessionId, cursor)
  }
  return newest
}

/** @internal */
export const fenced = (cursor: Cursor) => new SessionLost({ sessionId: cursor.sessionId, epoch: cursor.epoch!, reason: "fenced" })

/** @internal A released lease's expiry: in the past for every clock, its epoch kept. */
export const released = 0

/** @internal Whether the stored lease `held` is still `lease`, to renew: the same epoch, not released. */
export const holdsLease = <H extends { readonly epoch: number; readonly expiresAt: number }>(
  held: H | undefined,
  lease: Lease
): held is H => held !== undefined && held.epoch === lease.epoch && held.expiresAt !== released

/** Cursors and leases in this process only: ownership here excludes other managers of the same process. */
export const layerMemory: Layer.Layer<CursorStore> = Layer.sync(CursorStore, () => {
  const cursors = new Map<string, Cursor>()
  const owners = new Map<string, { owner: string; epoch: number; expiresAt: number }>()
  return CursorStore.of({
    load: (sessionId) => Effect.sync(() => Option.fromNullable(cursors.get(sessionId))),
    saveAll: (batch) =>
      Effect.sync(() => {
        const lost: Array<SessionLost> = []
        for (const cursor of newestPerSession(batch).values()) {
          if (cursor.epoch !== undefined && owners.get(cursor.sessionId)?.epoch !== cursor.epoch) {
            lost.push(fenced(cursor))
            continue
          }
          const stored = cursors.get(cursor.sessionId)
          if (stored === undefined || cursor.seq > stored.seq) cursors.set(cursor.sessionId, cursor)
        }
        return lost
      }),
    remove: (sessionId) => Effect.sync(() => void cursors.delete(sessionId)),
    acquire: (sessionId, owner, ttlMillis) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const held = owners.get(sessionId)
        if (held !== undefined && held.expiresAt > now) {
          return Effect.fail(new SessionBusy({ sessionId, owner: held.owner, expiresInMillis: held.expiresAt - now }))
        }
        const epoch = (held?.epoch ?? 0) + 1
        owners.set(sessionId, { owner, epoch, expiresAt: now + ttlMillis })
        return Effect.succeed({ sessionId, owner, epoch })
      }),
    renew: (leases, ttlMillis) =>
      Effect.map(Clock.currentTimeMillis, (now) =>
        leases.filter((lease) => {
          const held = owners.get(lease.sessionId)
          if (!holdsLease(held, lease)) return true
          held.expiresAt = now + ttlMillis
          return false
        })),
    release: (lease) =>
      Effect.sync(() => {
        const held = owners.get(lease.sessionId)
        if (held?.epoch === lease.epoch) held.expiresAt = released
      })
  })
})

/**
 * Cursors and leases on any `@effect/platform` `KeyValueStore`: a browser's
 * storage (`BrowserKeyValueStore.layerLocalStorage` from `@effect/platform-browser`)
 * or a directory of files (`NodeKeyValueStore.layerFileSystem`). Keys start with
 * "effect-sse-resume/" (`.../cursor/<session>`, `.../owner/<session>`), values are
 * JSON; one that is not a cursor (corrupt, or another program's) fails its
 * operation with a `CursorStoreError`, and a save never overwrites it, since it
 * cannot tell whether that would move the cursor backwards (as a damaged SQL row
 * fails its load until removed): `remove` clears a cursor without reading it. A
 * value JSON would not carry back (a `seq` not a safe integer, a NaN or infinite
 * time, hence lease TTL) fails its save or acquire likewise, the stored value kept.
 * In a `saveAll`, such a session is skipped, every other one written, then the
 * save fails naming it.
 *
 * Within one store (one process, one tab) the contract is the SQL store's:
 * operations run one at a time, so `seq` never goes backwards, a lease is
 * exclusive and a stale epoch is fenced. Across stores sharing the storage
 * (browser tabs of one origin on `localStorage`, processes on one directory) it
 * is best-effort: a key-value store has no transaction or compare-and-set, so two
 * of them can interleave a check and its write, both taking a lease or a lower
 * `seq` landing last. Give each tab its own session id (or use `sessionStorage`),
 * and a database store to processes that share sessions. Expiry is by this
 * process's `Clock`. A `saveAll` is not one transaction: a failure part way keeps
 * the sessions already written. The file store rewrites a file in place (an
 * interrupted write still finishes), so a crash during a write, or a load from
 * another process during one, can meet a torn value: it fails to load and to
 * save until `remove`d.
 */
export const layerKeyValueStore: Layer.Layer<CursorStore, never, KeyValueStore.KeyValueStore> = Layer.effect(
  CursorStore,
  Effect.flatMap(KeyValueStore.KeyValueStore, (kv) => Effect.map(keyValueCursors.make(kv), CursorStore.of))
)

interface CursorRow {
  readonly session_id: string
  readonly last_event_id: string
  // int8 comes back from pg as a string, from SQLite as a number.
  readonly seq: number | string
  readonly recent_ids: string | null
  readonly updated_at: number | string
}

// 5 parameters a row: 500 rows stay far below SQLite's (32,766) and pg's (65,535) limits.
const rowsPerStatement = 500

const noneLost: ReadonlyArray<SessionLost> = []

/** @internal A cursor as its row; shared with the transactional commit. */
export const toRow = (cursor: Cursor) => ({
  session_id: cursor.sessionId,
  last_event_id: cursor.lastEventId,
  seq: cursor.seq,
  recent_ids: cursor.recentIds === undefined ? null : JSON.stringify(cursor.recentIds),
  updated_at: cursor.updatedAt
})

const bySessionId = (a: Cursor, b: Cursor) => (a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0)

/** Cursor reads and writes on `sql`; writes of owned cursors are fenced by their epoch. */
const makeCursors = (sql: SqlClient.SqlClient) => {
  const upsert = (rows: ReadonlyArray<Record<string, unknown>>) =>
    sql`INSERT INTO sse_resume_cursors ${sql.insert(rows)}
      ON CONFLICT (session_id) DO UPDATE SET
        last_event_id = excluded.last_event_id,
        seq = excluded.seq,
        recent_ids = excluded.recent_ids,
        updated_at = excluded.updated_at
      WHERE excluded.seq > sse_resume_cursors.seq`

  /** Cursors sorted by session: one lock order for every writer (unsorted, pg deadlocked 18 of 40). */
  const write = (cursors: ReadonlyArray<Cursor>): Effect.Effect<void, SqlError> => {
    if (cursors.length === 0) return Effect.void
    const rows = cursors.map(toRow)
    if (rows.length <= rowsPerStatement) return Effect.asVoid(upsert(rows))
    const statements: Array<Effect.Effect<unknown, SqlError>> = []
    for (let i = 0; i < rows.length; i += rowsPerStatement) statements.push(upsert(rows.slice(i, i + rowsPerStatement)))
    return sql.withTransaction(Effect.all(statements, { discard: true }))
  }

  /** Checks epochs and writes in one transaction, the epochs locked in between. */
  const writeFenced = (cursors: ReadonlyArray<Cursor>) =>
    sql.withTransaction(Effect.gen(function*() {
      const owned = cursors.filter((cursor) => cursor.epoch !== undefined).map((cursor) => cursor.sessionId)
      const current = new Map((yield* lockEpochs(sql, owned)).map((row) => [row.session_id, Number(row.epoch)]))
      const lost: Array<SessionLost> = []
      const kept: Array<Cursor> = []
      for (const cursor of cursors) {
        if (cursor.epoch !== undefined && current.get(cursor.sessionId) !== cursor.epoch) lost.push(fenced(cursor))
        else kept.push(cursor)
      }
      yield* write(kept)
      return lost
    }))

  const saveAll = (cursors: Iterable<Cursor>) =>
    Effect.suspend(() => {
      const newest = Array.from(newestPerSession(cursors).values()).sort(bySessionId)
      return newest.some((cursor) => cursor.epoch !== undefined) ? writeFenced(newest) : Effect.as(write(newest), noneLost)
    }).pipe(mapStoreFailure("save"))

  const load = (sessionId: string) =>
    sql<CursorRow>`SELECT session_id, last_event_id, seq, recent_ids, updated_at
      FROM sse_resume_cursors WHERE session_id = ${sessionId}`.pipe(
      Effect.flatMap((rows) =>
        rows.length === 0
          ? Effect.succeed(Option.none())
          : Effect.map(decodeRecentIds(rows[0]!.recent_ids), (recentIds) =>
            Option.some<Cursor>({
              sessionId: rows[0]!.session_id,
              lastEventId: rows[0]!.last_event_id,
              seq: Number(rows[0]!.seq),
              recentIds,
              updatedAt: Number(rows[0]!.updated_at)
            }))
      ),
      mapStoreFailure("load")
    )

  const remove = (sessionId: string) =>
    sql`DELETE FROM sse_resume_cursors WHERE session_id = ${sessionId}`.pipe(Effect.asVoid, mapStoreFailure("remove"))

  return { load, saveAll, remove }
}

/**
 * A store on any `@effect/sql` client, with its transactions for exactly-once
 * consumers; creates its tables on first use of the layer.
 */
export const layerSql: Layer.Layer<CursorStore | CursorTransactions, CursorStoreError, SqlClient.SqlClient> = Layer
  .effectContext(Effect.gen(function*() {
    const client = yield* SqlClient.SqlClient
    // Raw names: the queries use snake_case columns whatever the user's transforms.
    const sql = client.withoutTransforms()
    // Two instances starting at once can race on pg's catalog; a second try sees the table.
    yield* sql`CREATE TABLE IF NOT EXISTS sse_resume_cursors (
      session_id TEXT PRIMARY KEY,
      last_event_id TEXT NOT NULL,
      seq BIGINT NOT NULL,
      recent_ids TEXT,
      updated_at BIGINT NOT NULL
    )`.pipe(Effect.zipRight(createOwnersTable(sql)), Effect.retry({ times: 2 }), mapStoreFailure("open"))
    return Context.make(CursorStore, CursorStore.of({ ...makeCursors(sql), ...makeLeases(sql) })).pipe(
      Context.add(CursorTransactions, CursorTransactions.of({ sql: client, commit: makeCommit(sql) }))
    )
  }))
