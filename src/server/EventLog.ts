/**
 * A durable log of events per stream (a name), the serving half's core: a producer
 * appends, readers replay after any id the log gave them and then follow it live.
 *
 * Ids are the log's, never the producer's or the clock's: `<generation>-<seq>`, where
 * `generation` is drawn from one counter for the whole log each time a stream name is
 * created (so a stream deleted and created again never reissues an id, and an id of
 * one stream is never mistaken for another's) and `seq` rises by one per event within
 * the generation (so a gap left by retention can be told from an id never issued).
 * Readers treat ids as opaque strings.
 *
 * The end of a stream (completed or failed) is an entry of the log, so a reader that
 * comes back to a finished stream gets the rest, then the end.
 */
import { Context, Data, type Effect, type Option, type Stream } from "effect"

/** An event as a producer gives it: the SSE `event` type (default "message") and `data`. */
export interface EventInput {
  readonly event?: string | undefined
  readonly data: string
}

/** An event as the log keeps it, with the id the log gave it. */
export interface LoggedEvent {
  readonly id: string
  readonly event: string
  readonly data: string
  /** Epoch milliseconds of the append (by the backend's clock), for age-based retention. */
  readonly appendedAt: number
}

/** How a stream ended, kept in the log itself. */
export type StreamEnd =
  | { readonly _tag: "Completed" }
  | { readonly _tag: "Failed"; readonly reason: string }

/** Retention of one stream: the most events kept, the oldest age kept; unset means unbounded. */
export interface Retention {
  readonly maxEvents?: number | undefined
  readonly maxAgeMillis?: number | undefined
}

export interface StreamInfo {
  readonly stream: string
  readonly generation: number
  /** The first kept event's id; none while the stream holds no event. */
  readonly firstId: Option.Option<string>
  /** The last id issued (kept or trimmed since); none before the first append. */
  readonly lastId: Option.Option<string>
  /** Events kept now. */
  readonly count: number
  /** Set once the stream completed or failed. */
  readonly end: Option.Option<StreamEnd>
  readonly retention: Retention
}

/** The producer's fencing token: its lease epoch (`LeaseStore`). */
export interface Producer {
  readonly epoch: number
}

/** A read: events after an id (none: from the first kept event), at most `limit` of them. */
export interface ReadRequest {
  readonly after?: string | undefined
  readonly limit?: number | undefined
}

/** A read's answer: the events, and the end when the read reached it. */
export interface ReadResult {
  readonly events: ReadonlyArray<LoggedEvent>
  readonly end: Option.Option<StreamEnd>
}

/** The backend failed (I/O, driver, a damaged row); `message` is one line. */
export class EventLogError extends Data.TaggedError("EventLogError")<{
  readonly operation: "open" | "create" | "append" | "read" | "follow" | "end" | "delete" | "info" | "trim"
  readonly stream: string
  readonly cause: unknown
}> {}

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

/** The errors of positioning a read at `after`. */
export type PositionError = UnknownEventId | EventLogGap

export class EventLog extends Context.Tag("effect-sse-resume/EventLog")<EventLog, {
  /** Creates the stream if it does not exist (idempotent; `retention` applies when it creates). */
  readonly create: (stream: string, options?: { readonly retention?: Retention }) => Effect.Effect<StreamInfo, EventLogError>
  /**
   * Appends events in order, all or none, creating the stream if needed; returns them
   * with their ids. With a `producer`, refused (`ProducerFenced`, nothing written) if a
   * newer epoch has appended to or ended this stream; the newest epoch is kept. Inside
   * the SQL client's `withTransaction`, joins it.
   */
  readonly append: (
    stream: string,
    events: ReadonlyArray<EventInput>,
    producer?: Producer
  ) => Effect.Effect<ReadonlyArray<LoggedEvent>, EventLogError | StreamEnded | ProducerFenced>
  /** Events after `after`, at most `limit`, and the end if the read reached it. */
  readonly read: (stream: string, request?: ReadRequest) => Effect.Effect<ReadResult, EventLogError | StreamNotFound | PositionError>
  /**
   * The events after `after`, then new ones as they are appended; ends when the stream
   * completes, fails with `StreamEnded` (a `Failed` end) when it fails. Positioning
   * errors come before any event.
   */
  readonly follow: (
    stream: string,
    request?: { readonly after?: string | undefined }
  ) => Stream.Stream<LoggedEvent, EventLogError | StreamNotFound | PositionError | StreamEnded>
  /** Marks the stream completed: readers get the rest, then the end. Idempotent; fenced as `append` is. */
  readonly complete: (stream: string, producer?: Producer) => Effect.Effect<void, EventLogError | StreamNotFound | StreamEnded | ProducerFenced>
  /** Marks the stream failed with `reason`; otherwise as `complete`. */
  readonly fail: (
    stream: string,
    reason: string,
    producer?: Producer
  ) => Effect.Effect<void, EventLogError | StreamNotFound | StreamEnded | ProducerFenced>
  /** Removes the stream and its events; its generation is never reused. */
  readonly delete: (stream: string) => Effect.Effect<void, EventLogError>
  readonly info: (stream: string) => Effect.Effect<Option.Option<StreamInfo>, EventLogError>
}>() {}
