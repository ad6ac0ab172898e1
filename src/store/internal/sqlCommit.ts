/**
 * The transactional cursor commit of `CursorStore.layerSql` (`CursorTransactions`): the caller's statements,
 * the epoch check and the cursor upsert in one transaction, so a crash keeps all of
 * them or none. The cursor is compared-and-set on its `seq`: the events a commit
 * hands to its caller were judged new against the session at `previousSeq`, and
 * anything else having moved the cursor since makes them possibly handled twice.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { type Cause, Data, Effect } from "effect"
import type { CursorCommit } from "../CursorStore.js"
import { CursorConflict, CursorStoreError, mapStoreFailure, SessionLost } from "../StoreError.js"
import { upsertCursors } from "./sqlCursors.js"
import { lockEpochs } from "./sqlLeases.js"

/**
 * The caller's outcome carried through the transaction, so its failures (SqlError
 * included) and defects are told apart from the store's own on the way out.
 */
class WorkFailed<E> extends Data.TaggedError("effect-sse-resume/WorkFailed")<{ readonly cause: Cause.Cause<E> }> {}

export const makeCommit = (sql: SqlClient.SqlClient) => {
  /** Locks the session's epoch row until the end of the transaction (no new owner meanwhile). */
  const fence = (request: CursorCommit) =>
    request.epoch === undefined ? Effect.void : lockEpochs(sql, [request.sessionId]).pipe(
      mapStoreFailure("save"),
      Effect.flatMap((rows) =>
        rows.length === 1 && Number(rows[0]!.epoch) === request.epoch
          ? Effect.void
          : Effect.fail(new SessionLost({ sessionId: request.sessionId, epoch: request.epoch!, reason: "fenced" }))
      )
    )

  const advance = ({ cursor, previousSeq, sessionId }: CursorCommit) =>
    cursor === undefined ? Effect.void : upsertCursors(sql, [cursor], previousSeq).pipe(
      mapStoreFailure("save"),
      Effect.flatMap((rows) => rows.length === 1 ? Effect.void : Effect.fail(new CursorConflict({ sessionId, previousSeq })))
    )

  return <E, R>(
    request: CursorCommit,
    work: Effect.Effect<void, E, R>
  ): Effect.Effect<void, E | SessionLost | CursorConflict | CursorStoreError, R> =>
    sql.withTransaction(
      fence(request).pipe(
        Effect.zipRight(Effect.mapError(Effect.sandbox(work), (cause) => new WorkFailed({ cause }))),
        Effect.zipRight(advance(request))
      )
    ).pipe(
      // withTransaction turns a failed COMMIT or ROLLBACK into a defect: the store's failure.
      Effect.catchAllDefect((cause) => Effect.fail(new CursorStoreError({ operation: "save", cause }))),
      Effect.catchAll((error): Effect.Effect<never, E | SessionLost | CursorConflict | CursorStoreError> =>
        error instanceof WorkFailed
          ? Effect.failCause(error.cause as Cause.Cause<E>)
          : error instanceof SqlError // BEGIN failed
          ? Effect.fail(new CursorStoreError({ operation: "save", cause: error }))
          : Effect.fail(error)
      )
    )
}
