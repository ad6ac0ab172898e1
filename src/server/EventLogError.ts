/**
 * The event log's errors, in a module of their own that imports nothing of the log's
 * machinery: the backends build them and callers `catchTag` them, without either
 * importing the other (as `StoreError` does for the stores).
 */
import { Data } from "effect"
import type { StreamEnd } from "./EventLog.js"

/** The backend failed (I/O, driver, a damaged row); `message` is one line. */
export class EventLogError extends Data.TaggedError("EventLogError")<{
  readonly operation: "open" | "create" | "append" | "read" | "follow" | "end" | "delete" | "info" | "trim"
  readonly stream: string
  readonly cause: unknown
}> {
  override get message() {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `${this.operation} "${this.stream}" failed: ${reason}`.replace(/\s+/g, " ")
  }
}

/** No stream by that name (never created, or deleted). */
export class StreamNotFound extends Data.TaggedError("StreamNotFound")<{
  readonly stream: string
}> {}

/** The stream completed or failed: nothing more can be appended. */
export class StreamEnded extends Data.TaggedError("StreamEnded")<{
  readonly stream: string
  readonly end: StreamEnd
}> {}

/** Retention trimmed events after `requested`: the reader missed some; `firstAvailable` goes on. */
export class EventLogGap extends Data.TaggedError("EventLogGap")<{
  readonly stream: string
  readonly requested: string
  readonly firstAvailable: string
}> {}

/**
 * `id` was never issued by this stream: not of the log's form, of another stream or
 * of an earlier generation of this name, or ahead of its last id.
 */
export class UnknownEventId extends Data.TaggedError("UnknownEventId")<{
  readonly stream: string
  readonly id: string
  readonly reason: "malformed" | "other-stream" | "ahead"
}> {}

/** A producer whose epoch is older than the stream's newest producer's: its append wrote nothing. */
export class ProducerFenced extends Data.TaggedError("ProducerFenced")<{
  readonly stream: string
  readonly epoch: number
  readonly current: number
}> {}

/**
 * A request the log refuses before touching storage: a stream name empty or longer
 * than `maxStreamNameLength`, an empty event list, an event type with a line break
 * (SSE could not carry it), a `limit` below 1, a retention bound below 1.
 */
export class InvalidRequest extends Data.TaggedError("InvalidRequest")<{
  readonly operation: "create" | "append" | "read" | "follow" | "end" | "delete" | "info" | "trim"
  readonly stream: string
  readonly reason: string
}> {}

/** The errors of positioning a read at `after`. */
export type PositionError = UnknownEventId | EventLogGap
