/**
 * Leases with fencing: who may act for a key (a session, a stream's producer) for a
 * while, and an `epoch` that rises with every new owner, so a write that carries an
 * older one comes from an owner that lost the key and can be refused.
 *
 * A lease lasts `ttlMillis` by the store's clock (the database's for SQL, so the
 * clocks of the instances sharing it may disagree; the Effect `Clock` for memory and
 * key-value) unless renewed; when its owner dies it simply expires. An owner named
 * by `processOwner()` that is a process of this host no longer running (killed, or
 * its pid now another process's) is known dead, and its lease is taken at once.
 *
 * Every `CursorStore` layer provides this store too, on the same storage, and fences
 * its cursor writes with these epochs (in the writing transaction on SQL).
 */
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Effect, Layer } from "effect"
import * as keyValueCursors from "./internal/keyValueCursors.js"
import * as memoryStore from "./internal/memoryStore.js"
import * as owners from "./internal/processOwner.js"
import * as sqlLeases from "./internal/sqlLeases.js"
import type { CursorStoreError, SessionBusy } from "./StoreError.js"

export { CursorStoreError, SessionBusy } from "./StoreError.js"

/**
 * Ownership of one key: `epoch` rises with every new owner. The key's field is
 * named `sessionId` for its first use, sessions; any name works (a stream's, say).
 */
export interface Lease {
  readonly sessionId: string
  /** Who holds it, as named in `SessionBusy`. */
  readonly owner: string
  readonly epoch: number
}

export class LeaseStore extends Context.Tag("effect-sse-resume/LeaseStore")<LeaseStore, {
  /**
   * Takes the key's lease for `ttlMillis` (by the store's clock) with the next epoch,
   * if nobody holds a live one (a dead process of this host holds none);
   * `SessionBusy` names the holder otherwise.
   */
  readonly acquire: (
    sessionId: string,
    owner: string,
    ttlMillis: number
  ) => Effect.Effect<Lease, SessionBusy | CursorStoreError>
  /**
   * Extends the leases still held at their epoch to `ttlMillis` from when the store
   * runs the renewal; returns those no longer held (taken or released).
   */
  readonly renew: (leases: ReadonlyArray<Lease>, ttlMillis: number) => Effect.Effect<ReadonlyArray<Lease>, CursorStoreError>
  /** Ends the lease at once (if still held at its epoch), keeping its epoch for the next owner to pass. */
  readonly release: (lease: Lease) => Effect.Effect<void, CursorStoreError>
}>() {}

/**
 * This process's owner name: `<host>/<pid>`, on Linux followed by `@<boot>.<pidns>.<start>`
 * (kernel boot, pid namespace, start time) so that a lease store on this host can
 * tell when the process is gone, or its pid reused; elsewhere a lease is waited out.
 */
export const processOwner: () => string = owners.processOwner

/** Leases in this process only, expiring by the Effect `Clock`. */
export const layerMemory: Layer.Layer<LeaseStore> = Layer.sync(LeaseStore, () => memoryStore.makeLeases())

/**
 * Leases on any `@effect/platform` `KeyValueStore`, under `effect-sse-resume/owner/<key>`,
 * expiring by the Effect `Clock`; exclusive within one store, best-effort across stores
 * sharing the storage (see `CursorStore.layerKeyValueStore`).
 */
export const layerKeyValueStore: Layer.Layer<LeaseStore, never, KeyValueStore.KeyValueStore> = Layer.effect(
  LeaseStore,
  Effect.flatMap(KeyValueStore.KeyValueStore, (kv) => Effect.map(keyValueCursors.make(kv), (store) => store.leases))
)

/** Leases on any `@effect/sql` client (table `sse_resume_owners`, created on first use), by the database's clock. */
export const layerSql: Layer.Layer<LeaseStore, CursorStoreError, SqlClient.SqlClient> = Layer.effect(
  LeaseStore,
  Effect.flatMap(SqlClient.SqlClient, (client) => sqlLeases.make(client.withoutTransforms()))
)
