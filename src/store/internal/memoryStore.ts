/** Cursors and leases in this process's memory, for `CursorStore.layerMemory` and `LeaseStore.layerMemory`. */
import { Clock, Effect, Option } from "effect"
import type { Cursor, CursorStore } from "../CursorStore.js"
import type { Lease, LeaseStore } from "../LeaseStore.js"
import { SessionBusy, type SessionLost } from "../StoreError.js"
import { fenced, keepingStream, newestPerSession } from "./cursorBatch.js"
import { blocks, holdsLease, released } from "./leaseRules.js"

interface Held {
  readonly owner: string
  readonly epoch: number
  expiresAt: number
}

/** Leases by the Effect `Clock`; `owners` is shared with the cursor store, which fences on it. */
export const makeLeases = (owners: Map<string, Held> = new Map()): LeaseStore["Type"] => ({
  acquire: (sessionId, owner, ttlMillis) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const held = owners.get(sessionId)
      if (blocks(held, now)) {
        return Effect.fail(new SessionBusy({ sessionId, owner: held!.owner, expiresInMillis: held!.expiresAt - now }))
      }
      const epoch = (held?.epoch ?? 0) + 1
      owners.set(sessionId, { owner, epoch, expiresAt: now + ttlMillis })
      return Effect.succeed<Lease>({ sessionId, owner, epoch })
    }),
  renew: (leases, ttlMillis) =>
    Effect.map(Clock.currentTimeMillis, (now) =>
      leases.filter((lease) => {
        const held = owners.get(lease.sessionId)
        if (!holdsLease(held, lease)) return true
        held.expiresAt = now + ttlMillis
        return false
      })),
  release: (lease) =>
    Effect.sync(() => {
      const held = owners.get(lease.sessionId)
      if (held?.epoch === lease.epoch) held.expiresAt = released
    })
})

/** Cursors and the leases that fence them, sharing one table of owners. */
export const make = (): { readonly cursors: CursorStore["Type"]; readonly leases: LeaseStore["Type"] } => {
  const cursors = new Map<string, Cursor>()
  const owners = new Map<string, Held>()
  const leases = makeLeases(owners)
  const saveAll = (batch: Iterable<Cursor>) =>
    Effect.sync(() => {
      const lost: Array<SessionLost> = []
      for (const cursor of newestPerSession(batch).values()) {
        if (cursor.epoch !== undefined && owners.get(cursor.sessionId)?.epoch !== cursor.epoch) {
          lost.push(fenced(cursor))
          continue
        }
        const stored = cursors.get(cursor.sessionId)
        if (stored === undefined || cursor.seq > stored.seq) cursors.set(cursor.sessionId, keepingStream(cursor, stored))
      }
      return lost
    })
  return {
    cursors: {
      load: (sessionId) => Effect.sync(() => Option.fromNullable(cursors.get(sessionId))),
      saveAll,
      remove: (sessionId) => Effect.sync(() => void cursors.delete(sessionId)),
      ...leases
    },
    leases
  }
}
