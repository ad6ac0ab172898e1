/**
 * Who may consume a session: the holder of its lease in the cursor store. A lease
 * lasts `leaseTtl` by the store's clock (the database's, so instances' clock skew
 * does not matter) and is renewed every `renewInterval` by one fiber per manager;
 * when its owner dies it simply expires, and the next owner gets a higher epoch
 * that fences the old owner's writes (`CursorStore.saveAll`).
 *
 * `SessionManager.hold` uses this; its settings are part of `SessionManager.Settings`.
 */
import { type Clock, Config, Duration, Effect, Schedule } from "effect"
import {
  type CursorStore,
  type CursorStoreError,
  type Lease,
  type SessionBusy,
  SessionLost
} from "../store/CursorStore.js"
import { durationRule, isPositiveDuration, positiveDuration } from "../internal/settings.js"

// --- Settings ---

export interface Settings {
  /** Names this process in another holder's `SessionBusy`: host/pid by default. */
  readonly owner: string
  /**
   * A lease not renewed for this long (by the store's clock) ends by itself: the
   * longest a dead owner keeps its sessions. Finite: a lease that never ends
   * would keep a dead owner's sessions for good.
   */
  readonly leaseTtl: Duration.Duration
  /** How often leases are renewed; shorter than `leaseTtl`, so a failed renewal or two are survived. */
  readonly renewInterval: Duration.Duration
  /** How often a hold that waits for a busy session tries again. */
  readonly pollInterval: Duration.Duration
}

/** host/pid where the runtime tells them (Node), else a random name; the root imports nothing from `node:`. */
const defaultOwner = (): string => {
  const proc = (globalThis as { process?: { pid?: number; env?: Record<string, string | undefined> } }).process
  const host = proc?.env?.HOSTNAME ?? proc?.env?.COMPUTERNAME ?? "localhost"
  return proc?.pid === undefined ? `owner-${Math.random().toString(36).slice(2, 10)}` : `${host}/${proc.pid}`
}

export const defaults: Settings = {
  owner: defaultOwner(),
  leaseTtl: Duration.seconds(10),
  renewInterval: Duration.seconds(3),
  pollInterval: Duration.seconds(1)
}

/** The ownership settings from the environment, each with its default. */
export const config: Config.Config<Settings> = Config.all({
  owner: Config.string("SSE_OWNER").pipe(
    Config.withDefault(defaults.owner),
    Config.withDescription("Names this process to other holders of a session (default host/pid)")
  ),
  leaseTtl: positiveDuration(
    "SSE_LEASE_TTL",
    defaults.leaseTtl,
    "A session lease not renewed for this long ends: the longest a dead owner keeps a session"
  ),
  renewInterval: positiveDuration(
    "SSE_LEASE_RENEW_INTERVAL",
    defaults.renewInterval,
    "How often held session leases are renewed (shorter than SSE_LEASE_TTL)"
  ),
  pollInterval: positiveDuration(
    "SSE_OWNER_POLL_INTERVAL",
    defaults.pollInterval,
    "How often a hold waiting for a busy session tries again"
  )
})

/** Why `settings` cannot run, if so: which setting and the rule it breaks. */
export const invalid = (settings: Settings): { setting: keyof Settings; reason: string } | undefined => {
  if (settings.owner === "") return { setting: "owner", reason: "must not be empty" }
  for (const setting of ["leaseTtl", "renewInterval", "pollInterval"] as const) {
    if (!isPositiveDuration(settings[setting])) return { setting, reason: durationRule }
  }
  if (!Duration.isFinite(settings.leaseTtl)) {
    return { setting: "leaseTtl", reason: "must be finite: a lease that never expires is never taken over" }
  }
  return Duration.lessThan(settings.renewInterval, settings.leaseTtl)
    ? undefined
    : { setting: "renewInterval", reason: "must be shorter than leaseTtl" }
}

// --- Keeper: acquires, renews and releases one manager's leases ---

interface Kept {
  readonly lease: Lease
  /** Local ms when the last successful renewal (or the acquire) started: the lease runs at least ttl from it. */
  renewedAt: number
  readonly onLost: (lost: SessionLost) => void
}

export class Keeper {
  private readonly kept = new Map<string, Kept>()
  private readonly ttlMillis: number

  constructor(
    readonly settings: Settings,
    readonly store: CursorStore["Type"],
    readonly clock: Clock.Clock
  ) {
    this.ttlMillis = Duration.toMillis(settings.leaseTtl)
  }

  /**
   * Takes the session's lease and hands it to `onAcquired` in the same
   * uninterruptible step, so an interrupted hold never drops a lease it got. With
   * `wait`, a busy session is tried again every `pollInterval` until it is free.
   */
  acquire(
    sessionId: string,
    wait: boolean,
    onAcquired: (lease: Lease, startedAt: number) => void
  ): Effect.Effect<Lease, SessionBusy | CursorStoreError> {
    const once = Effect.uninterruptible(Effect.suspend(() => {
      const startedAt = this.clock.unsafeCurrentTimeMillis()
      return Effect.tap(
        this.store.acquire(sessionId, this.settings.owner, this.ttlMillis),
        (lease) => Effect.sync(() => onAcquired(lease, startedAt))
      )
    }))
    return wait
      ? Effect.retry(once, {
        schedule: Schedule.spaced(this.settings.pollInterval),
        while: (error) => error._tag === "SessionBusy"
      })
      : once
  }

  /**
   * Renews `lease` until `release`/`forget`; `onLost` is called once if it is lost
   * meanwhile. `acquiredAt`: local ms when its acquire started (it runs a ttl from then at least).
   */
  keep(lease: Lease, acquiredAt: number, onLost: (lost: SessionLost) => void): void {
    this.kept.set(lease.sessionId, { lease, renewedAt: acquiredAt, onLost })
  }

  /** Stops renewing `lease` (it ends at its expiry). */
  forget(lease: Lease): void {
    if (this.kept.get(lease.sessionId)?.lease === lease) this.kept.delete(lease.sessionId)
  }

  /** Stops renewing `lease` and ends it now, so a waiting owner takes over at once. */
  release(lease: Lease): Effect.Effect<void, CursorStoreError> {
    return Effect.suspend(() => {
      this.forget(lease)
      return this.store.release(lease)
    })
  }

  private lose(kept: Kept, reason: SessionLost["reason"]) {
    this.forget(kept.lease)
    kept.onLost(new SessionLost({ sessionId: kept.lease.sessionId, epoch: kept.lease.epoch, reason }))
  }

  /**
   * One renewal of every kept lease. A lease the store no longer holds is lost; when
   * the store cannot be reached, a lease is given up once it might expire before the
   * next renewal, since another owner may take it from then on.
   */
  renewAll(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const batch = Array.from(this.kept.values())
      if (batch.length === 0) return Effect.void
      const startedAt = this.clock.unsafeCurrentTimeMillis()
      const intervalMillis = Duration.toMillis(this.settings.renewInterval)
      return this.store.renew(batch.map((kept) => kept.lease), this.ttlMillis).pipe(
        // A hung statement must not hold the verdict past the lease.
        Effect.timeoutFail({ duration: this.settings.renewInterval, onTimeout: () => "no answer" as const }),
        Effect.matchEffect({
          onSuccess: (lost) =>
            Effect.sync(() => {
              const gone = new Set(lost)
              for (const kept of batch) {
                if (gone.has(kept.lease)) this.lose(kept, "taken")
                else kept.renewedAt = startedAt
              }
            }),
          onFailure: (error) => {
            const now = this.clock.unsafeCurrentTimeMillis()
            for (const kept of batch) {
              // The next verdict comes after a sleep and a timed-out try: two intervals from now.
              if (now - kept.renewedAt + 2 * intervalMillis >= this.ttlMillis) this.lose(kept, "unrenewed")
            }
            return Effect.logWarning("SessionOwnership: lease renewal failed", error).pipe(
              Effect.annotateLogs({ leases: batch.length })
            )
          }
        })
      )
    })
  }

  /** Renews every `renewInterval`, forever; forked into the manager's scope. */
  renewForever(): Effect.Effect<never> {
    return Effect.forever(Effect.zipRight(Effect.sleep(this.settings.renewInterval), this.renewAll()))
  }
}
