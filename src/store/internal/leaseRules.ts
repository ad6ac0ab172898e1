/**
 * The lease rules every lease store applies the same way (memory, key-value and
 * SQL): when a stored lease blocks another owner, and when it may be renewed.
 */
import type { Lease } from "../LeaseStore.js"
import { isDeadOwner } from "./processOwner.js"

/** A released lease's expiry: in the past for every clock, its epoch kept for the next owner to pass. */
export const released = 0

/** Whether the stored lease `held` keeps another owner out at `now`: live, and its holder not a dead process of this host. */
export const blocks = (held: { readonly owner: string; readonly expiresAt: number } | undefined, now: number): boolean =>
  held !== undefined && held.expiresAt > now && !isDeadOwner(held.owner)

/** Whether the stored lease `held` is still `lease`, to renew: the same epoch, not released. */
export const holdsLease = <H extends { readonly epoch: number; readonly expiresAt: number }>(
  held: H | undefined,
  lease: Lease
): held is H => held !== undefined && held.epoch === lease.epoch && held.expiresAt !== released
