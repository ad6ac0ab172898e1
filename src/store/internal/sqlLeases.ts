/**
 * Session leases in SQL, for `CursorStore.layerSql`: one row per session with its
 * owner, epoch and expiry. Every expiry is judged by the database's clock, so the
 * clocks of the instances sharing it may disagree; the epoch only rises, so a write
 * checked against it in the writing transaction is fenced.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { type CursorStoreError, type Lease, mapStoreFailure, SessionBusy } from "../CursorStore.js"

/** The expiry of a released lease: past on every clock; the row (and its epoch) stays. */
const released = 0

// Leases per renewal statement: 2 parameters each, far below both engines' limits.
const leasesPerStatement = 400

export const createOwnersTable = (sql: SqlClient.SqlClient) =>
  sql`CREATE TABLE IF NOT EXISTS sse_resume_owners (
    session_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
  )`

/** Epoch milliseconds by the database's clock (SQLite's 'now' is fixed within a statement). */
const databaseNow = (sql: SqlClient.SqlClient) =>
  sql.onDialectOrElse({
    pg: () => sql.literal("CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"),
    orElse: () => sql.literal("CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)")
  })

/**
 * The current epochs of `sessionIds`, locked until the transaction ends so no new
 * owner can take one between this check and the cursor write.
 */
export const lockEpochs = (sql: SqlClient.SqlClient, sessionIds: ReadonlyArray<string>) =>
  sql.onDialectOrElse({
    pg: () =>
      sql<{ session_id: string; epoch: number | string }>`SELECT session_id, epoch FROM sse_resume_owners
        WHERE session_id IN ${sql.in(sessionIds)} ORDER BY session_id FOR UPDATE`,
    // A write first: a SQLite transaction that reads before it writes fails with
    // SQLITE_BUSY (no waiting) when another process wrote in between.
    orElse: () =>
      sql<{ session_id: string; epoch: number | string }>`UPDATE sse_resume_owners SET epoch = epoch
        WHERE session_id IN ${sql.in(sessionIds)} RETURNING session_id, epoch`
  })

export const makeLeases = (sql: SqlClient.SqlClient) => {
  const now = databaseNow(sql)

  const busy = (sessionId: string) =>
    sql<{ owner: string; remaining: number | string }>`SELECT owner, expires_at - ${now} AS remaining
      FROM sse_resume_owners WHERE session_id = ${sessionId}`.pipe(
      mapStoreFailure("acquire"),
      Effect.flatMap((rows) =>
        Effect.fail(
          new SessionBusy({
            sessionId,
            owner: rows[0]?.owner ?? "unknown",
            expiresInMillis: Number(rows[0]?.remaining ?? 0)
          })
        )
      )
    )

  // A live lease fails the WHERE of the upsert, which then returns no row.
  const acquire = (sessionId: string, owner: string, ttlMillis: number) =>
    sql<{ epoch: number | string }>`INSERT INTO sse_resume_owners (session_id, owner, epoch, expires_at)
      VALUES (${sessionId}, ${owner}, 1, ${now} + ${ttlMillis})
      ON CONFLICT (session_id) DO UPDATE SET
        owner = excluded.owner,
        epoch = sse_resume_owners.epoch + 1,
        expires_at = excluded.expires_at
      WHERE sse_resume_owners.expires_at <= ${now}
      RETURNING epoch`.pipe(
      mapStoreFailure("acquire"),
      Effect.flatMap((rows): Effect.Effect<Lease, SessionBusy | CursorStoreError> =>
        rows.length === 0 ? busy(sessionId) : Effect.succeed({ sessionId, owner, epoch: Number(rows[0]!.epoch) })
      )
    )

  const renewSome = (leases: ReadonlyArray<Lease>, ttlMillis: number) =>
    sql<{ session_id: string; epoch: number | string }>`UPDATE sse_resume_owners SET expires_at = ${now} + ${ttlMillis}
      WHERE expires_at <> ${released} AND ${
      sql.or(leases.map((lease) => sql`(session_id = ${lease.sessionId} AND epoch = ${lease.epoch})`))
    }
      RETURNING session_id, epoch`

  const renew = (leases: ReadonlyArray<Lease>, ttlMillis: number) =>
    Effect.suspend(() => {
      const statements = []
      for (let i = 0; i < leases.length; i += leasesPerStatement) {
        statements.push(renewSome(leases.slice(i, i + leasesPerStatement), ttlMillis))
      }
      return Effect.map(Effect.all(statements), (results) => {
        const renewed = new Set(results.flat().map((row) => `${Number(row.epoch)} ${row.session_id}`))
        return leases.filter((lease) => !renewed.has(`${lease.epoch} ${lease.sessionId}`))
      })
    }).pipe(mapStoreFailure("renew"))

  const release = (lease: Lease) =>
    sql`UPDATE sse_resume_owners SET expires_at = ${released}
      WHERE session_id = ${lease.sessionId} AND epoch = ${lease.epoch}`.pipe(
      Effect.asVoid,
      mapStoreFailure("release")
    )

  return { acquire, renew, release }
}
