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
import { Context, Effect, Layer, type Option } from "effect"
import * as keyValueCursors from "./internal/keyValueCursors.js"
import * as memoryStore from "./internal/memoryStore.js"
import { makeCommit } from "./internal/sqlCommit.js"
import * as sqlCursors from "./internal/sqlCursors.js"
import { LeaseStore } from "./LeaseStore.js"
import type { CursorConflict, CursorStoreError, SessionLost } from "./StoreError.js"

export { CursorConflict, CursorStoreError, mapStoreFailure, SessionBusy, SessionLost } from "./StoreError.js"
export type { Lease } from "./LeaseStore.js"

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
  /**
   * The stream the cursor was read from, `"<METHOD> <url>"`, so a resume from it can
   * be refused on another stream. Stored with it; a save without one keeps the
   * stored cursor's.
   */
  readonly stream?: string | undefined
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
  /** @deprecated Use `LeaseStore.acquire` (every layer here provides `LeaseStore` too); the same lease. */
  readonly acquire: LeaseStore["Type"]["acquire"]
  /** @deprecated Use `LeaseStore.renew`; the same lease. */
  readonly renew: LeaseStore["Type"]["renew"]
  /** @deprecated Use `LeaseStore.release`; the same lease. */
  readonly release: LeaseStore["Type"]["release"]
}>() {}

/** Cursors and leases in this process only: ownership here excludes other managers of the same process. */
export const layerMemory: Layer.Layer<CursorStore | LeaseStore> = Layer.syncContext(() => {
  const { cursors, leases } = memoryStore.make()
  return Context.make(CursorStore, cursors).pipe(Context.add(LeaseStore, leases))
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
export const layerKeyValueStore: Layer.Layer<CursorStore | LeaseStore, never, KeyValueStore.KeyValueStore> = Layer
  .effectContext(Effect.flatMap(KeyValueStore.KeyValueStore, (kv) =>
    Effect.map(keyValueCursors.make(kv), ({ cursors, leases }) =>
      Context.make(CursorStore, cursors).pipe(Context.add(LeaseStore, leases)))))

/**
 * A store on any `@effect/sql` client, with its leases and its transactions for
 * exactly-once consumers; creates its tables (`sse_resume_cursors`,
 * `sse_resume_owners`) on first use of the layer, and adds the `stream` column to
 * a cursor table made by an earlier version.
 */
export const layerSql: Layer.Layer<CursorStore | LeaseStore | CursorTransactions, CursorStoreError, SqlClient.SqlClient> =
  Layer.effectContext(Effect.gen(function*() {
    const client = yield* SqlClient.SqlClient
    // Raw names: the queries use snake_case columns whatever the user's transforms.
    const sql = client.withoutTransforms()
    const { cursors, leases } = yield* sqlCursors.make(sql)
    return Context.make(CursorStore, cursors).pipe(
      Context.add(LeaseStore, leases),
      Context.add(CursorTransactions, CursorTransactions.of({ sql: client, commit: makeCommit(sql) }))
    )
  }))
