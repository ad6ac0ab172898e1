/**
 * One manager's leases (`SessionManager`): acquires them, renews them all every
 * `renewInterval` in one call, releases them, and tells the manager when one is
 * lost. The rules of `SessionOwnership`, on a `LeaseStore`.
 */
import { type Clock, Duration, Effect, Option, Schedule } from "effect"
import type { CursorStore } from "../../store/CursorStore.js"
import { type Lease, LeaseStore } from "../../store/LeaseStore.js"
import { type CursorStoreError, type SessionBusy, SessionLost } from "../../store/StoreError.js"
import type { Settings } from "../SessionOwnership.js"

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
    readonly store: LeaseStore["Type"],
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

/**
 * The keeper of a manager on `cursors`: on the `LeaseStore` of the context, or, when
 * none is provided (a hand-made layer giving only a `CursorStore`), on the cursor
 * store's own lease members, the same leases.
 */
export const make = (
  settings: Settings,
  cursors: CursorStore["Type"],
  clock: Clock.Clock
): Effect.Effect<Keeper> =>
  Effect.map(Effect.serviceOption(LeaseStore), (leases) =>
    new Keeper(
      settings,
      Option.getOrElse(leases, () => ({ acquire: cursors.acquire, renew: cursors.renew, release: cursors.release })),
      clock
    ))
