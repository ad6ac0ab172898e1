/**
 * The cursors the persistence worker holds until they are durable, one per session,
 * and the rules for when each is written. Synchronous and clock-free (every time is
 * an argument, epoch ms), so the rules are tested without Effects.
 *
 * Untried cursors (never written yet) are written together once the oldest has waited
 * `flushInterval`, or at once when `batchSize` sessions are waiting; a failed cursor
 * waits for its own retry time. A batch taken by `due` is settled by `succeeded` or
 * `failed` before anything else is absorbed.
 */
import type { Cursor } from "../../store/CursorStore.js"
import type { PersistenceRequest } from "../PersistenceWorker.js"

export interface PendingSettings {
  readonly batchSize: number
  readonly flushIntervalMillis: number
  readonly maxSaveAttempts: number
  readonly retryBaseMillis: number
}

/** A coalesced cursor of one session. */
interface Entry {
  eventId: string
  seq: number
  recentIds: PersistenceRequest["recentIds"]
  epoch: number | undefined
  onFenced: PersistenceRequest["onFenced"]
  stream: string | undefined
  /** The oldest event this cursor covers that is not durable yet. */
  firstRecordedAt: number
  /** Failed writes since it was absorbed, or since it last counted as given up. */
  attempt: number
  /** When a failed write is retried; undefined while untried. */
  retryAt: number | undefined
}

/** What a failed write did to the table, for the worker's metrics and log. */
export interface FailedWrite {
  /** Cursors that reached `maxSaveAttempts` (counted as failed; kept, their backoff starts over). */
  readonly gaveUp: number
  /** Whether some cursor failed for the first time (so the failure is worth a log line). */
  readonly firstFailure: boolean
  /** The earliest retry now scheduled. */
  readonly retryAt: number
}

// Retry delays stop doubling at 100× the base, so a store that comes back is found soon.
const maxBackoffFactor = 100

export class PendingTable {
  private readonly entries = new Map<string, Entry>()
  /** Entries not tried yet (none of their writes failed). */
  private untried = 0
  /** When the untried entries are written; undefined when there are none. */
  private flushAt: number | undefined = undefined
  /** The earliest retry of a failed entry. */
  private retryAt = Infinity

  constructor(private readonly settings: PendingSettings) {}

  /** Sessions with a cursor that is not durable yet. */
  get size(): number {
    return this.entries.size
  }

  /**
   * Takes a request in; returns true when it was folded into the session's held
   * cursor rather than adding one. A newer cursor takes over the held one's retry
   * schedule, so the retry writes the newest.
   */
  absorb(request: PersistenceRequest, now: number): boolean {
    const held = this.entries.get(request.sessionId)
    if (held === undefined) {
      this.entries.set(request.sessionId, {
        eventId: request.eventId,
        seq: request.seq,
        recentIds: request.recentIds,
        epoch: request.epoch,
        onFenced: request.onFenced,
        stream: request.stream,
        firstRecordedAt: request.recordedAt,
        attempt: 0,
        retryAt: undefined
      })
      this.untried++
      if (this.flushAt === undefined) this.flushAt = now + this.settings.flushIntervalMillis
      return false
    }
    // A later owner's cursor wins whatever its seq: the older owner's would be fenced.
    const epoch = request.epoch ?? 0
    const heldEpoch = held.epoch ?? 0
    if (epoch > heldEpoch || (epoch === heldEpoch && request.seq > held.seq)) {
      held.eventId = request.eventId
      held.seq = request.seq
      held.recentIds = request.recentIds
      held.epoch = request.epoch
      held.onFenced = request.onFenced
      held.stream = request.stream
    }
    if (request.recordedAt < held.firstRecordedAt) held.firstRecordedAt = request.recordedAt
    return true
  }

  /**
   * When the next write is due, or undefined when nothing is held. While `draining`,
   * untried cursors are due at once; failed ones keep their backoff.
   */
  nextWrite(draining = false): number | undefined {
    const untriedAt = this.untried === 0
      ? Infinity
      : draining || this.entries.size >= this.settings.batchSize
      ? -Infinity
      : this.flushAt!
    const at = Math.min(untriedAt, this.retryAt)
    return at === Infinity ? undefined : at
  }

  /** The cursors due at `now` (untried or past their retry time), at most `batchSize`. */
  due(now: number): ReadonlyArray<Cursor> {
    const batch: Array<Cursor> = []
    for (const [sessionId, held] of this.entries) {
      if (held.retryAt !== undefined && held.retryAt > now) continue
      batch.push({
        sessionId,
        lastEventId: held.eventId,
        seq: held.seq,
        recentIds: held.recentIds?.(held.eventId),
        updatedAt: now,
        epoch: held.epoch,
        stream: held.stream
      })
      if (batch.length === this.settings.batchSize) break
    }
    return batch
  }

  /** Who to tell if the session's held cursor is refused for a stale epoch. */
  onFenced(sessionId: string): PersistenceRequest["onFenced"] {
    return this.entries.get(sessionId)?.onFenced
  }

  /**
   * The batch is durable (or refused for good): drops its cursors. Returns each one's staleness (ms from
   * the oldest event it covers to `now`).
   */
  succeeded(batch: ReadonlyArray<Cursor>, now: number): Array<number> {
    const staleness: Array<number> = []
    for (const cursor of batch) {
      staleness.push(now - this.entries.get(cursor.sessionId)!.firstRecordedAt)
      this.entries.delete(cursor.sessionId)
    }
    this.reschedule(now)
    return staleness
  }

  /**
   * The batch's write failed: each cursor waits `retryBase` doubled per failed
   * attempt (up to 100×), times a jitter in [½, 1) from `random` (in [0, 1)), so
   * cursors and instances that failed together do not retry together.
   */
  failed(batch: ReadonlyArray<Cursor>, now: number, random: number): FailedWrite {
    const { maxSaveAttempts, retryBaseMillis } = this.settings
    let gaveUp = 0
    let firstFailure = false
    for (const cursor of batch) {
      const held = this.entries.get(cursor.sessionId)!
      held.attempt++
      if (held.attempt === 1) firstFailure = true
      const factor = Math.min(maxBackoffFactor, 2 ** (held.attempt - 1))
      held.retryAt = now + Math.ceil(retryBaseMillis * factor * (0.5 + random / 2))
      if (held.attempt >= maxSaveAttempts) {
        gaveUp++
        held.attempt = 0
      }
    }
    this.reschedule(now)
    return { gaveUp, firstFailure, retryAt: this.retryAt }
  }

  /** Recounts the schedule after a write: O(size), once per batch. */
  private reschedule(now: number): void {
    this.untried = 0
    this.retryAt = Infinity
    for (const held of this.entries.values()) {
      if (held.retryAt === undefined) this.untried++
      else if (held.retryAt < this.retryAt) this.retryAt = held.retryAt
    }
    if (this.untried === 0) this.flushAt = undefined
    else if (this.flushAt === undefined) this.flushAt = now + this.settings.flushIntervalMillis
  }
}
