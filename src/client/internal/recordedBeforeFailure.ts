/**
 * When a tracker's async callback fails partway through `recordAll`, the events
 * before it are recorded (their callbacks ran: their cursors may already be
 * stored) while the Effect fails. The client must still hand them on, or they are
 * lost. The tracker leaves them under this symbol; the client takes them.
 */
import type { SseEvent } from "../../wire/SseEvent.js"

export const recordedBeforeFailure: unique symbol = Symbol.for("effect-sse-resume/recordedBeforeFailure")

export interface RecordedBeforeFailure {
  [recordedBeforeFailure]?: ReadonlyArray<SseEvent> | undefined
}

/** The events recorded before the last failed `recordAll` of `tracker`, once. */
export const takeRecordedBeforeFailure = (tracker: object): ReadonlyArray<SseEvent> => {
  const holder = tracker as RecordedBeforeFailure
  const events = holder[recordedBeforeFailure]
  if (events === undefined) return []
  holder[recordedBeforeFailure] = undefined
  return events
}
