/**
 * Cursors and leases on a `KeyValueStore`, for `CursorStore.layerKeyValueStore`:
 * one key per session for its cursor and one for its lease, each a JSON value.
 * A key-value store has no transactions and no compare-and-set, so every check
 * and the write after it are a read-modify-write; one permit around every
 * operation keeps them whole within this store (one process, one tab).
 */
import type * as KeyValueStore from "@effect/platform/KeyValueStore"
import { Clock, Data, Effect, Option, Schema } from "effect"
import type { ParseError } from "effect/ParseResult"
import {
  type Cursor,
  type CursorStore,
  type CursorStoreError,
  fenced,
  holdsLease,
  type Lease,
  mapStoreFailure,
  newestPerSession,
  released,
  SessionBusy,
  type SessionLost
} from "../CursorStore.js"

/** Every key the store writes starts with this, so the store can share a `KeyValueStore` with other data. */
const keyPrefix = "effect-sse-resume/"
const cursorKey = (sessionId: string) => `${keyPrefix}cursor/${sessionId}`
const ownerKey = (sessionId: string) => `${keyPrefix}owner/${sessionId}`

/**
 * A cursor as stored under its session's key (the session id is the key's).
 * Values are encoded through it too: JSON has no NaN or Infinity (it writes
 * null) and no integer past 2^53, so a value it could not read back fails its
 * write instead of landing.
 */
const StoredCursor = Schema.parseJson(Schema.Struct({
  lastEventId: Schema.String,
  seq: Schema.Int,
  recentIds: Schema.optional(Schema.Array(Schema.String)),
  updatedAt: Schema.Finite
}))

/** A session's lease: `expiresAt` by this store's `Clock`, `released` once given up (its epoch kept). */
const StoredOwner = Schema.parseJson(Schema.Struct({
  owner: Schema.String,
  epoch: Schema.Int,
  expiresAt: Schema.Finite
}))
type StoredOwner = typeof StoredOwner.Type

/** A value under `key` that does not decode (read), or one that would not read back (write). */
class BadValue extends Data.TaggedError("BadValue")<{
  readonly key: string
  readonly writing: boolean
  readonly cause: ParseError
}> {
  override get message() {
    return this.writing ? `a value for ${this.key} that could not be read back` : `the value of ${this.key} does not read`
  }
}

/** Sessions of a batch not saved for a `BadValue` (the first is the cause); the batch's other sessions were. */
class SessionsNotSaved extends Data.TaggedError("SessionsNotSaved")<{
  readonly sessionIds: ReadonlyArray<string>
  readonly cause: BadValue
}> {
  override get message() {
    return `sessions not saved (the rest of the batch was): ${this.sessionIds.map((id) => JSON.stringify(id)).join(", ")}`
  }
}

export const make = (
  kv: KeyValueStore.KeyValueStore
): Effect.Effect<typeof CursorStore.Service> =>
  Effect.map(Effect.makeSemaphore(1), (lock) => {
    /** The value at `key` decoded, none if absent; a value of another shape fails (a `BadValue`). */
    const read = <A>(schema: Schema.Schema<A, string>, key: string) =>
      Effect.flatMap(
        kv.get(key),
        Option.match({
          onNone: () => Effect.succeedNone,
          onSome: (text) =>
            Schema.decode(schema)(text).pipe(
              Effect.mapError((cause) => new BadValue({ key, writing: false, cause })),
              Effect.asSome
            )
        })
      )

    /** `value` as stored at `key`, or a `BadValue` if it would not read back. */
    const encode = <A>(schema: Schema.Schema<A, string>, key: string, value: A) =>
      Effect.mapError(Schema.encode(schema)(value), (cause) => new BadValue({ key, writing: true, cause }))

    // Uninterruptible: the file store rewrites the file in place and aborts the
    // write when interrupted, which would leave the file cut short.
    const set = (key: string, text: string) => Effect.uninterruptible(kv.set(key, text))

    const readCursor = (sessionId: string) =>
      Effect.map(
        read(StoredCursor, cursorKey(sessionId)),
        Option.map((stored): Cursor => ({ sessionId, ...stored }))
      )

    const readOwner = (sessionId: string) => read(StoredOwner, ownerKey(sessionId))
    const writeOwner = (sessionId: string, owner: StoredOwner) =>
      Effect.flatMap(encode(StoredOwner, ownerKey(sessionId), owner), (text) => set(ownerKey(sessionId), text))

    /**
     * One operation at a time: its reads and the writes decided on them are not
     * interleaved with another's. Loads too: the file store rewrites a file in
     * place, so a read beside a write could see half a value.
     */
    const serial = (operation: CursorStoreError["operation"]) => <A, E>(effect: Effect.Effect<A, E>) =>
      lock.withPermits(1)(mapStoreFailure(operation)(effect))

    // A batch is not atomic: each session's check and write stand alone, so a
    // failure part way leaves the sessions before it written, as a retry would.
    // A session whose value is bad (stored unreadable, or new and unwritable)
    // is skipped and the batch goes on, then fails naming it: the worker retries
    // a failed batch whole, and the others must not wait on it.
    const saveAll = (cursors: Iterable<Cursor>) =>
      Effect.suspend(() => {
        const lost: Array<SessionLost> = []
        const bad: Array<[string, BadValue]> = []
        const save = (cursor: Cursor) =>
          Effect.gen(function*() {
            // Encoded first (the schema drops the session id and epoch): a NaN seq
            // compares as old, and would pass for one without this check.
            const text = yield* encode(StoredCursor, cursorKey(cursor.sessionId), cursor)
            if (cursor.epoch !== undefined) {
              const held = yield* readOwner(cursor.sessionId)
              if (Option.isNone(held) || held.value.epoch !== cursor.epoch) {
                lost.push(fenced(cursor))
                return
              }
            }
            const stored = yield* readCursor(cursor.sessionId)
            if (Option.isNone(stored) || cursor.seq > stored.value.seq) yield* set(cursorKey(cursor.sessionId), text)
          }).pipe(Effect.catchTag("BadValue", (error) => Effect.sync(() => bad.push([cursor.sessionId, error]))))
        return Effect.forEach(newestPerSession(cursors).values(), save, { discard: true }).pipe(
          Effect.zipRight(Effect.suspend(() =>
            bad.length === 0
              ? Effect.succeed(lost)
              : Effect.fail(new SessionsNotSaved({ sessionIds: bad.map(([id]) => id), cause: bad[0]![1] }))
          ))
        )
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
          const held = Option.getOrUndefined(yield* readOwner(lease.sessionId))
          if (holdsLease(held, lease)) yield* writeOwner(lease.sessionId, { ...held, expiresAt: now + ttlMillis })
          else gone.push(lease)
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
