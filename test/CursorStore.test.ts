import { describe, expect, it, layer } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Option, Queue, Redacted, TestServices } from "effect"
import * as fc from "fast-check"
import { type Cursor, CursorStore } from "../src/store/CursorStore.js"
import * as Cursors from "../src/store/CursorStore.js"
import { LeaseStore } from "../src/store/LeaseStore.js"
import { keyValueFileStore, keyValueTempStore, notePgSkip, pgStore, pgUrl, runId, sqliteStore, tempDir } from "./support/stores.js"
import { SystemError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { existsSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as PersistenceWorker from "../src/session/PersistenceWorker.js"
import * as PgCursorStore from "../src/engines/PgCursorStore.js"
import * as SessionManager from "../src/session/SessionManager.js"
import * as SqliteCursorStore from "../src/engines/SqliteCursorStore.js"
import { SseEvent } from "../src/wire/SseEvent.js"

const cursor = (sessionId: string, seq: number, recentIds?: ReadonlyArray<string>): Cursor => ({
  sessionId,
  lastEventId: `e${seq}`,
  seq,
  recentIds,
  updatedAt: 1_700_000_000_000 + seq
})

/** The `SessionBusy` an acquire fails with (a store error is a defect here). */
const busyOf = <A>(acquiring: Effect.Effect<A, Cursors.SessionBusy | Cursors.CursorStoreError>) =>
  Effect.flip(Effect.catchTag(acquiring, "CursorStoreError", Effect.die))

const contract = (name: string, store: Layer.Layer<CursorStore | LeaseStore, unknown>) =>
  layer(store, { timeout: "20 seconds" })(name, (it) => {
    let n = 0
    const fresh = (label: string) => `${runId}-${name}-${label}-${n++}`

    it.effect("loads nothing for an unknown session", () =>
      Effect.gen(function*() {
        const store = yield* CursorStore
        expect(Option.isNone(yield* store.load(fresh("none")))).toBe(true)
      }))

    it.effect("round-trips a cursor, seq and updatedAt as numbers", () =>
      Effect.gen(function*() {
        const store = yield* CursorStore
        const id = fresh("round")
        yield* store.saveAll([cursor(id, 7, ["e5", "e6", "e7"])])
        const loaded = Option.getOrThrow(yield* store.load(id))
        expect(loaded).toEqual(cursor(id, 7, ["e5", "e6", "e7"]))
        expect(typeof loaded.seq).toBe("number")
        expect(typeof loaded.updatedAt).toBe("number")
        yield* store.saveAll([cursor(id, 8)])
        expect(Option.getOrThrow(yield* store.load(id)).recentIds).toBeUndefined()
      }))

    it.effect("never moves a cursor backwards, across saves and within one batch", () =>
      Effect.gen(function*() {
        const store = yield* CursorStore
        const id = fresh("back")
        yield* store.saveAll([cursor(id, 5)])
        yield* store.saveAll([cursor(id, 3)])
        yield* store.saveAll([cursor(id, 5)])
        expect(Option.getOrThrow(yield* store.load(id)).lastEventId).toBe("e5")
        yield* store.saveAll([cursor(id, 9), cursor(id, 6)])
        expect(Option.getOrThrow(yield* store.load(id)).seq).toBe(9)
      }))

    it.effect("a cursor of the same seq does not replace the stored one", () =>
      Effect.gen(function*() {
        const store = yield* CursorStore
        const id = fresh("same")
        yield* store.saveAll([cursor(id, 5)])
        yield* store.saveAll([{ ...cursor(id, 5), lastEventId: "late retry" }])
        expect(Option.getOrThrow(yield* store.load(id)).lastEventId).toBe("e5")
      }))

    it.effect("stores the stream a cursor was read from; a save without one keeps it", () =>
      Effect.gen(function*() {
        const store = yield* CursorStore
        const id = fresh("stream")
        yield* store.saveAll([cursor(id, 1)])
        expect(Option.getOrThrow(yield* store.load(id)).stream).toBeUndefined()
        yield* store.saveAll([{ ...cursor(id, 2), stream: "GET https://a.example/events" }])
        expect(Option.getOrThrow(yield* store.load(id)).stream).toBe("GET https://a.example/events")
        yield* store.saveAll([cursor(id, 3)])
        const kept = Option.getOrThrow(yield* store.load(id))
        expect([kept.seq, kept.stream]).toEqual([3, "GET https://a.example/events"])
        yield* store.saveAll([{ ...cursor(id, 4), stream: "POST https://b.example/mcp" }])
        expect(Option.getOrThrow(yield* store.load(id)).stream).toBe("POST https://b.example/mcp")
      }))

    it.effect.prop(
      "any order of saves leaves the highest seq per session",
      [fc.array(fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 1_000 })), { maxLength: 6 }), { minLength: 1, maxLength: 6 })],
      ([batches]) =>
        Effect.gen(function*() {
          const store = yield* CursorStore
          const prefix = fresh("prop")
          const highest = new Map<number, number>()
          for (const batch of batches) {
            yield* store.saveAll(batch.map(([s, seq]) => cursor(`${prefix}-${s}`, seq)))
            for (const [s, seq] of batch) highest.set(s, Math.max(seq, highest.get(s) ?? 0))
          }
          for (let s = 0; s < 4; s++) {
            const loaded = yield* store.load(`${prefix}-${s}`)
            expect(Option.map(loaded, (c) => [c.seq, c.lastEventId])).toEqual(
              highest.has(s) ? Option.some([highest.get(s), `e${highest.get(s)}`]) : Option.none()
            )
          }
        }),
      { fastCheck: { numRuns: 25 } }
    )

    it.effect("saves more rows than one statement holds, in one call", () =>
      Effect.gen(function*() {
        const store = yield* CursorStore
        const prefix = fresh("many")
        yield* store.saveAll(Array.from({ length: 1_234 }, (_, i) => cursor(`${prefix}-${i}`, i + 1)))
        expect(Option.getOrThrow(yield* store.load(`${prefix}-1233`)).seq).toBe(1_234)
        expect(Option.getOrThrow(yield* store.load(`${prefix}-0`)).seq).toBe(1)
      }))

    it.effect("binds hostile ids as data", () =>
      Effect.gen(function*() {
        const store = yield* CursorStore
        const id = `${fresh("evil")}'); DROP TABLE sse_resume_cursors; --`
        yield* store.saveAll([{ ...cursor(id, 1), lastEventId: "x' OR '1'='1" }])
        expect(Option.getOrThrow(yield* store.load(id)).lastEventId).toBe("x' OR '1'='1")
      }))

    it.effect("removes a session", () =>
      Effect.gen(function*() {
        const store = yield* CursorStore
        const id = fresh("rm")
        yield* store.saveAll([cursor(id, 1)])
        yield* store.remove(id)
        expect(Option.isNone(yield* store.load(id))).toBe(true)
      }))

    it.effect("a cursor with a stale epoch is refused in the writing transaction; the rest of the batch is written", () =>
      Effect.gen(function*() {
        const store = yield* CursorStore
        const leases = yield* LeaseStore
        const id = fresh("fence")
        const other = fresh("fence-other")
        const a = yield* leases.acquire(id, "a", 150)
        expect(yield* store.saveAll([{ ...cursor(id, 5), epoch: a.epoch }])).toEqual([])
        yield* Effect.sleep("250 millis")
        const b = yield* leases.acquire(id, "b", 10_000)
        expect(yield* store.saveAll([{ ...cursor(id, 7), epoch: b.epoch }])).toEqual([])
        // The paused old owner comes back with a newer-looking cursor.
        const lost = yield* store.saveAll([{ ...cursor(id, 20), epoch: a.epoch }, cursor(other, 3)])
        expect(lost).toHaveLength(1)
        expect(lost[0]).toMatchObject({ _tag: "SessionLost", sessionId: id, epoch: a.epoch, reason: "fenced" })
        expect(Option.getOrThrow(yield* store.load(id)).seq).toBe(7)
        expect(Option.getOrThrow(yield* store.load(other)).seq).toBe(3)
        // An epoch the session never had is refused too.
        const never = fresh("fence-never")
        expect(yield* store.saveAll([{ ...cursor(never, 1), epoch: 1 }])).toHaveLength(1)
        expect(Option.isNone(yield* store.load(never))).toBe(true)
      }).pipe(TestServices.provideLive))
  })

contract("memory", Cursors.layerMemory)
contract("sqlite", sqliteStore)
contract("key-value memory", Layer.provide(Cursors.layerKeyValueStore, KeyValueStore.layerMemory))
contract("key-value files", keyValueTempStore)

describe("CursorStore.layerSql on a damaged row", () => {
  it.scoped("a window that is not a JSON array of strings is a typed load error", () =>
    Effect.gen(function*() {
      const filename = join(yield* tempDir("sse-corrupt-"), "cursors.db")
      const context = yield* Layer.build(Layer.provideMerge(Cursors.layerSql, SqliteClient.layer({ filename })))
      const store = Context.get(context, CursorStore)
      const sql = Context.get(context, SqlClient.SqlClient)
      yield* store.saveAll([cursor("damaged", 3, ["e1", "e2", "e3"])])
      yield* sql`UPDATE sse_resume_cursors SET recent_ids = ${"[\"e1\", 2"} WHERE session_id = ${"damaged"}`
      const error = yield* Effect.flip(store.load("damaged"))
      expect(error._tag).toBe("CursorStoreError")
      expect(error.operation).toBe("load")
      expectOneLine(error.message, /^load failed: .*Expected/)
    }))
})

/** The store and its transactions on `engine`, built in the test's scope. */
const sqlStoreOf = (engine: "sqlite" | "pg") =>
  Effect.gen(function*() {
    const layer = engine === "pg"
      ? PgCursorStore.layer(pgUrl!)
      : SqliteCursorStore.layer(join(yield* tempDir("sse-commit-"), "cursors.db"))
    const context = yield* Layer.build(layer)
    return { store: Context.get(context, CursorStore), transactions: Context.get(context, Cursors.CursorTransactions) }
  })

const sqlEngines = (["sqlite", "pg"] as const).filter((engine) => engine === "sqlite" || pgUrl !== undefined)

describe.each(sqlEngines)("CursorTransactions.commit on %s", (engine) => {
  // The events a commit hands to its handler were judged new against previousSeq:
  // a cursor that moved since (even forwards) means they may be handled twice.
  it.scoped("a commit whose previousSeq is no longer the stored seq is a CursorConflict and keeps nothing, even with a higher seq", () =>
    Effect.gen(function*() {
      const { store, transactions } = yield* sqlStoreOf(engine)
      const id = `${runId}-cas-${engine}`
      const table = `sse_test_work_${engine}_${process.pid}`
      yield* transactions.sql`CREATE TABLE IF NOT EXISTS ${transactions.sql(table)} (n INTEGER)`
      yield* store.saveAll([cursor(id, 5)])
      const work = transactions.sql`INSERT INTO ${transactions.sql(table)} (n) VALUES (1)`.pipe(Effect.asVoid)
      const stale = yield* Effect.flip(
        transactions.commit({ sessionId: id, epoch: undefined, previousSeq: 3, cursor: cursor(id, 9) }, work)
      )
      expect(stale).toMatchObject({ _tag: "CursorConflict", sessionId: id, previousSeq: 3 })
      expect(Option.getOrThrow(yield* store.load(id)).seq).toBe(5)
      expect(yield* transactions.sql`SELECT n FROM ${transactions.sql(table)}`).toHaveLength(0)
      // At the stored seq it commits, the work with it.
      yield* transactions.commit({ sessionId: id, epoch: undefined, previousSeq: 5, cursor: cursor(id, 9) }, work)
      expect(Option.getOrThrow(yield* store.load(id)).seq).toBe(9)
      expect(yield* transactions.sql`SELECT n FROM ${transactions.sql(table)}`).toHaveLength(1)
      yield* transactions.sql`DROP TABLE ${transactions.sql(table)}`
    }))
})

describe("CursorStore.layerSql on SQLite", () => {
  it.scoped("two stores on one file, writing out of order, never move a cursor backwards", () =>
    Effect.gen(function*() {
      const filename = join(yield* tempDir("sse-two-"), "cursors.db")
      const a = Context.get(yield* Layer.build(SqliteCursorStore.layer(filename)), CursorStore)
      const b = Context.get(yield* Layer.build(SqliteCursorStore.layer(filename)), CursorStore)
      for (let i = 0; i < 40; i++) yield* (i % 2 === 0 ? a : b).saveAll([cursor("s", (i * 7919) % 41 + 1)])
      expect(Option.getOrThrow(yield* b.load("s")).seq).toBe(41)
      yield* a.saveAll([cursor("s", 40)])
      expect(Option.getOrThrow(yield* b.load("s")).lastEventId).toBe("e41")
    }))

  it.scoped("a cursor table made before streams were stored gets the column; its rows load", () =>
    Effect.gen(function*() {
      const filename = join(yield* tempDir("sse-migrate-"), "cursors.db")
      yield* Effect.scoped(Effect.gen(function*() {
        const sql = Context.get(yield* Layer.build(SqliteClient.layer({ filename })), SqlClient.SqlClient)
        yield* sql`CREATE TABLE sse_resume_cursors (
          session_id TEXT PRIMARY KEY, last_event_id TEXT NOT NULL, seq BIGINT NOT NULL,
          recent_ids TEXT, updated_at BIGINT NOT NULL)`
        yield* sql`INSERT INTO sse_resume_cursors VALUES ('old', 'e3', 3, NULL, 0)`
      }))
      for (let open = 0; open < 2; open++) {
        const store = Context.get(yield* Layer.build(SqliteCursorStore.layer(filename)), CursorStore)
        expect(Option.getOrThrow(yield* store.load("old")).lastEventId).toBe(`e${3 + open}`)
        yield* store.saveAll([{ ...cursor("old", 4), stream: "GET http://x/" }])
        expect(Option.getOrThrow(yield* store.load("old")).stream).toBe("GET http://x/")
      }
    }))
})

/** A store error's message: one line that names the reason (no stack, no multi-line parse tree). */
const expectOneLine = (message: string, reason: RegExp) => {
  expect(message).not.toMatch(/\n/)
  expect(message).toMatch(reason)
}

/** The error of building `store`, which must fail (typed: a defect fails the test instead). */
const openError = (store: Layer.Layer<CursorStore, Cursors.CursorStoreError>) =>
  Effect.scoped(Effect.flip(Layer.build(store)))

describe("a store that cannot be opened, read or written fails with a typed CursorStoreError naming the reason", () => {
  it.scoped("SQLite on a directory", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("sse-store-dir-")
      const error = yield* openError(SqliteCursorStore.layer(dir))
      expect(error.operation).toBe("open")
      expectOneLine(error.message, /^open failed: unable to open database file$/)
    }))

  it.scoped("SQLite on a file that is not a database", () =>
    Effect.gen(function*() {
      const filename = join(yield* tempDir("sse-store-corrupt-"), "cursors.db")
      writeFileSync(filename, "not a database, just text that is long enough to fill a SQLite header".repeat(4))
      const error = yield* openError(SqliteCursorStore.layer(filename))
      expect(error.operation).toBe("open")
      expectOneLine(error.message, /^open failed: file is not a database$/)
    }))

  it.scoped("SQLite under a path whose parent is a file", () =>
    Effect.gen(function*() {
      const file = join(yield* tempDir("sse-store-notdir-"), "file")
      writeFileSync(file, "")
      const error = yield* openError(SqliteCursorStore.layer(join(file, "sub", "cursors.db")))
      expectOneLine(error.message, /^open failed: (EEXIST|ENOTDIR): .*mkdir/)
    }))

  // sysfs refuses new files even to root, so this holds whoever runs the tests.
  it.effect.skipIf(!existsSync("/sys/kernel"))("SQLite where no file can be created", () =>
    Effect.gen(function*() {
      const error = yield* openError(SqliteCursorStore.layer("/sys/sse-resume-cursors.db"))
      expectOneLine(error.message, /^open failed: unable to open database file$/)
    }))

  it.scoped("a read-only SQLite database: loads work, saves and removes fail", () =>
    Effect.gen(function*() {
      const filename = join(yield* tempDir("sse-store-ro-"), "cursors.db")
      yield* Effect.scoped(Effect.flatMap(
        Layer.build(SqliteCursorStore.layer(filename)),
        (context) => Context.get(context, CursorStore).saveAll([cursor("ro", 1)])
      ))
      const readOnly = Layer.provide(Cursors.layerSql, SqliteClient.layer({ filename, readonly: true }))
      const store = Context.get(yield* Layer.build(readOnly), CursorStore)
      expect(Option.getOrThrow(yield* store.load("ro")).seq).toBe(1)
      const save = yield* Effect.flip(store.saveAll([cursor("ro", 2)]))
      expect(save.operation).toBe("save")
      expectOneLine(save.message, /^save failed: .*attempt to write a readonly database$/)
      const remove = yield* Effect.flip(store.remove("ro"))
      expectOneLine(remove.message, /^remove failed: .*attempt to write a readonly database$/)
    }))

  it.scoped("a table gone from under an open store: load, save and remove each fail with the reason", () =>
    Effect.gen(function*() {
      const filename = join(yield* tempDir("sse-store-gone-"), "cursors.db")
      const context = yield* Layer.build(Layer.provideMerge(Cursors.layerSql, SqliteClient.layer({ filename })))
      const store = Context.get(context, CursorStore)
      yield* Context.get(context, SqlClient.SqlClient)`DROP TABLE sse_resume_cursors`
      for (const [operation, attempt] of [
        ["load", store.load("x")],
        ["save", store.saveAll([cursor("x", 1)])],
        ["remove", store.remove("x")]
      ] as const) {
        const error = yield* Effect.flip(attempt as Effect.Effect<unknown, Cursors.CursorStoreError>)
        expect(error.operation).toBe(operation)
        expectOneLine(error.message, new RegExp(`^${operation} failed: .*no such table: sse_resume_cursors$`))
      }
    }))

  it.effect("PostgreSQL at a malformed URL, without echoing it (it may hold a password)", () =>
    Effect.gen(function*() {
      for (const url of ["not a url", "http://user:secret@127.0.0.1:1/db"]) {
        const error = yield* openError(PgCursorStore.layer(url))
        expectOneLine(error.message, /^open failed: not a PostgreSQL URL/)
        expect(error.message).not.toContain("secret")
      }
    }))

  it.effect("PostgreSQL that refuses the connection", () =>
    Effect.gen(function*() {
      const error = yield* openError(PgCursorStore.layer("postgres://postgres:secret@127.0.0.1:1/test"))
      expectOneLine(error.message, /^open failed: .*ECONNREFUSED 127\.0\.0\.1:1$/)
      expect(error.message).not.toContain("secret")
    }))

  it.effect.skipIf(pgUrl === undefined)("PostgreSQL without the database named", () =>
    Effect.gen(function*() {
      const url = new URL(pgUrl!)
      url.pathname = `/no_such_db_${runId.replace(/\W/g, "_")}`
      const error = yield* openError(PgCursorStore.layer(url.toString()))
      expectOneLine(error.message, /^open failed: .*database "no_such_db_\w+" does not exist$/)
    }))

  it("an error without a message of its own, as Node reports a refused dual-stack connection, lists its parts", () => {
    const refused = new AggregateError([new Error("connect ECONNREFUSED ::1:5432"), new Error("connect ECONNREFUSED 127.0.0.1:5432")])
    expect(new Cursors.CursorStoreError({ operation: "open", cause: refused }).message).toBe(
      "open failed: connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432"
    )
  })
})

notePgSkip("CursorStore")
const PgClientLayer = () => PgClient.layer({ url: Redacted.make(pgUrl!) })
describe.skipIf(pgUrl === undefined)("postgres", () => {
  contract("pg", Layer.suspend(pgStore))

  it.effect("two stores on one database never move a cursor backwards", () =>
    Effect.gen(function*() {
      const a = Context.get(yield* Layer.build(pgStore()), CursorStore)
      const b = Context.get(yield* Layer.build(pgStore()), CursorStore)
      const id = `${runId}-pg-two`
      // Interleaved, out-of-order writers: the survivor is the highest seq.
      yield* Effect.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).saveAll([cursor(id, (i * 7919) % 41 + 1)])),
        { concurrency: 8 }
      )
      expect(Option.getOrThrow(yield* a.load(id)).seq).toBe(41)
    }).pipe(Effect.scoped))

  it.effect("a cursor table without the stream column gets it back when a store opens", () =>
    Effect.gen(function*() {
      const first = yield* Layer.build(pgStore())
      const id = `${runId}-pg-migrate`
      yield* Context.get(first, CursorStore).saveAll([cursor(id, 1)])
      const sql = Context.get(yield* Layer.build(PgClientLayer()), SqlClient.SqlClient)
      yield* sql`ALTER TABLE sse_resume_cursors DROP COLUMN stream`
      const store = Context.get(yield* Layer.build(pgStore()), CursorStore)
      expect(Option.getOrThrow(yield* store.load(id)).seq).toBe(1)
      yield* store.saveAll([{ ...cursor(id, 2), stream: "GET http://x/" }])
      expect(Option.getOrThrow(yield* store.load(id)).stream).toBe("GET http://x/")
    }).pipe(Effect.scoped))

  it.effect("two stores writing overlapping sessions in opposite orders do not deadlock", () =>
    Effect.gen(function*() {
      const a = Context.get(yield* Layer.build(pgStore()), CursorStore)
      const b = Context.get(yield* Layer.build(pgStore()), CursorStore)
      const ids = Array.from({ length: 400 }, (_, i) => `${runId}-order-${i}`)
      for (let round = 1; round <= 10; round++) {
        const forward = ids.map((id) => cursor(id, round * 2))
        const backward = [...ids].reverse().map((id) => cursor(id, round * 2 + 1))
        yield* Effect.all([a.saveAll(forward), b.saveAll(backward)], { concurrency: 2 })
      }
      expect(Option.getOrThrow(yield* a.load(ids[0]!)).seq).toBe(21)
    }).pipe(Effect.scoped), 30_000)
})

/**
 * The Web Storage API (`localStorage`'s interface) on a Map, with a quota as
 * browsers have (about 5 MB an origin): a write past it throws QuotaExceededError.
 */
class QuotaStorage implements Storage {
  readonly items = new Map<string, string>()
  /** Writes per key. */
  readonly writes = new Map<string, number>()
  constructor(readonly quota = Infinity) {}
  get length() {
    return this.items.size
  }
  key(index: number) {
    return [...this.items.keys()][index] ?? null
  }
  getItem(key: string) {
    return this.items.get(key) ?? null
  }
  setItem(key: string, value: string) {
    let used = key.length + value.length
    for (const [k, v] of this.items) if (k !== key) used += k.length + v.length
    if (used > this.quota) throw new DOMException("The quota has been exceeded.", "QuotaExceededError")
    this.items.set(key, value)
    this.writes.set(key, (this.writes.get(key) ?? 0) + 1)
  }
  removeItem(key: string) {
    this.items.delete(key)
  }
  clear() {
    this.items.clear()
  }
}

/** The store as a browser tab has it: `localStorage` through `KeyValueStore.layerStorage`. */
const storageStore = (storage: Storage) => Layer.provide(Cursors.layerKeyValueStore, KeyValueStore.layerStorage(() => storage))

contract("key-value Web Storage", storageStore(new QuotaStorage()))

/** The store over `storage`, built in the test's scope. */
const storeOn = (storage: Storage) => Effect.map(Layer.build(storageStore(storage)), Context.get(CursorStore))

describe("CursorStore.layerKeyValueStore", () => {
  it.scoped("keeps its keys under effect-sse-resume/, values as JSON", () =>
    Effect.gen(function*() {
      const storage = new QuotaStorage()
      const store = yield* storeOn(storage)
      yield* store.saveAll([cursor("s", 2, ["e1", "e2"])])
      yield* store.acquire("s", "tab-1", 10_000)
      expect([...storage.items.keys()].sort()).toEqual(["effect-sse-resume/cursor/s", "effect-sse-resume/owner/s"])
      expect(JSON.parse(storage.getItem("effect-sse-resume/cursor/s")!)).toEqual({
        lastEventId: "e2",
        seq: 2,
        recentIds: ["e1", "e2"],
        updatedAt: cursor("s", 2).updatedAt
      })
    }))

  it.scoped("a batch writes each session's key once, with its newest cursor", () =>
    Effect.gen(function*() {
      const storage = new QuotaStorage()
      const store = yield* storeOn(storage)
      yield* store.saveAll(Array.from({ length: 300 }, (_, i) => cursor(`s${i % 3}`, i + 1)))
      expect([...storage.writes.values()]).toEqual([1, 1, 1])
      expect(Option.getOrThrow(yield* store.load("s2")).seq).toBe(300)
    }))

  it.scoped("a corrupt or foreign value is a typed error of the operation that read it; remove clears it", () =>
    Effect.gen(function*() {
      const storage = new QuotaStorage()
      const store = yield* storeOn(storage)
      for (const value of ["{\"lastEventId\":\"e1\",\"seq\":", "{\"theme\":\"dark\"}", "{\"lastEventId\":\"e1\",\"seq\":1.5,\"updatedAt\":0}", "42"]) {
        storage.setItem("effect-sse-resume/cursor/s", value)
        const load = yield* Effect.flip(store.load("s"))
        expect(load).toMatchObject({ _tag: "CursorStoreError", operation: "load" })
        expectOneLine(load.message, /^load failed: /)
        // A save cannot tell whether it moves the cursor forwards, so it does not overwrite.
        expect(yield* Effect.flip(store.saveAll([cursor("s", 9)]))).toMatchObject({ operation: "save" })
        expect(storage.getItem("effect-sse-resume/cursor/s")).toBe(value)
      }
      yield* store.remove("s")
      yield* store.saveAll([cursor("s", 1)])
      expect(Option.getOrThrow(yield* store.load("s")).seq).toBe(1)

      storage.setItem("effect-sse-resume/owner/s", "[]")
      for (const [operation, attempt] of [
        ["acquire", store.acquire("s", "tab-1", 10_000)],
        ["renew", store.renew([{ sessionId: "s", owner: "tab-1", epoch: 1 }], 10_000)],
        ["release", store.release({ sessionId: "s", owner: "tab-1", epoch: 1 })],
        ["save", store.saveAll([{ ...cursor("s", 2), epoch: 1 }])]
      ] as const) {
        const error = yield* Effect.flip(attempt as Effect.Effect<unknown, Cursors.CursorStoreError | Cursors.SessionBusy>)
        expect(error).toMatchObject({ _tag: "CursorStoreError", operation })
      }
    }))

  it.scoped("a full localStorage fails the save with a typed error; the stored cursor stays and loads", () =>
    Effect.gen(function*() {
      const storage = new QuotaStorage(400)
      const store = yield* storeOn(storage)
      yield* store.saveAll([cursor("s", 1)])
      const error = yield* Effect.flip(store.saveAll([cursor("s", 2, Array.from({ length: 50 }, (_, i) => `id-${i}`))]))
      expect(error.operation).toBe("save")
      expectOneLine(error.message, /^save failed: PermissionDenied: KeyValueStore\.set \(effect-sse-resume\/cursor\/s\)/)
      expect(Option.getOrThrow(yield* store.load("s")).seq).toBe(1)
    }))

  it.scoped("every failure of the key-value store is a CursorStoreError naming the operation and the reason", () =>
    Effect.gen(function*() {
      const broken = (method: string) =>
        Effect.fail(new SystemError({ reason: "Unknown", module: "KeyValueStore", method, description: "disk on fire" }))
      const kv = KeyValueStore.makeStringOnly({
        get: () => broken("get"),
        set: () => broken("set"),
        remove: () => broken("remove"),
        clear: broken("clear"),
        size: broken("size")
      })
      const context = yield* Layer.build(Layer.provide(Cursors.layerKeyValueStore, Layer.succeed(KeyValueStore.KeyValueStore, kv)))
      const store = Context.get(context, CursorStore)
      const lease = { sessionId: "s", owner: "a", epoch: 1 }
      for (const [operation, method, attempt] of [
        ["load", "get", store.load("s")],
        ["save", "get", store.saveAll([cursor("s", 1)])],
        ["remove", "remove", store.remove("s")],
        ["acquire", "get", store.acquire("s", "a", 1_000)],
        ["renew", "get", store.renew([lease], 1_000)],
        ["release", "get", store.release(lease)]
      ] as const) {
        const error = yield* Effect.flip(attempt as Effect.Effect<unknown, Cursors.CursorStoreError | Cursors.SessionBusy>)
        expect(error).toMatchObject({ _tag: "CursorStoreError", operation })
        expectOneLine(error.message, new RegExp(`^${operation} failed: Unknown: KeyValueStore\\.${method}: disk on fire$`))
      }
    }))

  it.scoped("cursors and leases outlive the store: a new one over the same directory (a restart) sees them", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("sse-kv-restart-")
      const before = yield* Effect.scoped(Effect.gen(function*() {
        const store = Context.get(yield* Layer.build(keyValueFileStore(dir)), CursorStore)
        const lease = yield* store.acquire("s", "process-1", 60_000)
        yield* store.saveAll([{ ...cursor("s", 7, ["e6", "e7"]), epoch: lease.epoch }])
        return lease
      }))
      const store = Context.get(yield* Layer.build(keyValueFileStore(dir)), CursorStore)
      expect(Option.getOrThrow(yield* store.load("s"))).toEqual(cursor("s", 7, ["e6", "e7"]))
      expect((yield* busyOf(store.acquire("s", "process-2", 60_000))).owner).toBe("process-1")
      yield* store.release(before)
      expect((yield* store.acquire("s", "process-2", 60_000)).epoch).toBe(before.epoch + 1)
      expect(yield* store.saveAll([{ ...cursor("s", 9), epoch: before.epoch }])).toHaveLength(1)
    }).pipe(TestServices.provideLive))

  // Each operation is several reads and writes of files: without one operation at a
  // time, two fibers interleave them, and a lower seq or a second owner gets in, or
  // a load reads a file that a save has just emptied to rewrite.
  it.scoped("fibers saving, acquiring and loading one session at once keep the contract", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("sse-kv-race-")
      const store = Context.get(yield* Layer.build(keyValueFileStore(dir)), CursorStore)
      for (let round = 0; round < 5; round++) {
        const id = `race-${round}`
        yield* Effect.all(
          Array.from({ length: 40 }, (_, i) => store.saveAll([cursor(id, (i * 7919) % 41 + 1)])),
          { concurrency: "unbounded", discard: true }
        )
        expect(Option.getOrThrow(yield* store.load(id)).seq).toBe(41)
        const acquired = yield* Effect.all(
          Array.from({ length: 8 }, (_, i) => Effect.either(store.acquire(id, `fiber-${i}`, 60_000))),
          { concurrency: "unbounded" }
        )
        expect(acquired.filter((result) => result._tag === "Right").map((result) => result.right.epoch)).toEqual([1])
      }
      // A file is rewritten in place: a load beside a save must not see it half written.
      const window = Array.from({ length: 500 }, (_, i) => `event-id-${i}`)
      yield* store.saveAll([cursor("race", 1, window)])
      const saves = Effect.forEach(Array.from({ length: 200 }, (_, i) => i + 2), (seq) => store.saveAll([cursor("race", seq, window)]))
      const loads = Effect.forEach(Array.from({ length: 400 }), () => store.load("race"), { concurrency: 2 })
      const [, loaded] = yield* Effect.all([saves, loads], { concurrency: 2 })
      expect(loaded.every((stored) => Option.getOrThrow(stored).recentIds?.length === 500)).toBe(true)
    }).pipe(TestServices.provideLive))
})

describe("CursorStore.layerKeyValueStore on values it cannot read or write", () => {
  // The worker retries a failed batch whole: a session held up by one bad value
  // would wait on it for good.
  it.scoped("a session whose stored value does not read fails the batch, naming it, after every other session is written", () =>
    Effect.gen(function*() {
      const storage = new QuotaStorage()
      const store = yield* storeOn(storage)
      yield* store.saveAll([cursor("a", 1), cursor("b", 1), cursor("z", 1)])
      const torn = "{\"lastEventId\":\"e1\",\"se"
      storage.setItem("effect-sse-resume/cursor/b", torn)
      const error = yield* Effect.flip(store.saveAll([cursor("a", 5), cursor("b", 5), cursor("z", 5)]))
      expect(error).toMatchObject({ _tag: "CursorStoreError", operation: "save" })
      expectOneLine(error.message, /^save failed: sessions not saved \(the rest of the batch was\): "b": the value of effect-sse-resume\/cursor\/b does not read/)
      expect(Option.getOrThrow(yield* store.load("a")).seq).toBe(5)
      expect(Option.getOrThrow(yield* store.load("z")).seq).toBe(5)
      // Never overwritten: the store cannot tell a newer cursor from an older one.
      expect(storage.getItem("effect-sse-resume/cursor/b")).toBe(torn)
      // An unreadable lease likewise holds up only its own session.
      storage.setItem("effect-sse-resume/owner/a", "[]")
      const fenced = yield* Effect.flip(store.saveAll([{ ...cursor("a", 6), epoch: 1 }, cursor("z", 6)]))
      expectOneLine(fenced.message, /^save failed: sessions not saved \(the rest of the batch was\): "a": the value of effect-sse-resume\/owner\/a does not read/)
      expect(Option.getOrThrow(yield* store.load("z")).seq).toBe(6)
    }))

  it.scoped("a value JSON cannot carry fails its own save and keeps the stored one; the batch's other sessions are written", () =>
    Effect.gen(function*() {
      const storage = new QuotaStorage()
      const store = yield* storeOn(storage)
      yield* store.saveAll([cursor("s", 1)])
      const bad: ReadonlyArray<Partial<Cursor>> = [
        { seq: NaN },
        { seq: Infinity },
        { seq: 2 ** 53 + 2 },
        { seq: 1.5 },
        { seq: 2, updatedAt: NaN },
        { seq: 2, updatedAt: -Infinity }
      ]
      for (const [i, fields] of bad.entries()) {
        const error = yield* Effect.flip(store.saveAll([cursor(`other-${i}`, 1), { ...cursor("s", 2), ...fields }]))
        expect(error).toMatchObject({ _tag: "CursorStoreError", operation: "save" })
        expectOneLine(error.message, /^save failed: sessions not saved \(the rest of the batch was\): "s": a value for effect-sse-resume\/cursor\/s that could not be read back/)
        expect(Option.getOrThrow(yield* store.load("s"))).toEqual(cursor("s", 1))
        expect(Option.isSome(yield* store.load(`other-${i}`))).toBe(true)
      }
      yield* store.saveAll([cursor("s", 3)])
      expect(Option.getOrThrow(yield* store.load("s")).seq).toBe(3)
    }))

  it.scoped("a lease that would not read back (an infinite or NaN ttl) fails its acquire or renew and leaves the stored one", () =>
    Effect.gen(function*() {
      const storage = new QuotaStorage()
      const store = yield* storeOn(storage)
      for (const ttl of [Infinity, NaN]) {
        const error = yield* Effect.flip(store.acquire("s", "a", ttl))
        expect(error).toMatchObject({ _tag: "CursorStoreError", operation: "acquire" })
        expectOneLine(error.message, /^acquire failed: a value for effect-sse-resume\/owner\/s that could not be read back/)
      }
      expect(storage.getItem("effect-sse-resume/owner/s")).toBeNull()
      const lease = yield* store.acquire("s", "a", 10_000)
      const stored = storage.getItem("effect-sse-resume/owner/s")
      expect(yield* Effect.flip(store.renew([lease], Infinity))).toMatchObject({ operation: "renew" })
      expect(storage.getItem("effect-sse-resume/owner/s")).toBe(stored)
      expect(yield* store.renew([lease], 10_000)).toEqual([])
      yield* store.release(lease)
      expect((yield* store.acquire("s", "b", 10_000)).epoch).toBe(2)
    }))

  // Node's writeFile truncates the file, then writes; interrupted, it aborts in
  // between and leaves the file empty: the session could never load or save again.
  it.scoped("an interrupted save on files leaves the cursor whole (the write finishes)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("sse-kv-interrupt-")
      const writes = yield* Queue.unbounded<void>()
      // Node's own file system, telling the test when a write has begun.
      const observed = Layer.effect(
        FileSystem.FileSystem,
        Effect.map(FileSystem.FileSystem, (fs) =>
          FileSystem.make({
            ...fs,
            writeFile: (path, data, options) => Effect.zipRight(Queue.offer(writes, undefined), fs.writeFile(path, data, options))
          }))
      ).pipe(Layer.provide(NodeFileSystem.layer))
      const kv = KeyValueStore.layerFileSystem(dir).pipe(Layer.provide(Layer.merge(observed, NodePath.layer)))
      const store = Context.get(yield* Layer.build(Layer.provide(Cursors.layerKeyValueStore, kv)), CursorStore)
      const window = Array.from({ length: 2_000 }, (_, i) => `event-${i}`)
      yield* store.saveAll([cursor("s", 1, window)])
      yield* Queue.take(writes)
      for (let seq = 2; seq < 12; seq++) {
        const saving = yield* Effect.fork(store.saveAll([cursor("s", seq, window)]))
        yield* Queue.take(writes)
        yield* Fiber.interrupt(saving)
        expect(Option.getOrThrow(yield* store.load("s")).seq).toBe(seq)
      }
    }).pipe(TestServices.provideLive))
})

describe("SessionManager over layerKeyValueStore", () => {
  it.scoped("a held session records events; a manager started later over the same files resumes after its cursor", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("sse-kv-manager-")
      const manager = SessionManager.layer().pipe(
        Layer.provideMerge(PersistenceWorker.layer()),
        Layer.provide(keyValueFileStore(dir))
      )
      const start = Effect.map(Layer.build(manager), Context.get(SessionManager.SessionManager))
      const events = (from: number, to: number) =>
        Array.from({ length: to - from + 1 }, (_, i) => new SseEvent({ id: `e${from + i}`, data: "x" }))

      yield* Effect.scoped(Effect.gen(function*() {
        const session = yield* (yield* start).hold("tab")
        expect(yield* session.tracker.recordAll(events(1, 5))).toHaveLength(5)
        // Another manager on the same files sees the lease.
        expect((yield* Effect.flip(Effect.scoped((yield* start).hold("tab"))))._tag).toBe("SessionBusy")
      }))

      const session = yield* (yield* start).hold("tab")
      expect(yield* session.tracker.lastEventId).toEqual(Option.some("e5"))
      expect(yield* session.seq).toBe(5)
      expect(yield* session.epoch).toEqual(Option.some(2))
      const fresh = yield* session.tracker.recordAll(events(3, 7))
      expect(fresh.map((event) => event.id)).toEqual(["e6", "e7"])
    }))
})
