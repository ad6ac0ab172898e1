/**
 * Cursors and leases on a `KeyValueStore`, for `CursorStore.layerKeyValueStore` and
 * `LeaseStore.layerKeyValueStore`: one key per session for its cursor and one for
 * its lease, each a JSON value. A key-value store has no transactions and no
 * compare-and-set, so every check and the write after it are a read-modify-write;
 * one permit around every operation keeps them whole within this store (one
 * process, one tab).
 */
import type * as KeyValueStore from "@effect/platform/KeyValueStore"
import { Clock, Data, Effect, Option } from "effect"
import type { Cursor, CursorStore } from "../CursorStore.js"
import type { Lease, LeaseStore } from "../LeaseStore.js"
import { type CursorStoreError, mapStoreFailure, SessionBusy, type SessionLost } from "../StoreError.js"
import { fenced, keepingStream, newestPerSession } from "./cursorBatch.js"
import {
  BadValue,
  type Codec,
  cursorKey,
  ownerKey,
  type StoredCursor,
  storedCursor,
  type StoredOwner,
  storedOwner
} from "./keyValueValues.js"
import { blocks, holdsLease, released } from "./leaseRules.js"

/** Sessions of a batch not saved for a `BadValue` (the first is the cause); the batch's other sessions were. */
class SessionsNotSaved extends Data.TaggedError("SessionsNotSaved")<{
  readonly sessionIds: ReadonlyArray<string>
  readonly cause: BadValue
}> {
  override get message() {
    return `sessions not saved (the rest of the batch was): ${this.sessionIds.map((id) => JSON.stringify(id)).join(", ")}`
  }
}

/** Reads and writes of the two kinds of value, without the lock. */
const values = (kv: KeyValueStore.KeyValueStore) => {
  /** The value at `key` decoded, none if absent; a value of another shape fails (a `BadValue`). */
  const read = <A>(codec: Codec<A>, key: string) =>
    Effect.flatMap(kv.get(key), (text) => {
      if (Option.isNone(text)) return Effect.succeedNone
      const value = codec.decode(key, text.value)
      return value instanceof BadValue ? Effect.fail(value) : Effect.succeed(Option.some(value))
    })

  /** `value` as stored at `key`, or a `BadValue` if it would not read back. */
  const encode = <A>(codec: Codec<A>, key: string, value: A) =>
    Effect.suspend(() => {
      const text = codec.encode(key, value)
      return text instanceof BadValue ? Effect.fail(text) : Effect.succeed(text)
    })

  // Uninterruptible: the file store rewrites the file in place and aborts the
  // write when interrupted, which would leave the file cut short.
  const set = (key: string, text: string) => Effect.uninterruptible(kv.set(key, text))

  return {
    set,
    encodeCursor: (cursor: Cursor) => encode<StoredCursor>(storedCursor, cursorKey(cursor.sessionId), cursor),
    readCursor: (sessionId: string) =>
      Effect.map(read(storedCursor, cursorKey(sessionId)), Option.map((stored): Cursor => ({ sessionId, ...stored }))),
    readOwner: (sessionId: string) => read(storedOwner, ownerKey(sessionId)),
    writeOwner: (sessionId: string, owner: StoredOwner) =>
      Effect.flatMap(encode(storedOwner, ownerKey(sessionId), owner), (text) => set(ownerKey(sessionId), text))
  }
}

type Values = ReturnType<typeof values>
type Serial = (operation: CursorStoreError["operation"]) => <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, CursorStoreError>

const makeLeases = ({ readOwner, writeOwner }: Values, serial: Serial): LeaseStore["Type"] => ({
  // The verdict is decided under the lock and failed outside it, so SessionBusy stays itself.
  acquire: (sessionId, owner, ttlMillis) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const held = Option.getOrUndefined(yield* readOwner(sessionId))
      if (blocks(held, now)) {
        return Effect.fail(new SessionBusy({ sessionId, owner: held!.owner, expiresInMillis: held!.expiresAt - now }))
      }
      const epoch = (held?.epoch ?? 0) + 1
      yield* writeOwner(sessionId, { owner, epoch, expiresAt: now + ttlMillis })
      return Effect.succeed<Lease>({ sessionId, owner, epoch })
    }).pipe(serial("acquire"), Effect.flatten),
  renew: (leases, ttlMillis) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const gone: Array<Lease> = []
      for (const lease of leases) {
        const held = Option.getOrUndefined(yield* readOwner(lease.sessionId))
        if (holdsLease(held, lease)) yield* writeOwner(lease.sessionId, { ...held, expiresAt: now + ttlMillis })
        else gone.push(lease)
      }
      return gone
    }).pipe(serial("renew")),
  release: (lease) =>
    Effect.gen(function*() {
      const held = yield* readOwner(lease.sessionId)
      if (Option.isSome(held) && held.value.epoch === lease.epoch) {
        yield* writeOwner(lease.sessionId, { ...held.value, expiresAt: released })
      }
    }).pipe(serial("release"))
})

// A batch is not atomic: each session's check and write stand alone, so a
// failure part way leaves the sessions before it written, as a retry would.
// A session whose value is bad (stored unreadable, or new and unwritable)
// is skipped and the batch goes on, then fails naming it: the worker retries
// a failed batch whole, and the others must not wait on it.
const makeSaveAll = ({ encodeCursor, readCursor, readOwner, set }: Values) => (cursors: Iterable<Cursor>) =>
  Effect.suspend(() => {
    const lost: Array<SessionLost> = []
    const bad: Array<[string, BadValue]> = []
    const save = (cursor: Cursor) =>
      Effect.gen(function*() {
        // Encoded first: a NaN seq compares as old, and would pass for one without this check.
        yield* encodeCursor(cursor)
        if (cursor.epoch !== undefined) {
          const held = yield* readOwner(cursor.sessionId)
          if (Option.isNone(held) || held.value.epoch !== cursor.epoch) {
            lost.push(fenced(cursor))
            return
          }
        }
        const stored = Option.getOrUndefined(yield* readCursor(cursor.sessionId))
        if (stored === undefined || cursor.seq > stored.seq) {
          yield* set(cursorKey(cursor.sessionId), yield* encodeCursor(keepingStream(cursor, stored)))
        }
      }).pipe(Effect.catchTag("BadValue", (error) => Effect.sync(() => bad.push([cursor.sessionId, error]))))
    return Effect.forEach(newestPerSession(cursors).values(), save, { discard: true }).pipe(
      Effect.zipRight(Effect.suspend(() =>
        bad.length === 0
          ? Effect.succeed(lost)
          : Effect.fail(new SessionsNotSaved({ sessionIds: bad.map(([id]) => id), cause: bad[0]![1] }))
      ))
    )
  })

export const make = (
  kv: KeyValueStore.KeyValueStore
): Effect.Effect<{ readonly cursors: CursorStore["Type"]; readonly leases: LeaseStore["Type"] }> =>
  Effect.map(Effect.makeSemaphore(1), (lock) => {
    const stored = values(kv)
    /**
     * One operation at a time: its reads and the writes decided on them are not
     * interleaved with another's. Loads too: the file store rewrites a file in
     * place, so a read beside a write could see half a value.
     */
    const serial: Serial = (operation) => (effect) => lock.withPermits(1)(mapStoreFailure(operation)(effect))
    const leases = makeLeases(stored, serial)
    const saveAll = makeSaveAll(stored)
    return {
      cursors: {
        load: (sessionId) => serial("load")(stored.readCursor(sessionId)),
        saveAll: (cursors) => serial("save")(saveAll(cursors)),
        remove: (sessionId) => serial("remove")(kv.remove(cursorKey(sessionId))),
        ...leases
      },
      leases
    }
  })
