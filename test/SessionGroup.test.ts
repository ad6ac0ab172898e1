/**
 * SessionGroup in one process under TestClock: managers over one in-memory store
 * (whose leases expire by the Effect clock), so lease loss and takeover are exact.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Fiber, Layer, TestClock } from "effect"
import * as Cursors from "../src/store/CursorStore.js"
import { CursorStore } from "../src/store/CursorStore.js"
import * as PersistenceWorker from "../src/session/PersistenceWorker.js"
import * as SessionGroup from "../src/session/SessionGroup.js"
import * as SessionManager from "../src/session/SessionManager.js"
import { settle } from "./support/settle.js"

const lease = { leaseTtl: Duration.seconds(10), renewInterval: Duration.seconds(3), pollInterval: Duration.seconds(1) }
const claimInterval = Duration.seconds(1)

/** A manager over `shared` whose renewals fail while `link.renewalsFail`. */
const manager = (shared: CursorStore["Type"], owner: string, link: { renewalsFail: boolean }) =>
  Effect.gen(function*() {
    const store = CursorStore.of({
      ...shared,
      renew: (leases, ttl) =>
        link.renewalsFail
          ? Effect.fail(new Cursors.CursorStoreError({ operation: "renew", cause: "unreachable" }))
          : shared.renew(leases, ttl)
    })
    const ctx = yield* Layer.build(
      SessionManager.layer({ ...lease, owner }).pipe(
        Layer.provideMerge(PersistenceWorker.layer()),
        Layer.provideMerge(Layer.succeed(CursorStore, store))
      )
    )
    return Context.get(ctx, SessionManager.SessionManager)
  })

describe("SessionGroup", () => {
  it.scoped("a handler is interrupted once its session's lease is lost, and the session is claimed again later", () =>
    Effect.gen(function*() {
      const shared = Context.get(yield* Layer.build(Cursors.layerMemory), CursorStore)
      const link = { renewalsFail: false }
      const sessions = yield* manager(shared, "a", link)
      const started: Array<string> = []
      const interrupted: Array<string> = []
      const handler = (session: SessionManager.Session) =>
        Effect.sync(() => started.push(session.sessionId)).pipe(
          Effect.zipRight(Effect.never),
          Effect.onInterrupt(() => Effect.sync(() => interrupted.push(session.sessionId)))
        )
      const group = yield* Effect.fork(
        SessionGroup.run(["g"], handler, { claimInterval }).pipe(Effect.provideService(SessionManager.SessionManager, sessions))
      )
      yield* settle
      expect(started).toEqual(["g"])
      link.renewalsFail = true
      // Given up before it can expire: within one lease of the failures starting (stepped by renewals).
      const steps = Math.ceil(Duration.toMillis(lease.leaseTtl) / Duration.toMillis(lease.renewInterval)) + 1
      for (let i = 0; i < steps && interrupted.length === 0; i++) {
        yield* TestClock.adjust(lease.renewInterval)
        yield* settle
      }
      expect(interrupted).toEqual(["g"])
      expect(started).toEqual(["g"])
      // Reachable again: a later claim takes it back once the lost lease has expired.
      link.renewalsFail = false
      for (let i = 0; i < steps * 4 && started.length < 2; i++) {
        yield* TestClock.adjust(claimInterval)
        yield* settle
      }
      expect(started).toEqual(["g", "g"])
      yield* Fiber.interrupt(group)
    }))

  it.effect("settings it cannot run with fail with SettingsError naming the setting", () =>
    Effect.gen(function*() {
      for (const [options, setting] of [[{ maxOwned: 0 }, "maxOwned"], [{ claimInterval: Duration.zero }, "claimInterval"]] as const) {
        const error = yield* Effect.flip(SessionGroup.run([], () => Effect.void, options))
        expect(error).toMatchObject({ _tag: "SettingsError", module: "SessionGroup", setting })
        expect(error).toBeInstanceOf(SessionGroup.SessionGroupSettingsError)
      }
    }).pipe(Effect.provideService(SessionManager.SessionManager, {} as SessionManager.SessionManager["Type"])))
})
