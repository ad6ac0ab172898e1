/**
 * Exactly once across crashes: a chunk of a session's new events is handled in one
 * transaction of the cursor store's database, together with the session's cursor
 * (its de-duplication window, and the ownership epoch check). A crash before the
 * commit keeps neither the handler's rows nor the cursor, so the restarted process
 * is offered the same events again; a crash after it keeps both. The handler's
 * writes must go to the store's database, through the `sql` it is given.
 *
 *   const session = yield* manager.hold("orders")
 *   yield* SseClient.stream(request, { tracker: yield* EventTracker.copy(session.tracker) }).pipe(
 *     Stream.interruptWhen(session.lost),
 *     Stream.runForEachChunk((chunk) =>
 *       ExactlyOnce.handle(session, chunk, (events, sql) =>
 *         sql`INSERT INTO orders ${sql.insert(events.map((e) => ({ id: e.id, data: e.data })))}`))
 *   )
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { Effect, type Schedule } from "effect"
import {
  type CursorConflict,
  type CursorStoreError,
  CursorTransactions,
  SessionLost
} from "../store/CursorStore.js"
import { type Session, SessionManager } from "./SessionManager.js"
import type { SseEvent } from "../wire/SseEvent.js"

/** Why a chunk was not committed: the handler's own failure, or the store's. */
export type HandleError<E> = E | SessionLost | CursorConflict | CursorStoreError

/**
 * Handles the events new to the session (never empty); its statements through `sql`
 * join the transaction. Any failure rolls the whole chunk back.
 */
export type Handler<E, R> = (events: ReadonlyArray<SseEvent>, sql: SqlClient.SqlClient) => Effect.Effect<void, E, R>

export interface Options<E> {
  /**
   * Offer a chunk that was not committed to the handler again, as this schedule
   * allows (a `SessionLost` is never retried). Default: fail with the typed error.
   */
  readonly retry?: Schedule.Schedule<unknown, HandleError<E>> | undefined
}

/**
 * Runs `handler` on the events of `events` new to `session`, and commits the
 * session's cursor in the same transaction; the session's tracker moves only once
 * that committed. When it fails or rolls back, neither the handler's writes nor the
 * cursor move, and the same events are offered again (`retry`) or the failure is
 * returned. Chunks of one session are meant to be handled one at a time (as
 * `Stream.runForEachChunk` does): a concurrent one is refused with `CursorConflict`.
 */
export const handle = <E, R>(
  session: Session,
  events: Iterable<SseEvent>,
  handler: Handler<E, R>,
  options: Options<E> = {}
): Effect.Effect<void, HandleError<E>, R | SessionManager | CursorTransactions> =>
  Effect.flatMap(Effect.all([SessionManager, CursorTransactions]), ([manager, transactions]) => {
    const attempt = manager.commitChunk(session, events, (chunk) =>
      chunk.events.length === 0 && chunk.cursor === undefined
        ? Effect.void
        : transactions.commit(chunk, chunk.events.length === 0 ? Effect.void : handler(chunk.events, transactions.sql)))
    return options.retry === undefined
      ? attempt
      : Effect.retry(attempt, { schedule: options.retry, while: (error) => !(error instanceof SessionLost) })
  })
