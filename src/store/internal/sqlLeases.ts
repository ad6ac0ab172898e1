/**
 * Leases in SQL, for `LeaseStore.layerSql` and `CursorStore.layerSql`: one row per
 * key (`session_id`) with its owner, epoch and expiry. Every expiry is judged by
 * the database's clock, so the clocks of the instances sharing it may disagree;
 * the epoch only rises, so a write checked against it in the writing transaction
 * is fenced.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import type { Lease, LeaseStore } from "../LeaseStore.js"
import { type CursorStoreError, mapStoreFailure, SessionBusy } from "../StoreError.js"
import { released } from "./leaseRules.js"
import { isDeadOwner } from "./processOwner.js"

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

interface Holder {
  readonly owner: string
  readonly epoch: number | string
  readonly remaining: number | string
}

export const makeLeases = (sql: SqlClient.SqlClient): LeaseStore["Type"] => {
  const now = databaseNow(sql)

  const holderOf = (sessionId: string) =>
    sql<Holder>`SELECT owner, epoch, expires_at - ${now} AS remaining
      FROM sse_resume_owners WHERE session_id = ${sessionId}`

  const busy = (sessionId: string, holder: Holder | undefined) =>
    new SessionBusy({ sessionId, owner: holder?.owner ?? "unknown", expiresInMillis: Number(holder?.remaining ?? 0) })

  // A live lease fails the WHERE of the upsert, which then returns no row.
  const take = (sessionId: string, owner: string, ttlMillis: number) =>
    sql<{ epoch: number | string }>`INSERT INTO sse_resume_owners (session_id, owner, epoch, expires_at)
      VALUES (${sessionId}, ${owner}, 1, ${now} + ${ttlMillis})
      ON CONFLICT (session_id) DO UPDATE SET
        owner = excluded.owner,
        epoch = sse_resume_owners.epoch + 1,
        expires_at = excluded.expires_at
      WHERE sse_resume_owners.expires_at <= ${now}
      RETURNING epoch`

  /** Takes a live lease from a holder known dead, if it still holds it at that epoch. */
  const takeFromDead = (sessionId: string, owner: string, ttlMillis: number, dead: Holder) =>
    sql<{ epoch: number | string }>`UPDATE sse_resume_owners
      SET owner = ${owner}, epoch = epoch + 1, expires_at = ${now} + ${ttlMillis}
      WHERE session_id = ${sessionId} AND owner = ${dead.owner} AND epoch = ${Number(dead.epoch)}
      RETURNING epoch`

  const acquire = (sessionId: string, owner: string, ttlMillis: number) =>
    Effect.gen(function*() {
      const taken = yield* take(sessionId, owner, ttlMillis)
      if (taken.length === 1) return { taken: taken[0]!.epoch, holder: undefined }
      const holder = (yield* holderOf(sessionId))[0]
      if (holder === undefined || !isDeadOwner(holder.owner)) return { taken: undefined, holder }
      const seized = yield* takeFromDead(sessionId, owner, ttlMillis, holder)
      return seized.length === 1 ? { taken: seized[0]!.epoch, holder: undefined } : { taken: undefined, holder }
    }).pipe(
      mapStoreFailure("acquire"),
      Effect.flatMap(({ holder, taken }): Effect.Effect<Lease, SessionBusy | CursorStoreError> =>
        taken === undefined ? Effect.fail(busy(sessionId, holder)) : Effect.succeed({ sessionId, owner, epoch: Number(taken) })
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

/** The lease store on `sql` (raw names), its table created. */
export const make = (sql: SqlClient.SqlClient): Effect.Effect<LeaseStore["Type"], CursorStoreError> =>
  createOwnersTable(sql).pipe(
    // Two instances starting at once can race on pg's catalog; a second try sees the table.
    Effect.retry({ times: 2 }),
    mapStoreFailure("open"),
    Effect.as(makeLeases(sql))
  )
