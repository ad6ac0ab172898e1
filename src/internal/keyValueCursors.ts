/**
 * Cursors and leases on a `KeyValueStore`, for `CursorStore.layerKeyValueStore`:
 * one key per session for its cursor and one for its lease, each a JSON value.
 * A key-value store has no transactions and no compare-and-set, so every check
 * and the write after it are a read-modify-write; one permit around every
 * operation keeps them whole within this store (one process, one tab).
 */
import type * as KeyValueStore from "@effect/platform/KeyValueStore"
import { Clock, Effect, Option, Schema } from "effect"
import {
  type Cursor,
  type CursorStore,
  type CursorStoreError,
  fenced,
  type Lease,
  mapStoreFailure,
  newestPerSession,
  SessionBusy,
  type SessionLost
} from "../CursorStore.js"

/** Every key the store writes starts with this, so the store can share a `KeyValueStore` with other data. */
const keyPrefix = "effect-sse-resume/"
const cursorKey = (sessionId: string) => `${keyPrefix}cursor/${sessionId}`
const ownerKey = (sessionId: string) => `${keyPrefix}owner/${sessionId}`

/** A cursor as stored under its session's key (the session id is the key's). */
const StoredCursor = Schema.parseJson(Schema.Struct({
  lastEventId: Schema.String,
  seq: Schema.Int,
  recentIds: Schema.optional(Schema.Array(Schema.String)),
  updatedAt: Schema.Number
}))

/** A session's lease: `expiresAt` by this store's `Clock`, `released` once given up (its epoch kept). */
const StoredOwner = Schema.parseJson(Schema.Struct({
  owner: Schema.String,
  epoch: Schema.Int,
  expiresAt: Schema.Number
}))
type StoredOwner = typeof StoredOwner.Type

/** A released lease's expiry: past on every clock; the key (and its epoch) stays. */
const released = 0

export const make = (
  kv: KeyValueStore.KeyValueStore
): Effect.Effect<typeof CursorStore.Service> =>
  Effect.map(Effect.makeSemaphore(1), (lock) => {
    /** The value at `key` decoded, none if absent; a value of another shape fails (a `ParseError`). */
    const read = <A>(schema: Schema.Schema<A, string>, key: string) =>
      Effect.flatMap(
        kv.get(key),
        Option.match({ onNone: () => Effect.succeedNone, onSome: (text) => Effect.asSome(Schema.decode(schema)(text)) })
      )

    const readCursor = (sessionId: string) =>
      Effect.map(
        read(StoredCursor, cursorKey(sessionId)),
        Option.map((stored): Cursor => ({ sessionId, ...stored }))
      )

    const writeCursor = (cursor: Cursor) =>
      kv.set(
        cursorKey(cursor.sessionId),
        JSON.stringify({
          lastEventId: cursor.lastEventId,
          seq: cursor.seq,
          recentIds: cursor.recentIds,
          updatedAt: cursor.updatedAt
        })
      )

    const readOwner = (sessionId: string) => read(StoredOwner, ownerKey(sessionId))
    const writeOwner = (sessionId: string, owner: StoredOwner) => kv.set(ownerKey(sessionId), JSON.stringify(owner))

    /**
     * One operation at a time: its reads and the writes decided on them are not
     * interleaved with another's. Loads too: the file store rewrites a file in
     * place, so a read beside a write could see half a value.
     */
    const serial = (operation: CursorStoreError["operation"]) => <A, E>(effect: Effect.Effect<A, E>) =>
      lock.withPermits(1)(mapStoreFailure(operation)(effect))

    // A batch is not atomic: each session's check and write stand alone, so a
    // failure part way leaves the sessions before it written, as a retry would.
    const saveAll = (cursors: Iterable<Cursor>) =>
      Effect.suspend(() => {
        const lost: Array<SessionLost> = []
        const save = (cursor: Cursor) =>
          Effect.gen(function*() {
            if (cursor.epoch !== undefined) {
              const held = yield* readOwner(cursor.sessionId)
              if (Option.isNone(held) || held.value.epoch !== cursor.epoch) {
                lost.push(fenced(cursor))
                return
              }
            }
            const stored = yield* readCursor(cursor.sessionId)
            if (Option.isNone(stored) || cursor.seq > stored.value.seq) yield* writeCursor(cursor)
          })
        return Effect.as(Effect.forEach(newestPerSession(cursors).values(), save, { discard: true }), lost)
      }).pipe(serial("save"))

    // The verdict is decided under the lock and failed outside it, so SessionBusy stays itself.
    const acquire = (sessionId: string, owner: string, ttlMillis: number) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const held = yield* readOwner(sessionId)
        if (Option.isSome(held) && held.value.expiresAt > now) {
          const { owner: holder, expiresAt } = held.value
          return Effect.fail(new SessionBusy({ sessionId, owner: holder, expiresInMillis: expiresAt - now }))
        }
        const epoch = Option.match(held, { onNone: () => 0, onSome: (h) => h.epoch }) + 1
        yield* writeOwner(sessionId, { owner, epoch, expiresAt: now + ttlMillis })
        return Effect.succeed<Lease>({ sessionId, owner, epoch })
      }).pipe(serial("acquire"), Effect.flatten)

    const renew = (leases: ReadonlyArray<Lease>, ttlMillis: number) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const gone: Array<Lease> = []
        for (const lease of leases) {
          const held = yield* readOwner(lease.sessionId)
          if (Option.isNone(held) || held.value.epoch !== lease.epoch || held.value.expiresAt === released) {
            gone.push(lease)
          } else {
            yield* writeOwner(lease.sessionId, { ...held.value, expiresAt: now + ttlMillis })
          }
        }
        return gone
      }).pipe(serial("renew"))

    const release = (lease: Lease) =>
      Effect.gen(function*() {
        const held = yield* readOwner(lease.sessionId)
        if (Option.isSome(held) && held.value.epoch === lease.epoch) {
          yield* writeOwner(lease.sessionId, { ...held.value, expiresAt: released })
        }
      }).pipe(serial("release"))

    return {
      load: (sessionId) => serial("load")(readCursor(sessionId)),
      saveAll,
      remove: (sessionId) => serial("remove")(kv.remove(cursorKey(sessionId))),
      acquire,
      renew,
      release
    }
  })
