/**
 * `recordAll` without an Effect, for the client's hot path: a tracker with no
 * callbacks records a chunk of events synchronously, and running an Effect per
 * network chunk (a fiber step inside the channel) cost more than parsing a
 * one-event chunk (measured). A tracker that has callbacks, or one made
 * elsewhere, answers undefined and the client runs `recordAll`.
 */
import type { SseEvent } from "../../wire/SseEvent.js"

export const recordNow: unique symbol = Symbol.for("effect-sse-resume/recordNow")

export interface RecordsNow {
  /**
   * Records `events` as `recordAll` with `keepWithoutId` would, keeping the
   * returned ones in `events` itself (compacted in place), or changes nothing
   * and returns false when an Effect is needed.
   */
  [recordNow](events: Array<SseEvent>): boolean
}

/**
 * Records in place when `tracker` can without an Effect; false: nothing was
 * recorded. Only a tracker made by `EventTracker.make` itself qualifies: one
 * derived from it (`Object.create`) may override `recordAll`, which then runs.
 */
export const tryRecordNow = (tracker: object, events: Array<SseEvent>): boolean => {
  const proto: Partial<RecordsNow> | null = Object.getPrototypeOf(tracker)
  if (proto === null || !Object.prototype.hasOwnProperty.call(proto, recordNow)) return false
  return proto[recordNow]!.call(tracker, events)
}
