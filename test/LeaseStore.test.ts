/**
 * The LeaseStore contract, on every backend: memory, key-value (memory and files),
 * SQLite and PostgreSQL (when PG_URL is set). Leases expire by the store's clock
 * (the database's for SQL, the Effect clock otherwise): real time here.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Clock, Effect, Layer, TestServices } from "effect"
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import { readFileSync } from "node:fs"
import * as LeaseStores from "../src/store/LeaseStore.js"
import { LeaseStore } from "../src/store/LeaseStore.js"
import type { CursorStoreError, SessionBusy } from "../src/store/StoreError.js"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { join } from "node:path"
import { keyValueTempStore, notePgSkip, pgStore, pgUrl, runId, sqliteStore, tempDir } from "./support/stores.js"

/** The `SessionBusy` an acquire fails with (a store error is a defect here). */
const busyOf = <A>(acquiring: Effect.Effect<A, SessionBusy | CursorStoreError>) =>
  Effect.flip(Effect.catchTag(acquiring, "CursorStoreError", Effect.die))

/** The live clock shifted by `offsetMillis`: a process whose clock is off. */
const shiftedClock = (offsetMillis: number): Clock.Clock => {
  const live = Clock.make()
  return Object.assign(Object.create(live) as Clock.Clock, {
    unsafeCurrentTimeMillis: () => Date.now() + offsetMillis,
    currentTimeMillis: Effect.sync(() => Date.now() + offsetMillis),
    unsafeCurrentTimeNanos: () => live.unsafeCurrentTimeNanos() + BigInt(offsetMillis) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => live.unsafeCurrentTimeNanos() + BigInt(offsetMillis) * 1_000_000n)
  })
}
const anHourAhead = shiftedClock(3_600_000)

/** This process's owner name with its start time replaced: the name a process had before the pid was reused. */
const withStart = (owner: string, start: string) => owner.replace(/\.\d+$/, `.${start}`)

const linux = /@[0-9a-f]{8}\.\d+\.\d+$/.test(LeaseStores.processOwner())
/** A pid no process has: above the kernel's limit. */
const noSuchPid = linux ? Number(readFileSync("/proc/sys/kernel/pid_max", "utf8")) + 1 : 0

const contract = (name: string, store: Layer.Layer<LeaseStore, unknown>, clock: "database" | "effect") =>
  layer(store, { timeout: "20 seconds" })(name, (it) => {
    let n = 0
    const fresh = (label: string) => `${runId}-lease-${name}-${label}-${n++}`

    it.effect("a lease is exclusive until released; the next owner gets a higher epoch; the old one cannot renew", () =>
      Effect.gen(function*() {
        const store = yield* LeaseStore
        const id = fresh("lease")
        const a = yield* store.acquire(id, "host-a/1", 10_000)
        const busy = yield* busyOf(store.acquire(id, "host-b/2", 10_000))
        expect(busy).toMatchObject({ _tag: "SessionBusy", sessionId: id, owner: "host-a/1" })
        expect(busy.expiresInMillis).toBeGreaterThan(5_000)
        expect(busy.expiresInMillis).toBeLessThanOrEqual(10_000)
        expect(busy.message).toContain("host-a/1")
        expect(yield* store.renew([a], 10_000)).toEqual([])
        yield* store.release(a)
        // Released is given up: a renewal does not take it back.
        expect(yield* store.renew([a], 10_000)).toEqual([a])
        const b = yield* store.acquire(id, "host-b/2", 10_000)
        expect(b.epoch).toBeGreaterThan(a.epoch)
        expect(yield* store.renew([a, b], 10_000)).toEqual([a])
        // A late release by the old owner does not end the new owner's lease.
        yield* store.release(a)
        expect((yield* busyOf(store.acquire(id, "host-c/3", 10_000))).owner).toBe("host-b/2")
      }).pipe(TestServices.provideLive))

    it.effect("an expired lease is taken over, and the expired owner learns it at its next renewal", () =>
      Effect.gen(function*() {
        const store = yield* LeaseStore
        const id = fresh("expiry")
        const a = yield* store.acquire(id, "a", 150)
        expect((yield* Effect.flip(store.acquire(id, "b", 150)))._tag).toBe("SessionBusy")
        yield* Effect.sleep("250 millis")
        const b = yield* store.acquire(id, "b", 10_000)
        expect(b.epoch).toBe(a.epoch + 1)
        expect(yield* store.renew([a], 10_000)).toEqual([a])
        expect(yield* store.renew([b], 10_000)).toEqual([])
      }).pipe(TestServices.provideLive))

    it.effect("any key works, a stream's name as well as a session's", () =>
      Effect.gen(function*() {
        const store = yield* LeaseStore
        const key = `GET https://example.com/events?${fresh("stream")}`
        const producer = yield* store.acquire(key, "producer-1", 10_000)
        expect((yield* busyOf(store.acquire(key, "producer-2", 10_000))).sessionId).toBe(key)
        yield* store.release(producer)
        expect((yield* store.acquire(key, "producer-2", 10_000)).epoch).toBe(producer.epoch + 1)
      }).pipe(TestServices.provideLive))

    // A kill -9 and an immediate restart on the same host waited out the whole lease.
    it.effect.skipIf(!linux)("a lease whose holder is a process of this host that is gone, or whose pid was reused, is taken at once", () =>
      Effect.gen(function*() {
        const store = yield* LeaseStore
        const me = LeaseStores.processOwner()
        // A live holder (this process) keeps its lease.
        const live = fresh("live")
        yield* store.acquire(live, me, 60_000)
        expect((yield* busyOf(store.acquire(live, "restarted", 60_000))).owner).toBe(me)
        // The holder's pid now belongs to another process (this one, started at another time).
        const reused = fresh("reused")
        const before = yield* store.acquire(reused, withStart(me, "1"), 60_000)
        expect((yield* store.acquire(reused, "restarted", 60_000)).epoch).toBe(before.epoch + 1)
        // The holder's pid is no process at all.
        const gone = fresh("gone")
        const dead = me.replace(/\/\d+@/, `/${noSuchPid}@`)
        yield* store.acquire(gone, dead, 60_000)
        expect((yield* store.acquire(gone, "restarted", 60_000)).owner).toBe("restarted")
        // The same names from another machine (another boot id) or a plain name are waited out.
        for (const [label, other] of [["boot", me.replace(/@[0-9a-f]{8}\./, "@00000000.")], ["plain", "host/1"]]) {
          const id = fresh(label!)
          yield* store.acquire(id, other!.replace(/\/\d+/, `/${noSuchPid}`), 60_000)
          expect((yield* busyOf(store.acquire(id, "restarted", 60_000)))._tag).toBe("SessionBusy")
        }
      }).pipe(TestServices.provideLive))

    if (clock === "database") {
      // Instances' clocks disagree: the database's alone decides, or an instance
      // whose clock runs ahead takes live leases, and one behind holds dead ones.
      it.effect("expiry is judged by the database's clock, not the process's (an hour ahead here)", () =>
        Effect.gen(function*() {
          const store = yield* LeaseStore
          const id = fresh("clock")
          yield* store.acquire(id, "on-time", 10_000)
          const busy = yield* busyOf(Effect.withClock(store.acquire(id, "ahead", 10_000), anHourAhead))
          expect(busy.owner).toBe("on-time")
          expect(busy.expiresInMillis).toBeLessThanOrEqual(10_000)
          // A lease taken an hour ahead still ends after its ttl for everyone.
          const other = fresh("clock-ahead")
          const ahead = yield* Effect.withClock(store.acquire(other, "ahead", 150), anHourAhead)
          expect(yield* Effect.withClock(store.renew([ahead], 150), anHourAhead)).toEqual([])
          yield* Effect.sleep("250 millis")
          expect((yield* store.acquire(other, "on-time", 10_000)).epoch).toBe(ahead.epoch + 1)
        }).pipe(TestServices.provideLive))
    }
  })

contract("memory", LeaseStores.layerMemory, "effect")
contract("key-value memory", Layer.provide(LeaseStores.layerKeyValueStore, KeyValueStore.layerMemory), "effect")
contract("key-value files", keyValueTempStore, "effect")
contract("sqlite", sqliteStore, "database")
contract(
  "sqlite, LeaseStore.layerSql alone",
  Layer.unwrapScoped(Effect.map(tempDir("sse-leases-"), (dir) =>
    Layer.provide(LeaseStores.layerSql, SqliteClient.layer({ filename: join(dir, "leases.db") })))),
  "database"
)

notePgSkip("LeaseStore")
describe.skipIf(pgUrl === undefined)("postgres", () => {
  contract("pg", Layer.suspend(pgStore), "database")
})
