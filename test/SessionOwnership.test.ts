/**
 * Ownership of held sessions, in one process under TestClock: two managers share
 * one in-memory store (whose leases expire by the Effect clock), so time is virtual
 * and the rules are exact. The cross-process and database cases are in
 * test/OwnershipProcesses.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Fiber, Layer, Option, Scope, TestClock } from "effect"
import * as Cursors from "../src/store/CursorStore.js"
import { CursorStore } from "../src/store/CursorStore.js"
import { LeaseStore } from "../src/store/LeaseStore.js"
import * as PersistenceWorker from "../src/session/PersistenceWorker.js"
import * as SessionManager from "../src/session/SessionManager.js"
import { SseEvent } from "../src/wire/SseEvent.js"
import { settle } from "./support/settle.js"

const event = (n: number) => new SseEvent({ id: `e${n}`, data: `${n}` })
const events = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => event(from + i))
const flush = Duration.millis(50)
const lease = { leaseTtl: Duration.seconds(10), renewInterval: Duration.seconds(3), pollInterval: Duration.seconds(1) }

/** What a test does to one manager's view of the shared store. */
interface Link {
  /** While true, renewals report success without reaching the store: the owner believes it still holds. */
  renewalsLost: boolean
  /** While true, renewals fail (the store is unreachable for this owner). */
  renewalsFail: boolean
  /** While set, a renewal reaches the store at once but its answer comes this much later. */
  answerDelay?: Duration.Duration | undefined
  /** While true, renewals never answer. */
  renewalsHang?: boolean
}

/** The cursor store and the lease store that fences it, shared by the managers of a test. */
interface Shared {
  readonly cursors: CursorStore["Type"]
  readonly leases: LeaseStore["Type"]
}

/** `leases` as one owner reaches it through `link`. */
const linked = (leases: LeaseStore["Type"], link: Link): LeaseStore["Type"] => ({
  ...leases,
  renew: (held, ttl) =>
    Effect.suspend(() =>
      link.renewalsFail
        ? Effect.fail(new Cursors.CursorStoreError({ operation: "renew", cause: "unreachable" }))
        : link.renewalsLost
        ? Effect.succeed([])
        : link.renewalsHang
        ? Effect.never
        : link.answerDelay !== undefined
        ? Effect.zipLeft(leases.renew(held, ttl), Effect.sleep(link.answerDelay))
        : leases.renew(held, ttl)
    )
})

/** A manager named `owner` over `shared`, with its own worker, in the current scope. */
const manager = (
  shared: Shared,
  owner: string,
  link: Link = { renewalsLost: false, renewalsFail: false },
  settings: Partial<SessionManager.Settings> = lease
) =>
  Effect.gen(function*() {
    const ctx = yield* Layer.build(
      SessionManager.layer({ ...settings, owner }).pipe(
        Layer.provideMerge(PersistenceWorker.layer({ flushInterval: flush, retryBase: flush })),
        Layer.provideMerge(Layer.succeed(CursorStore, shared.cursors)),
        Layer.provideMerge(Layer.succeed(LeaseStore, linked(shared.leases, link)))
      )
    )
    return Context.get(ctx, SessionManager.SessionManager)
  })

const sharedStore = Effect.map(
  Layer.build(Cursors.layerMemory),
  (ctx): Shared => ({ cursors: Context.get(ctx, CursorStore), leases: Context.get(ctx, LeaseStore) })
)

describe("SessionOwnership", () => {
  it.scoped("a second holder fails at once with SessionBusy naming the owner; with wait it takes over after the release, right after the stored cursor", () =>
    Effect.gen(function*() {
      const store = yield* sharedStore
      const a = yield* manager(store, "host-a/1")
      const b = yield* manager(store, "host-b/2")
      const scopeA = yield* Scope.make()
      const held = yield* a.hold("s").pipe(Scope.extend(scopeA))
      expect(yield* held.epoch).toEqual(Option.some(1))
      yield* held.tracker.recordAll(events(1, 7))
      const busy = yield* Effect.flip(Effect.scoped(b.hold("s")))
      expect(busy).toMatchObject({ _tag: "SessionBusy", sessionId: "s", owner: "host-a/1" })
      // The busy attempt leaves nothing open in b.
      expect(yield* b.size).toBe(0)
      // Renewals keep the lease far past its ttl.
      yield* TestClock.adjust(Duration.seconds(60))
      yield* settle
      expect((yield* Effect.flip(Effect.scoped(b.hold("s"))))._tag).toBe("SessionBusy")
      const waiting = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const session = yield* b.hold("s", { wait: true })
        return { epoch: yield* session.epoch, resumeFrom: yield* session.tracker.lastEventId, seq: yield* session.seq }
      })))
      yield* TestClock.adjust(Duration.seconds(5))
      yield* settle
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      yield* held.tracker.recordAll(events(8, 9))
      // The release writes a's cursor first; b resumes right after it.
      yield* Scope.close(scopeA, Exit.void)
      yield* TestClock.adjust(lease.pollInterval)
      yield* settle
      expect(yield* Fiber.join(waiting)).toEqual({ epoch: Option.some(2), resumeFrom: Option.some("e9"), seq: 9 })
      expect(yield* a.size).toBe(0)
    }))

  it.scoped("an owner whose renewals stopped reaching the store is fenced: its write is refused, it gets SessionLost, the new owner's cursor stays", () =>
    Effect.gen(function*() {
      const store = yield* sharedStore
      const linkA: Link = { renewalsLost: false, renewalsFail: false }
      const a = yield* manager(store, "a", linkA)
      const b = yield* manager(store, "b")
      const old = yield* a.hold("f")
      yield* old.tracker.recordAll(events(1, 3))
      yield* TestClock.adjust(flush)
      yield* settle
      // A pause: a's renewals never arrive, yet a believes them.
      linkA.renewalsLost = true
      yield* TestClock.adjust(Duration.seconds(11))
      yield* settle
      const fresh = yield* b.hold("f")
      expect(yield* fresh.tracker.lastEventId).toEqual(Option.some("e3"))
      yield* fresh.tracker.recordAll(events(4, 10))
      yield* TestClock.adjust(flush)
      yield* settle
      // The old owner wakes and records on: its write carries epoch 1 and is refused.
      yield* old.tracker.recordAll(events(4, 20))
      yield* TestClock.adjust(flush)
      yield* settle
      const lost = yield* Effect.flip(old.lost)
      expect(lost).toMatchObject({ _tag: "SessionLost", sessionId: "f", epoch: 1, reason: "fenced" })
      const next = yield* Effect.flip(old.tracker.recordEvent(event(21)))
      expect(next).toEqual(lost)
      const stored = Option.getOrThrow(yield* store.cursors.load("f"))
      expect([stored.lastEventId, stored.seq]).toEqual(["e10", 10])
      expect(yield* a.size).toBe(0)
    }))

  it.scoped("a lease whose renewals fail is given up before it can expire, so the next owner never overlaps", () =>
    Effect.gen(function*() {
      const store = yield* sharedStore
      const linkA: Link = { renewalsLost: false, renewalsFail: false }
      const a = yield* manager(store, "a", linkA)
      const b = yield* manager(store, "b")
      const held = yield* a.hold("u")
      yield* TestClock.adjust(Duration.seconds(30))
      yield* settle
      linkA.renewalsFail = true
      const failedFrom = yield* TestClock.currentTimeMillis
      let lostAt = -1
      let takenAt = -1
      yield* Effect.fork(Effect.flip(held.lost).pipe(Effect.zipRight(Effect.map(TestClock.currentTimeMillis, (t) => (lostAt = t)))))
      yield* Effect.fork(Effect.scoped(b.hold("u", { wait: true }).pipe(
        Effect.zipRight(Effect.map(TestClock.currentTimeMillis, (t) => (takenAt = t)))
      )))
      for (let s = 0; s < 20; s++) {
        yield* TestClock.adjust(Duration.seconds(1))
        yield* settle
      }
      expect(Exit.isFailure(yield* Effect.exit(held.lost))).toBe(true)
      expect((yield* Effect.flip(held.lost)).reason).toBe("unrenewed")
      expect(lostAt).toBeGreaterThan(failedFrom)
      expect(takenAt).toBeGreaterThanOrEqual(lostAt)
      // Taken over within a lease plus a poll of the last good renewal.
      expect(takenAt - failedFrom).toBeLessThanOrEqual(Duration.toMillis(lease.leaseTtl) + Duration.toMillis(lease.pollInterval))
    }))

  // The store extends a lease from when the renewal reaches it; an answer that
  // comes late must not make the owner count its lease from the answer.
  it.scoped("a renewal whose answer comes late counts from when it was sent: the owner gives up before another can take over", () =>
    Effect.gen(function*() {
      // 13 s against 3 s renewals: counted from the answer (2.5 s late), the owner
      // would give up at its verdict after the lease's end (17.5 s against 16 s).
      const settings = { leaseTtl: Duration.seconds(13), renewInterval: Duration.seconds(3), pollInterval: Duration.seconds(1) }
      const store = yield* sharedStore
      const linkA: Link = { renewalsLost: false, renewalsFail: false, answerDelay: Duration.millis(2_500) }
      const a = yield* manager(store, "a", linkA, settings)
      const b = yield* manager(store, "b", undefined, settings)
      const held = yield* a.hold("late")
      let lostAt = -1
      let takenAt = -1
      yield* Effect.fork(Effect.flip(held.lost).pipe(Effect.zipRight(Effect.map(TestClock.currentTimeMillis, (t) => (lostAt = t)))))
      yield* Effect.fork(Effect.scoped(b.hold("late", { wait: true }).pipe(
        Effect.zipRight(Effect.map(TestClock.currentTimeMillis, (t) => (takenAt = t)))
      )))
      // The renewal sent at 3 s reaches the store (the lease now ends at 16 s) and answers at 5.5 s; later ones hang.
      yield* TestClock.adjust(Duration.seconds(4))
      yield* settle
      linkA.renewalsHang = true
      for (let s = 0; s < 40; s++) {
        yield* TestClock.adjust(Duration.millis(500))
        yield* settle
      }
      expect(takenAt).toBeGreaterThan(0)
      expect((yield* Effect.flip(held.lost)).reason).toBe("unrenewed")
      // Never two owners: A knew it lost the session by the time B took it.
      expect(lostAt).toBeGreaterThan(0)
      expect(lostAt).toBeLessThanOrEqual(takenAt)
    }))

  // Every store holds a lease until its expiry: one that never expires is never
  // taken over when its owner dies (and JSON cannot store it for the key-value store).
  it.scoped("an infinite leaseTtl is refused with a typed settings error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(
        SessionManager.layer({ ...lease, leaseTtl: Duration.infinity }).pipe(
          Layer.provideMerge(PersistenceWorker.layer()),
          Layer.provideMerge(Cursors.layerMemory)
        )
      ))
      expect(error).toMatchObject({ _tag: "SettingsError", setting: "leaseTtl", value: Duration.infinity })
      expect(error.reason).toMatch(/finite/)
    }))
})

/** Two managers on one memory store, on real time: A's stores wrapped by `wrap`. */
const livePair = (wrap: (store: Shared) => Shared, settings: Partial<SessionManager.Settings>) =>
  Effect.gen(function*() {
    const store = yield* sharedStore
    const make = (s: Shared, owner: string) =>
      Effect.flatMap(
        PersistenceWorker.make({ flushInterval: Duration.seconds(60) }).pipe(Effect.provideService(CursorStore, s.cursors)),
        (worker) =>
          SessionManager.make({ ...settings, owner }).pipe(
            Effect.provideService(CursorStore, s.cursors),
            Effect.provideService(LeaseStore, s.leases),
            Effect.provideService(PersistenceWorker.PersistenceWorker, worker)
          )
      )
    return { a: yield* make(wrap(store), "A"), b: yield* make(store, "B") }
  })

describe("SessionOwnership on real time (found in review)", () => {
  it.live("an owner whose renewals hang learns it lost the session before another can take it", () =>
    Effect.scoped(Effect.gen(function*() {
      let hang = false
      const { a, b } = yield* livePair(
        (store) => ({
          ...store,
          leases: { ...store.leases, renew: (l, t) => Effect.suspend(() => hang ? Effect.never : store.leases.renew(l, t)) }
        }),
        { leaseTtl: Duration.millis(1_000), renewInterval: Duration.millis(300), pollInterval: Duration.millis(20) }
      )
      const sa = yield* a.hold("s")
      hang = true
      const lostA = yield* Effect.fork(Effect.either(sa.lost))
      yield* Effect.scoped(Effect.gen(function*() {
        yield* b.hold("s", { wait: true })
        // When B owns it, A already knows it does not: never two owners at once.
        expect(lostA.unsafePoll()).not.toBeNull()
        expect(Option.isNone(yield* sa.epoch)).toBe(true)
      }))
    })), 10_000)

  it.live("a last hold whose final write fails stops renewing: the lease lapses and another owner takes over", () =>
    Effect.scoped(Effect.gen(function*() {
      let failSaves = 0
      const { a, b } = yield* livePair(
        (store) => ({
          ...store,
          cursors: {
            ...store.cursors,
            saveAll: (c) =>
              Effect.suspend(() =>
                failSaves-- > 0
                  ? Effect.fail(new Cursors.CursorStoreError({ operation: "save", cause: "busy" }))
                  : store.cursors.saveAll(c)
              )
          }
        }),
        { leaseTtl: Duration.millis(500), renewInterval: Duration.millis(150), pollInterval: Duration.millis(20) }
      )
      yield* Effect.scoped(Effect.gen(function*() {
        const s = yield* a.hold("s")
        yield* s.tracker.recordEvent(event(1))
        failSaves = 1
      }))
      yield* Effect.sleep(Duration.millis(700))
      // Renewed on, A would keep it until idle eviction (30 min by default).
      const taken = yield* Effect.either(Effect.scoped(b.hold("s")))
      expect(taken._tag).toBe("Right")
    })), 10_000)
})
