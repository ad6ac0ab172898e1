/**
 * Cursors in SQL, for `CursorStore.layerSql`: one row per session, written by one
 * upsert statement whose WHERE keeps a cursor from moving backwards (a save) or
 * compares-and-sets it on the `seq` the writer read (a transactional commit).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import type { Cursor, CursorStore } from "../CursorStore.js"
import type { LeaseStore } from "../LeaseStore.js"
import { type CursorStoreError, mapStoreFailure, type SessionLost } from "../StoreError.js"
import { fenced, newestPerSession } from "./cursorBatch.js"
import { createOwnersTable, lockEpochs, makeLeases } from "./sqlLeases.js"

interface CursorRow {
  readonly session_id: string
  readonly last_event_id: string
  // int8 comes back from pg as a string, from SQLite as a number.
  readonly seq: number | string
  readonly recent_ids: string | null
  readonly updated_at: number | string
  readonly stream: string | null
}

// 6 parameters a row: 500 rows stay far below SQLite's (32,766) and pg's (65,535) limits.
const rowsPerStatement = 500

const noneLost: ReadonlyArray<SessionLost> = []

/** A cursor as its row. */
const toRow = (cursor: Cursor) => ({
  session_id: cursor.sessionId,
  last_event_id: cursor.lastEventId,
  seq: cursor.seq,
  recent_ids: cursor.recentIds === undefined ? null : JSON.stringify(cursor.recentIds),
  updated_at: cursor.updatedAt,
  stream: cursor.stream ?? null
})

/**
 * Writes `cursors`, each only over a row with a lower `seq` (none given) or one
 * whose `seq` is still `previousSeq`; returns the rows written. A cursor without
 * a stream keeps the stored row's.
 */
export const upsertCursors = (sql: SqlClient.SqlClient, cursors: ReadonlyArray<Cursor>, previousSeq?: number) =>
  sql<{ session_id: string }>`INSERT INTO sse_resume_cursors ${sql.insert(cursors.map(toRow))}
    ON CONFLICT (session_id) DO UPDATE SET
      last_event_id = excluded.last_event_id,
      seq = excluded.seq,
      recent_ids = excluded.recent_ids,
      updated_at = excluded.updated_at,
      stream = COALESCE(excluded.stream, sse_resume_cursors.stream)
    WHERE ${
    previousSeq === undefined ? sql`excluded.seq > sse_resume_cursors.seq` : sql`sse_resume_cursors.seq = ${previousSeq}`
  }
    RETURNING session_id`

/** A stored window that is not a JSON array of strings: a typed load error, not a defect. */
const decodeRecentIds = (sessionId: string, text: string | null): Effect.Effect<ReadonlyArray<string> | undefined, Error> =>
  Effect.suspend(() => {
    if (text === null) return Effect.succeed(undefined)
    let ids: unknown
    try {
      ids = JSON.parse(text)
    } catch (error) {
      return Effect.fail(new Error(`recent_ids of "${sessionId}": Expected JSON`, { cause: error }))
    }
    return Array.isArray(ids) && ids.every((id) => typeof id === "string")
      ? Effect.succeed(ids as ReadonlyArray<string>)
      : Effect.fail(new Error(`recent_ids of "${sessionId}": Expected an array of strings, got ${text.slice(0, 80)}`))
  })

const fromRow = (row: CursorRow) =>
  Effect.map(decodeRecentIds(row.session_id, row.recent_ids), (recentIds): Cursor => ({
    sessionId: row.session_id,
    lastEventId: row.last_event_id,
    seq: Number(row.seq),
    recentIds,
    updatedAt: Number(row.updated_at),
    ...(row.stream === null ? {} : { stream: row.stream })
  }))

const bySessionId = (a: Cursor, b: Cursor) => (a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0)

/** Cursor reads and writes on `sql`; writes of owned cursors are fenced by their epoch. */
const makeCursors = (sql: SqlClient.SqlClient) => {
  /** Cursors sorted by session: one lock order for every writer (unsorted, pg deadlocked 18 of 40). */
  const write = (cursors: ReadonlyArray<Cursor>): Effect.Effect<void, SqlError> => {
    if (cursors.length === 0) return Effect.void
    if (cursors.length <= rowsPerStatement) return Effect.asVoid(upsertCursors(sql, cursors))
    const statements: Array<Effect.Effect<unknown, SqlError>> = []
    for (let i = 0; i < cursors.length; i += rowsPerStatement) {
      statements.push(upsertCursors(sql, cursors.slice(i, i + rowsPerStatement)))
    }
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
    sql<CursorRow>`SELECT session_id, last_event_id, seq, recent_ids, updated_at, stream
      FROM sse_resume_cursors WHERE session_id = ${sessionId}`.pipe(
      Effect.flatMap((rows) => rows.length === 0 ? Effect.succeedNone : Effect.asSome(fromRow(rows[0]!))),
      mapStoreFailure("load")
    )

  const remove = (sessionId: string) =>
    sql`DELETE FROM sse_resume_cursors WHERE session_id = ${sessionId}`.pipe(Effect.asVoid, mapStoreFailure("remove"))

  return { load, saveAll, remove }
}

/** The cursor table's column names. */
const cursorColumns = (sql: SqlClient.SqlClient) =>
  sql.onDialectOrElse({
    pg: () =>
      sql<{ name: string }>`SELECT column_name AS name FROM information_schema.columns
        WHERE table_name = 'sse_resume_cursors' AND table_schema = current_schema()`,
    orElse: () => sql<{ name: string }>`SELECT name FROM pragma_table_info('sse_resume_cursors')`
  })

/**
 * The `stream` column, added to a table made before it existed. Looked up first:
 * pg's ALTER TABLE locks the whole table, even with IF NOT EXISTS, and every
 * instance runs this when it opens.
 */
const addStreamColumn = (sql: SqlClient.SqlClient) =>
  Effect.flatMap(cursorColumns(sql), (columns) =>
    columns.some((column) => column.name === "stream")
      ? Effect.void
      : Effect.asVoid(sql.onDialectOrElse({
        pg: () => sql`ALTER TABLE sse_resume_cursors ADD COLUMN IF NOT EXISTS stream TEXT NULL`,
        orElse: () => sql`ALTER TABLE sse_resume_cursors ADD COLUMN stream TEXT NULL`
      })))

const createTables = (sql: SqlClient.SqlClient) =>
  sql`CREATE TABLE IF NOT EXISTS sse_resume_cursors (
    session_id TEXT PRIMARY KEY,
    last_event_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    recent_ids TEXT,
    updated_at BIGINT NOT NULL,
    stream TEXT NULL
  )`.pipe(Effect.zipRight(addStreamColumn(sql)), Effect.zipRight(createOwnersTable(sql)))

/** The SQL store on `sql` (raw names), its tables created or brought up to date. */
export const make = (sql: SqlClient.SqlClient): Effect.Effect<
  { readonly cursors: CursorStore["Type"]; readonly leases: LeaseStore["Type"] },
  CursorStoreError
> =>
  createTables(sql).pipe(
    // Two instances starting at once can race on pg's catalog (or both add the
    // column on SQLite); a second try sees the table as it is now.
    Effect.retry({ times: 2 }),
    mapStoreFailure("open"),
    Effect.map(() => {
      const leases = makeLeases(sql)
      return { cursors: { ...makeCursors(sql), ...leases }, leases }
    })
  )
