/**
 * Many sessions over several instances: "consume these 100 feeds with 3 replicas".
 * Every instance runs `run` with the same session ids; each claims sessions nobody
 * holds (`SessionManager.hold`, so ownership is the store's lease), up to
 * `maxOwned`, and runs the caller's handler for each while it owns it. A session
 * whose instance died is claimed again once its lease expires: failover takes at
 * most `leaseTtl` plus one `claimInterval`.
 */
import { Cause, Config, Deferred, Duration, Effect, Exit } from "effect"
import { SessionBusy } from "../store/CursorStore.js"
import { count, duration, positiveDuration, positiveInt, resolve } from "../internal/settings.js"
import { SettingsError } from "../Settings.js"
import { type Session, SessionManager } from "./SessionManager.js"

export interface Settings {
  /** Most sessions this instance owns at once. */
  readonly maxOwned: number
  /** How often this instance looks for sessions nobody holds. */
  readonly claimInterval: Duration.Duration
}

export const defaults: Settings = {
  maxOwned: 100,
  claimInterval: Duration.seconds(1)
}

/** The group's settings from the environment, each with its default. */
export const config: Config.Config<Settings> = Config.all({
  maxOwned: positiveInt("SSE_GROUP_MAX_OWNED", defaults.maxOwned, "Most sessions one instance owns at once"),
  claimInterval: positiveDuration(
    "SSE_GROUP_CLAIM_INTERVAL",
    defaults.claimInterval,
    "How often an instance looks for sessions nobody holds"
  )
})

/**
 * A setting given to `run` that the group cannot run with.
 * @deprecated Every module's settings now fail with `Settings.SettingsError` (tag "SettingsError").
 */
export const SessionGroupSettingsError = SettingsError
/** @deprecated Use `Settings.SettingsError`. */
export type SessionGroupSettingsError = SettingsError

/**
 * Claims and runs sessions until interrupted. `handler` runs while this instance
 * owns the session (interrupted if it loses it); when it succeeds the session is
 * done here, when it fails (or the session is lost) the session is released and may
 * be claimed again by any instance.
 */
export const run = <E, R>(
  sessionIds: Iterable<string>,
  handler: (session: Session) => Effect.Effect<void, E, R>,
  options: Partial<Settings> = {}
): Effect.Effect<never, SettingsError, SessionManager | R> =>
  Effect.gen(function*() {
    const settings = yield* resolve("SessionGroup", defaults, options, { maxOwned: count, claimInterval: duration })
    const manager = yield* SessionManager
    const ids = Array.from(new Set(sessionIds))
    /** Claimed, or being claimed: what counts against maxOwned. */
    const running = new Set<string>()
    const done = new Set<string>()

    /** Holds the session and runs the handler; `claimed` says at once whether the hold was had. */
    const runOne = (sessionId: string, claimed: Deferred.Deferred<boolean>) =>
      Effect.scoped(Effect.flatMap(
        manager.hold(sessionId).pipe(Effect.onExit((exit) => Deferred.succeed(claimed, Exit.isSuccess(exit)))),
        (session) => Effect.raceFirst(handler(session), session.lost)
      )).pipe(
        Effect.tap(() => void done.add(sessionId)),
        Effect.catchIf((error) => error instanceof SessionBusy, () => Effect.void),
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logWarning("SessionGroup: session released", cause).pipe(
            Effect.annotateLogs({ sessionId })
          )
        ),
        Effect.ensuring(Effect.sync(() => running.delete(sessionId)))
      )

    // One hold at a time, so a busy session frees its slot for the next id in the
    // same pass: counting busy ones against maxOwned made the first maxOwned ids,
    // held elsewhere, hide all the others from this instance forever.
    const claim = Effect.gen(function*() {
      for (const sessionId of ids) {
        if (running.size >= settings.maxOwned) return
        if (running.has(sessionId) || done.has(sessionId)) continue
        running.add(sessionId)
        const claimed = yield* Deferred.make<boolean>()
        yield* Effect.fork(runOne(sessionId, claimed))
        if (!(yield* Deferred.await(claimed))) running.delete(sessionId)
      }
    })
    return yield* Effect.forever(Effect.zipRight(claim, Effect.sleep(settings.claimInterval)))
  })
