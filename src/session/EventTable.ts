/**
 * A session's events as rows of a table in the cursor store's database, each
 * chunk inserted in the transaction that commits the session's cursor
 * (`ExactlyOnce.handle`, through `CursorTransactions.commit`): a kill anywhere
 * leaves the table holding every event up to the stored cursor exactly once.
 * `sse-resume tail --into TABLE` is this; a relay writing events with its cursor
 * does the same.
 *
 *   yield* EventTable.create("events")
 *   const session = yield* manager.hold("orders")
 *   yield* SseClient.stream(request, { tracker: yield* EventTracker.copy(session.tracker) }).pipe(
 *     Stream.interruptWhen(session.lost),
 *     Stream.runForEachChunk((chunk) => EventTable.append(session, chunk, "events"))
 *   )
 *
 * Rows: `session_id`, `event_id` (null for an event without one), `event`,
 * `data`, `received_at` (ms since the epoch, the commit's clock), in commit order.
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Data, Effect } from "effect"
import { CursorTransactions } from "../store/CursorStore.js"
import * as ExactlyOnce from "./ExactlyOnce.js"
import type { Session, SessionManager } from "./SessionManager.js"
import type { SseEvent } from "../wire/SseEvent.js"

/** A table name that is not a plain SQL identifier, or is one of the store's own tables. */
export class EventTableNameError extends Data.TaggedError("EventTableNameError")<{ readonly table: string }> {
  override get message() {
    return `not a table name for events (letters, digits, _; not sse_resume_*): ${JSON.stringify(this.table)}`
  }
}

/** A plain SQL identifier, and not one of the store's own tables (`sse_resume_*`). */
export const isTableName = (name: string): boolean =>
  /^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name) && !name.toLowerCase().startsWith("sse_resume_")

const checkName = (table: string): Effect.Effect<void, EventTableNameError> =>
  isTableName(table) ? Effect.void : Effect.fail(new EventTableNameError({ table }))

/** Creates `table` in the store's database if it is missing. */
export const create = (table: string): Effect.Effect<void, EventTableNameError | SqlError, CursorTransactions> =>
  Effect.zipRight(
    checkName(table),
    Effect.flatMap(CursorTransactions, ({ sql }) =>
      sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
        session_id TEXT NOT NULL,
        event_id TEXT,
        event TEXT NOT NULL,
        data TEXT NOT NULL,
        received_at BIGINT NOT NULL
      )`)
  )

// 5 parameters a row: far below SQLite's (32,766) and pg's (65,535) limits.
const rowsPerInsert = 500

/** The `ExactlyOnce` handler that inserts a chunk's new events as rows of `table`. */
export const handler = (table: string, sessionId: string): ExactlyOnce.Handler<SqlError, never> => (events, sql) =>
  Effect.flatMap(Clock.currentTimeMillis, (receivedAt) => {
    const inserts: Array<Effect.Effect<unknown, SqlError>> = []
    for (let i = 0; i < events.length; i += rowsPerInsert) {
      const rows = events.slice(i, i + rowsPerInsert).map((event) => ({
        session_id: sessionId,
        event_id: event.id ?? null,
        event: event.event,
        data: event.data,
        received_at: receivedAt
      }))
      inserts.push(sql`INSERT INTO ${sql(table)} ${sql.insert(rows)}`)
    }
    return Effect.all(inserts, { discard: true })
  })

/**
 * Inserts the events of `events` new to `session` into `table` and commits the
 * session's cursor, in one transaction; the session moves only once it committed.
 * `table` is used as given: check it with `isTableName` (or `create` it) first.
 */
export const append = (
  session: Session,
  events: Iterable<SseEvent>,
  table: string,
  options: ExactlyOnce.Options<SqlError> = {}
): Effect.Effect<void, ExactlyOnce.HandleError<SqlError>, SessionManager | CursorTransactions> =>
  ExactlyOnce.handle(session, events, handler(table, session.sessionId), options)
