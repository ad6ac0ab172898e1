/**
 * Who may consume a session: the holder of its lease in the `LeaseStore` (every
 * cursor store provides one on the same storage). A lease lasts `leaseTtl` by the
 * store's clock (the database's, so instances' clock skew does not matter) and is
 * renewed every `renewInterval` by one fiber per manager; when its owner dies it
 * expires (at once if the owner was a process of this host, named by the default
 * `owner`), and the next owner gets a higher epoch that fences the old owner's
 * writes (`CursorStore.saveAll`).
 *
 * `SessionManager.hold` uses this; its settings are part of `SessionManager.Settings`.
 */
import { Config, Duration } from "effect"
import { processOwner } from "../store/LeaseStore.js"
import { durationRule, isPositiveDuration, positiveDuration } from "../internal/settings.js"

// --- Settings ---

export interface Settings {
  /**
   * Names this process in another holder's `SessionBusy`: `LeaseStore.processOwner()`
   * by default (host/pid, and on Linux what lets a store on this host see the
   * process is gone and take its leases at once).
   */
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

export const defaults: Settings = {
  owner: processOwner(),
  leaseTtl: Duration.seconds(10),
  renewInterval: Duration.seconds(3),
  pollInterval: Duration.seconds(1)
}

/** The ownership settings from the environment, each with its default. */
export const config: Config.Config<Settings> = Config.all({
  owner: Config.string("SSE_OWNER").pipe(
    Config.withDefault(defaults.owner),
    Config.withDescription(
      "Names this process to other holders of a session (default host/pid, on Linux with what shows the process gone)"
    )
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
