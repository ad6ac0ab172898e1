/**
 * Durable resume points. A cursor says how far a session got (`lastEventId`) and
 * how many new events it had seen then (`seq`); because `seq` only rises, a store
 * can refuse any save that would move a cursor backwards, which is what makes late
 * retries and several instances writing the same session harmless.
 *
 * This module holds the contract, the in-memory store and the store on any
 * `@effect/sql` client; the engines have their own entry points
 * (`effect-sse-resume/sqlite`, `effect-sse-resume/pg`), so importing the library
 * loads no database driver.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Effect, Layer, Option, Schema } from "effect"

/** A store could not be opened, read or written; `message` is one line naming the underlying reason. */
export class CursorStoreError extends Data.TaggedError("CursorStoreError")<{
  readonly operation: "open" | "load" | "save" | "remove"
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
}

export class CursorStore extends Context.Tag("effect-sse-resume/CursorStore")<CursorStore, {
  /** The newest stored cursor of a session, if any. */
  readonly load: (sessionId: string) => Effect.Effect<Option.Option<Cursor>, CursorStoreError>
  /** Stores cursors in one transaction; a cursor never replaces one with a higher `seq`. */
  readonly saveAll: (cursors: Iterable<Cursor>) => Effect.Effect<void, CursorStoreError>
  /** Forgets a session's cursor. */
  readonly remove: (sessionId: string) => Effect.Effect<void, CursorStoreError>
}>() {}

const RecentIds = Schema.parseJson(Schema.Array(Schema.String))

/** A row whose window is not a JSON array of strings is a typed load error, not a defect. */
const decodeRecentIds = (text: string | null) =>
  text === null ? Effect.succeed(undefined) : Schema.decodeUnknown(RecentIds)(text)

/** The newest cursor per session among `cursors`, so one statement never touches a row twice. */
const newestPerSession = (cursors: Iterable<Cursor>): Map<string, Cursor> => {
  const newest = new Map<string, Cursor>()
  for (const cursor of cursors) {
    const seen = newest.get(cursor.sessionId)
    if (seen === undefined || cursor.seq > seen.seq) newest.set(cursor.sessionId, cursor)
  }
  return newest
}

export const layerMemory: Layer.Layer<CursorStore> = Layer.sync(CursorStore, () => {
  const cursors = new Map<string, Cursor>()
  return CursorStore.of({
    load: (sessionId) => Effect.sync(() => Option.fromNullable(cursors.get(sessionId))),
    saveAll: (batch) =>
      Effect.sync(() => {
        for (const cursor of newestPerSession(batch).values()) {
          const stored = cursors.get(cursor.sessionId)
          if (stored === undefined || cursor.seq > stored.seq) cursors.set(cursor.sessionId, cursor)
        }
      }),
    remove: (sessionId) => Effect.sync(() => void cursors.delete(sessionId))
  })
})

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

/** A store on any `@effect/sql` client; creates its table on first use of the layer. */
export const layerSql: Layer.Layer<CursorStore, CursorStoreError, SqlClient.SqlClient> = Layer.effect(
  CursorStore,
  Effect.gen(function*() {
    // Raw names: the queries below use snake_case columns whatever the user's transforms.
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    // Two instances starting at once can race on pg's catalog; a second try sees the table.
    yield* sql`CREATE TABLE IF NOT EXISTS sse_resume_cursors (
      session_id TEXT PRIMARY KEY,
      last_event_id TEXT NOT NULL,
      seq BIGINT NOT NULL,
      recent_ids TEXT,
      updated_at BIGINT NOT NULL
    )`.pipe(Effect.retry({ times: 2 }), mapStoreFailure("open"))

    const upsert = (rows: ReadonlyArray<Record<string, unknown>>) =>
      sql`INSERT INTO sse_resume_cursors ${sql.insert(rows)}
        ON CONFLICT (session_id) DO UPDATE SET
          last_event_id = excluded.last_event_id,
          seq = excluded.seq,
          recent_ids = excluded.recent_ids,
          updated_at = excluded.updated_at
        WHERE excluded.seq > sse_resume_cursors.seq`

    return CursorStore.of({
      load: (sessionId) =>
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
        ),
      saveAll: (cursors) =>
        Effect.suspend(() => {
          const rows: Array<{ readonly session_id: string } & Record<string, unknown>> = []
          for (const cursor of newestPerSession(cursors).values()) {
            rows.push({
              session_id: cursor.sessionId,
              last_event_id: cursor.lastEventId,
              seq: cursor.seq,
              recent_ids: cursor.recentIds === undefined ? null : JSON.stringify(cursor.recentIds),
              updated_at: cursor.updatedAt
            })
          }
          if (rows.length === 0) return Effect.void
          // One lock order for every writer: two instances upserting overlapping
          // sessions in different orders deadlock on PostgreSQL (measured: 18 of 40).
          rows.sort((a, b) => (a.session_id < b.session_id ? -1 : a.session_id > b.session_id ? 1 : 0))
          if (rows.length <= rowsPerStatement) return upsert(rows)
          const statements: Array<Effect.Effect<unknown, SqlError>> = []
          for (let i = 0; i < rows.length; i += rowsPerStatement) {
            statements.push(upsert(rows.slice(i, i + rowsPerStatement)))
          }
          return sql.withTransaction(Effect.all(statements, { discard: true }))
        }).pipe(
          Effect.asVoid,
          mapStoreFailure("save")
        ),
      remove: (sessionId) =>
        sql`DELETE FROM sse_resume_cursors WHERE session_id = ${sessionId}`.pipe(
          Effect.asVoid,
          mapStoreFailure("remove")
        )
    })
  })
)
