import { describe, expect, it } from "@effect/vitest"
import { HttpClientRequest } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Chunk, ConfigProvider, Context, Deferred, Duration, Effect, Exit, Fiber, Scope, Layer, Option, Stream, TestClock } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import { CursorStore } from "../src/store/CursorStore.js"
import * as Cursors from "../src/store/CursorStore.js"
import * as SqliteCursorStore from "../src/engines/SqliteCursorStore.js"
import * as EventTracker from "../src/client/EventTracker.js"
import * as PersistenceWorker from "../src/session/PersistenceWorker.js"
import * as SessionManager from "../src/session/SessionManager.js"
import * as SseClient from "../src/client/SseClient.js"
import { SseEvent } from "../src/wire/SseEvent.js"
import { idOnly } from "../src/wire/internal/idOnly.js"
import { faults, faulty } from "./support/faultyStore.js"
import { notePgSkip, pgStore, pgUrl, runId, sqliteStore, tempDir } from "./support/stores.js"
import { settle } from "./support/settle.js"

const event = (n: number) => new SseEvent({ id: `e${n}`, data: `${n}` })
const events = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => event(from + i))
const ids = (from: number, to: number) => events(from, to).map((e) => e.id!)
const flush = Duration.millis(50)

/** A manager, its worker and a (faulty-wrappable) store, built in the test's scope. */
const setup = (
  manager: SessionManager.Options = {},
  base: Layer.Layer<CursorStore, unknown> = sqliteStore,
  worker: PersistenceWorker.Options = {}
) =>
  Effect.gen(function*() {
    const f = faults()
    const storeLayer = Layer.provideMerge(faulty(f), base)
    const ctx = yield* Layer.build(
      SessionManager.layer(manager).pipe(
        Layer.provideMerge(PersistenceWorker.layer({ flushInterval: flush, retryBase: flush, ...worker })),
        Layer.provideMerge(storeLayer)
      )
    )
    const store = Context.get(ctx, CursorStore)
    return {
      f,
      store,
      sessions: Context.get(ctx, SessionManager.SessionManager),
      worker: Context.get(ctx, PersistenceWorker.PersistenceWorker),
      stored: (id: string) => Effect.map(store.load(id), Option.getOrUndefined)
    }
  })

/** A memory store whose loads wait for `gate`: a stalled read. `interrupted` counts loads stopped while waiting. */
const gatedLoads = (gate: Deferred.Deferred<void>, interrupted = { count: 0 }) =>
  Layer.provideMerge(
    Layer.effect(
      CursorStore,
      Effect.map(CursorStore, (real) =>
        CursorStore.of({
          ...real,
          load: (id) =>
            Effect.zipRight(
              Deferred.await(gate).pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted.count++))),
              real.load(id)
            )
        }))
    ),
    Cursors.layerMemory
  )

describe("SessionManager", () => {
  it.scoped("open restores the tracker from the stored cursor and persists new events", () =>
    Effect.gen(function*() {
      const { sessions, store, stored } = yield* setup()
      yield* store.saveAll([{ sessionId: "a", lastEventId: "e5", seq: 5, recentIds: ["e4", "e5"], updatedAt: 0 }])
      const session = yield* sessions.open("a")
      expect(session.sessionId).toBe("a")
      expect(yield* session.tracker.lastEventId).toEqual(Option.some("e5"))
      expect(yield* session.tracker.isDuplicate("e4")).toBe(true)
      expect(yield* session.seq).toBe(5)
      // A replayed e5 is dropped; e6, e7 are new.
      const fresh = yield* session.tracker.recordAll(events(5, 7))
      expect(fresh.map((e) => e.id)).toEqual(["e6", "e7"])
      expect(yield* session.seq).toBe(7)
      yield* TestClock.adjust(flush)
      yield* settle
      const cursor = yield* stored("a")
      expect(cursor?.seq).toBe(7)
      expect(cursor?.lastEventId).toBe("e7")
      expect(cursor?.recentIds?.slice(-3)).toEqual(["e5", "e6", "e7"])
    }))

  it.scoped("open returns the open session, also to concurrent callers; get sees it", () =>
    Effect.gen(function*() {
      const { sessions } = yield* setup()
      const [a, b] = yield* Effect.all([sessions.open("same"), sessions.open("same")], { concurrency: 2 })
      expect(a).toBe(b)
      expect(yield* sessions.open("same")).toBe(a)
      expect(yield* sessions.get("same")).toEqual(Option.some(a))
      expect(yield* sessions.size).toBe(1)
    }))

  it.scoped("an opener that gives up does not interrupt others waiting on the same load", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { sessions } = yield* setup({}, gatedLoads(gate))
      const first = yield* Effect.fork(sessions.open("s"))
      const second = yield* Effect.fork(sessions.open("s"))
      yield* settle
      yield* Fiber.interrupt(first)
      yield* Deferred.succeed(gate, void 0)
      expect((yield* Fiber.join(second)).sessionId).toBe("s")
      expect(yield* sessions.size).toBe(1)
    }))

  it.scoped("hold waiting on a stalled load can be interrupted", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { sessions } = yield* setup({}, gatedLoads(gate))
      const holder = yield* Effect.fork(Effect.scoped(sessions.hold("s")))
      yield* settle
      const interrupting = yield* Effect.fork(Fiber.interrupt(holder))
      yield* settle
      const done = Option.isSome(yield* Fiber.poll(interrupting))
      yield* Deferred.succeed(gate, void 0)
      expect(done).toBe(true)
    }))

  it.scoped("closing the manager interrupts a load still running; its openers do not hang", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const interrupted = { count: 0 }
      const managerScope = yield* Scope.make()
      const { sessions } = yield* setup({}, gatedLoads(gate, interrupted)).pipe(Scope.extend(managerScope))
      const opener = yield* Effect.fork(sessions.open("stalled"))
      yield* settle
      expect(Option.isNone(yield* Fiber.poll(opener))).toBe(true)
      yield* Scope.close(managerScope, Exit.void)
      yield* settle
      expect(interrupted.count).toBe(1)
      expect(Exit.isInterrupted(yield* Fiber.await(opener))).toBe(true)
    }))

  it.scoped("past maxSessions, open fails with SessionLimitError", () =>
    Effect.gen(function*() {
      const { sessions } = yield* setup({ maxSessions: 2 })
      yield* sessions.open("one")
      yield* sessions.open("two")
      const error = yield* Effect.flip(sessions.open("three"))
      expect(error._tag).toBe("SessionLimitError")
      yield* sessions.close("one")
      yield* sessions.open("three")
    }))

  it.scoped("close writes the newest cursor at once, without waiting for a flush", () =>
    Effect.gen(function*() {
      const { sessions, stored } = yield* setup()
      const session = yield* sessions.open("c")
      yield* session.tracker.recordAll(events(1, 42))
      yield* sessions.close("c")
      expect((yield* stored("c"))?.seq).toBe(42)
      expect((yield* stored("c"))?.recentIds).toHaveLength(42)
      expect(yield* sessions.get("c")).toEqual(Option.none())
      // Reopened: restored, not started over.
      const again = yield* sessions.open("c")
      expect(yield* again.seq).toBe(42)
      expect(yield* again.tracker.lastEventId).toEqual(Option.some("e42"))
    }))

  it.scoped("every stored window ends at its stored cursor, even while the tracker is ahead of the write", () =>
    Effect.gen(function*() {
      // One write at a time and a one-slot queue, so a write can start while the
      // session's newest id is still waiting to be handed to the worker.
      const { f, sessions, stored } = yield* setup({}, sqliteStore, {
        maxPending: 1,
        batchSize: 1,
        offerTimeout: Duration.seconds(10)
      })
      const other = yield* sessions.open("other")
      const session = yield* sessions.open("cut")
      // The other session's write stalls; meanwhile "cut" records e1 (queued) and e2 (its hand-over waits).
      f.stall = yield* Deferred.make<void>()
      yield* other.tracker.recordEvent(event(1))
      yield* settle
      const recording = yield* Effect.fork(session.tracker.recordAll(events(1, 3)))
      yield* settle
      expect(yield* session.tracker.trackedCount).toBe(2)
      yield* Deferred.succeed(f.stall, void 0)
      f.stall = undefined
      yield* settle
      yield* Fiber.join(recording)
      yield* sessions.close("cut")
      const written = f.calls.flat().filter((c) => c.sessionId === "cut")
      // The write that ran while e2 was already recorded, and its window, cut at e1.
      expect(written[0]).toMatchObject({ lastEventId: "e1", recentIds: ["e1"] })
      for (const cursor of written) expect(cursor.recentIds).toEqual(ids(1, Number(cursor.lastEventId.slice(1))))
      expect((yield* stored("cut"))?.recentIds).toEqual(ids(1, 3))
    }))

  it.scoped("a session's window never grows past maxTracked, in memory or in the store", () =>
    Effect.gen(function*() {
      const { sessions, store, stored } = yield* setup({ maxTracked: 3 })
      // A cursor written with a larger window (an older setting) is cut on restore.
      yield* store.saveAll([{ sessionId: "w", lastEventId: "e5", seq: 5, recentIds: ids(1, 5), updatedAt: 0 }])
      const session = yield* sessions.open("w")
      expect(session.tracker.maxTracked).toBe(3)
      expect(yield* session.tracker.trackedCount).toBe(3)
      expect(yield* session.tracker.isDuplicate("e2")).toBe(false)
      yield* session.tracker.recordAll(events(6, 20))
      expect(yield* session.tracker.trackedCount).toBe(3)
      yield* sessions.close("w")
      expect((yield* stored("w"))?.recentIds).toEqual(["e18", "e19", "e20"])
    }))

  it.scoped("the stored cursor follows the resume point: id-only blocks move it, replays do not", () =>
    Effect.gen(function*() {
      const { sessions, stored } = yield* setup()
      const session = yield* sessions.open("mcp")
      const priming = Object.assign(new SseEvent({ id: "p1" }), { [idOnly]: true as const })
      expect(yield* session.tracker.recordAll([priming], { keepWithoutId: true })).toEqual([])
      yield* sessions.close("mcp")
      expect((yield* stored("mcp"))?.lastEventId).toBe("p1")
      const again = yield* sessions.open("mcp")
      expect(yield* again.tracker.lastEventId).toEqual(Option.some("p1"))
      yield* again.tracker.recordAll(events(1, 3))
      yield* again.tracker.recordAll(events(1, 2))
      yield* TestClock.adjust(flush)
      yield* settle
      expect((yield* stored("mcp"))?.lastEventId).toBe("e3")
      expect(yield* again.seq).toBe(4)
    }))

  it.scoped("idle sessions are flushed, then evicted after evictAfter; active ones stay", () =>
    Effect.gen(function*() {
      // The worker's timers at a second, not 50 ms: every timer the TestClock fires costs a
      // real event-loop turn, and a few thousand of them took 26 s on a loaded machine.
      // Seconds are still far below evictAfter, so the eviction bounds are the same.
      const worker = { flushInterval: Duration.seconds(1), retryBase: Duration.seconds(1) }
      const { f, sessions, stored } = yield* setup({ evictAfter: Duration.seconds(60) }, sqliteStore, worker)
      const idle = yield* sessions.open("idle")
      const busy = yield* sessions.open("busy")
      yield* idle.tracker.recordAll(events(1, 3))
      for (let minute = 1; minute <= 20; minute++) {
        yield* busy.tracker.recordEvent(event(minute))
        yield* TestClock.adjust(Duration.seconds(5))
        yield* settle
      }
      expect(yield* sessions.get("idle")).toEqual(Option.none())
      expect(Option.isSome(yield* sessions.get("busy"))).toBe(true)
      expect((yield* stored("idle"))?.seq).toBe(3)
      // A session that cannot be flushed is kept for the next sweep.
      const stuck = yield* sessions.open("stuck")
      f.failing = true
      yield* stuck.tracker.recordAll(events(1, 2))
      yield* TestClock.adjust(Duration.seconds(90))
      yield* settle
      expect(Option.isSome(yield* sessions.get("stuck"))).toBe(true)
      f.failing = false
      yield* TestClock.adjust(Duration.seconds(90))
      yield* settle
      expect(yield* sessions.get("stuck")).toEqual(Option.none())
      expect((yield* stored("stuck"))?.seq).toBe(2)
    }))

  it.scoped("a held session is not evicted while quiet, and becomes evictable when released", () =>
    Effect.gen(function*() {
      const { sessions } = yield* setup({ evictAfter: Duration.seconds(60) })
      const scope = yield* Scope.make()
      yield* sessions.hold("quiet").pipe(Scope.extend(scope))
      yield* TestClock.adjust(Duration.minutes(10))
      yield* settle
      expect(Option.isSome(yield* sessions.get("quiet"))).toBe(true)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust(Duration.seconds(90))
      yield* settle
      expect(yield* sessions.get("quiet")).toEqual(Option.none())
    }))

  it.scoped("a session held while its eviction flush is in flight stays open", () =>
    Effect.gen(function*() {
      // The deprecated name still works.
      const { f, sessions } = yield* setup({ idleTtl: Duration.seconds(60) })
      const session = yield* sessions.open("racy")
      yield* session.tracker.recordAll(events(1, 2))
      yield* TestClock.adjust(flush)
      yield* settle
      // The sweep picks the idle session and its flush stalls; a hold arrives meanwhile.
      f.stall = yield* Deferred.make<void>()
      yield* TestClock.adjust(Duration.seconds(90))
      yield* settle
      const scope = yield* Scope.make()
      expect(yield* sessions.hold("racy").pipe(Scope.extend(scope))).toBe(session)
      yield* Deferred.succeed(f.stall, void 0)
      f.stall = undefined
      yield* settle
      expect(yield* sessions.get("racy")).toEqual(Option.some(session))
      yield* Scope.close(scope, Exit.void)
    }))

  it.scoped("a store that fails for a while loses no session's newest cursor", () =>
    Effect.gen(function*() {
      const { f, sessions, stored } = yield* setup()
      const open = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => `f${i}`), sessions.open)
      f.failing = true
      for (let round = 0; round < 10; round++) {
        yield* Effect.forEach(open, (s, i) => s.tracker.recordAll(events(round * 10 + 1, round * 10 + 1 + (i % 10))))
        yield* TestClock.adjust(Duration.millis(400))
        yield* settle
      }
      expect(f.calls.length).toBeGreaterThan(3)
      expect(yield* stored("f0")).toBeUndefined()
      f.failing = false
      yield* TestClock.adjust(Duration.seconds(30))
      yield* settle
      for (const [i, s] of open.entries()) {
        const cursor = yield* stored(s.sessionId)
        expect(cursor?.lastEventId).toBe(`e${91 + (i % 10)}`)
        expect(cursor?.seq).toBe(yield* s.seq)
      }
    }))

  it.scopedLive("SseClient.stream with a session, committing after handling: a restarted process resumes right after the stored Last-Event-ID", () =>
    Effect.gen(function*() {
      const seen: Array<string | undefined> = []
      const server = createServer((req, res) => {
        const last = req.headers["last-event-id"]
        seen.push(typeof last === "string" ? last : undefined)
        let next = typeof last === "string" ? Number(last) + 1 : 1
        res.writeHead(200, { "content-type": "text/event-stream" })
        // Five events per write, so a stop at 25 can fall in the middle of a chunk.
        const timer = setInterval(() => {
          let batch = ""
          for (let i = 0; i < 5; i++) batch += `id: ${next}\ndata: ${next++}\n\n`
          res.write(batch)
        }, 1)
        res.on("close", () => clearInterval(timer))
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
      const dir = yield* tempDir("sse-resume-")
      // One "process": its own manager, worker and store on the shared file, closed at the end.
      const instance = Effect.gen(function*() {
        const sessions = yield* SessionManager.SessionManager
        const session = yield* sessions.open("resume")
        // Commit after handling: the client dedups on a copy, the session records what was handled.
        const ids: Array<string | undefined> = []
        yield* SseClient.stream(HttpClientRequest.get(url), { tracker: yield* EventTracker.copy(session.tracker) }).pipe(
          Stream.take(25),
          Stream.runForEachChunk((chunk) =>
            Effect.sync(() => ids.push(...Chunk.toReadonlyArray(chunk).map((e) => e.id))).pipe(
              Effect.zipRight(session.tracker.recordAll(chunk))
            )
          )
        )
        return ids
      }).pipe(
        Effect.provide(SessionManager.layer().pipe(
          Layer.provideMerge(PersistenceWorker.layer({ flushInterval: flush })),
          Layer.provideMerge(SqliteCursorStore.layer(join(dir, "cursors.db"))),
          Layer.provideMerge(NodeHttpClient.layerUndici)
        ))
      )
      const first = yield* instance
      const second = yield* instance
      expect(first[0]).toBe("1")
      expect(second[0]).toBe(String(Number(first[24]) + 1))
      expect(seen[0]).toBeUndefined()
      expect(seen[seen.length - 1]).toBe(first[24])
    }))

  it.effect("reads its options from the environment, with defaults", () =>
    Effect.gen(function*() {
      const cfg = yield* SessionManager.config.pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([
          ["SSE_MAX_SESSIONS", "3"],
          ["SSE_SESSION_EVICT_AFTER", "5 seconds"],
          ["SSE_LEASE_TTL", "20 seconds"],
          ["SSE_OWNER", "replica-2"]
        ])))
      )
      expect(cfg).toEqual({
        ...SessionManager.defaults,
        maxSessions: 3,
        evictAfter: Duration.seconds(5),
        leaseTtl: Duration.seconds(20),
        owner: "replica-2"
      })
      expect(SessionManager.defaults.maxTracked).toBe(100)
    }))

  it.effect("reads evictAfter from SSE_IDLE_TTL, its former name, when SSE_SESSION_EVICT_AFTER is unset", () =>
    Effect.gen(function*() {
      const read = (entries: ReadonlyArray<readonly [string, string]>) =>
        SessionManager.config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(entries))))
      expect((yield* read([["SSE_IDLE_TTL", "7 seconds"]])).evictAfter).toEqual(Duration.seconds(7))
      const both = yield* read([["SSE_IDLE_TTL", "7 seconds"], ["SSE_SESSION_EVICT_AFTER", "9 seconds"]])
      expect(both.evictAfter).toEqual(Duration.seconds(9))
      // A bad value under the new name is an error, not a fall back to the old one.
      const error = yield* Effect.flip(read([["SSE_IDLE_TTL", "7 seconds"], ["SSE_SESSION_EVICT_AFTER", "0 millis"]]))
      expect(String(error)).toContain("SSE_SESSION_EVICT_AFTER")
    }))

  it.effect("a zero or negative SSE_SESSION_EVICT_AFTER is refused (the idle sweeper would spin), as are zero counts", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["SSE_SESSION_EVICT_AFTER", "0 millis"],
        ["SSE_IDLE_TTL", "0 millis"],
        ["SSE_IDLE_TTL", "-5 seconds"],
        ["SSE_MAX_SESSIONS", "0"],
        ["SSE_SESSION_MAX_TRACKED", "0"]
      ]
      for (const [name, value] of cases) {
        const error = yield* Effect.flip(
          SessionManager.config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([[name, value]]))))
        )
        expect(error._op).toBe("InvalidData")
        expect(String(error)).toContain(name)
      }
    }))

  it.scoped("layer refuses settings it cannot run with, with a typed error", () =>
    Effect.gen(function*() {
      for (const [settings, setting] of [
        [{ evictAfter: Duration.zero }, "evictAfter"],
        [{ idleTtl: Duration.zero }, "evictAfter"],
        [{ maxTracked: 0 }, "maxTracked"],
        [{ maxSessions: 1.5 }, "maxSessions"],
        [{ renewInterval: Duration.seconds(10), leaseTtl: Duration.seconds(10) }, "renewInterval"],
        [{ leaseTtl: Duration.zero }, "leaseTtl"],
        [{ owner: "" }, "owner"]
      ] as const) {
        const error = yield* Effect.flip(setup(settings))
        // One error for every module's settings; the former class name still matches it.
        expect(error).toMatchObject({ _tag: "SettingsError", module: "SessionManager", setting })
        expect(error).toBeInstanceOf(SessionManager.SessionSettingsError)
      }
    }))
})

notePgSkip("SessionManager")
describe.skipIf(pgUrl === undefined)("SessionManager on PostgreSQL", () => {
  it.scopedLive("two instances on one database never move a cursor backwards", () =>
    Effect.gen(function*() {
      const a = yield* setup({}, Layer.suspend(pgStore))
      const b = yield* setup({}, Layer.suspend(pgStore))
      const ids = Array.from({ length: 5 }, (_, i) => `${runId}-two-${i}`)
      let backwards = 0
      let watching = true
      const highest = new Map<string, number>()
      const watcher = yield* Effect.fork(Effect.gen(function*() {
        while (watching) {
          for (const id of ids) {
            const seq = (yield* a.stored(id))?.seq ?? 0
            if (seq < (highest.get(id) ?? 0)) backwards++
            highest.set(id, Math.max(seq, highest.get(id) ?? 0))
          }
          yield* Effect.sleep(Duration.millis(5))
        }
      }))
      // Instance A runs far ahead; instance B lags on the same sessions, its writes arriving late.
      const run = (m: typeof a, count: number, pause: Duration.Duration) =>
        Effect.forEach(ids, (id) =>
          Effect.gen(function*() {
            const s = yield* m.sessions.open(id)
            for (let n = 1; n <= count; n++) {
              yield* s.tracker.recordEvent(event(n))
              if (n % 10 === 0) yield* Effect.sleep(pause)
            }
          }), { concurrency: "unbounded", discard: true })
      yield* Effect.all([run(a, 200, Duration.millis(5)), run(b, 60, Duration.millis(20))], { concurrency: 2 })
      yield* Effect.forEach(ids, (id) => Effect.zipRight(a.sessions.close(id), b.sessions.close(id)))
      yield* Effect.sleep(Duration.millis(200))
      watching = false
      yield* Fiber.join(watcher)
      expect(backwards).toBe(0)
      for (const id of ids) expect((yield* a.stored(id))?.seq).toBe(200)
    }), 30_000)
})

// Issue 19: a stored cursor resumes only the stream it was written for. The SQLite
// cases need the store to persist `Cursor.stream` (the store's side of the issue).
const streamA = "GET http://127.0.0.1/a/events"
const streamB = "GET http://127.0.0.1/b/events"
for (const [engine, base] of [["memory", Cursors.layerMemory], ["SQLite", sqliteStore]] as const) {
  describe(`SessionManager streams, on the ${engine} store`, () => {
    it.scoped("cursors carry the session's stream; another stream is refused with SessionStreamMismatch, touching nothing", () =>
      Effect.gen(function*() {
        const { f, sessions, stored } = yield* setup({}, base)
        const session = yield* sessions.open("s", { stream: streamA })
        expect(session.stream).toBe(streamA)
        yield* session.tracker.recordAll(events(1, 2))
        yield* TestClock.adjust(flush)
        yield* settle
        expect(yield* stored("s")).toMatchObject({ lastEventId: "e2", seq: 2, stream: streamA }) // the worker's write
        yield* session.tracker.recordEvent(event(3))
        yield* sessions.close("s")
        expect(yield* stored("s")).toMatchObject({ lastEventId: "e3", seq: 3, stream: streamA }) // the close's flush
        const writes = f.calls.length
        const refused = yield* Effect.flip(sessions.open("s", { stream: streamB }))
        expect(refused).toMatchObject({ _tag: "SessionStreamMismatch", sessionId: "s", stored: streamA, requested: streamB })
        expect(refused.message).toContain(streamA)
        expect(refused.message).toContain(streamB)
        expect(yield* sessions.get("s")).toEqual(Option.none())
        expect(yield* sessions.size).toBe(0)
        const held = yield* Effect.flip(Effect.scoped(sessions.hold("s", { stream: streamB })))
        expect(held._tag).toBe("SessionStreamMismatch")
        expect(f.calls.length).toBe(writes)
        expect(yield* stored("s")).toMatchObject({ lastEventId: "e3", seq: 3, stream: streamA })
        // Its own stream, or none named, resumes it.
        const again = yield* sessions.open("s", { stream: streamA })
        expect(yield* again.seq).toBe(3)
        expect(yield* sessions.open("s")).toBe(again)
        // Open, it is refused to another stream as well.
        expect((yield* Effect.flip(sessions.open("s", { stream: streamB })))._tag).toBe("SessionStreamMismatch")
      }))

    it.scoped("a stored cursor without a stream (an older row) is adopted, and written with the stream from then on", () =>
      Effect.gen(function*() {
        const { sessions, store, stored } = yield* setup({}, base)
        yield* store.saveAll([{ sessionId: "old", lastEventId: "e5", seq: 5, recentIds: ids(1, 5), updatedAt: 0 }])
        const session = yield* sessions.open("old", { stream: streamB })
        expect(yield* session.seq).toBe(5)
        expect(yield* session.tracker.isDuplicate("e5")).toBe(true)
        yield* session.tracker.recordEvent(event(6))
        yield* sessions.close("old")
        expect(yield* stored("old")).toMatchObject({ lastEventId: "e6", seq: 6, stream: streamB })
        expect((yield* Effect.flip(sessions.open("old", { stream: streamA })))._tag).toBe("SessionStreamMismatch")
      }))
  })
}
