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
 *
 * Layers: `layerMemory`, `layerSql` (any `@effect/sql` client), and the engines
 * `SqliteEventLog.layer(filename)` and `PgEventLog.layer(url)`. In a process, the
 * followers of one stream share one subscription (one wake-up, one read of the new
 * events) and each has a buffer of `readerBuffer` events; one that falls behind it
 * goes on by reading storage, so a slow reader costs no memory and holds up no one.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { Config, Context, Duration, Effect, Layer, type Option, type Scope, type Stream } from "effect"
import { positiveDuration, positiveInt } from "../internal/settings.js"
import * as eventId from "./internal/eventId.js"
import * as core from "./internal/eventLog.js"
import * as memory from "./internal/memoryLog.js"
import * as sqlLog from "./internal/sqlLog.js"
import type {
  EventLogError,
  InvalidRequest,
  PositionError,
  ProducerFenced,
  StreamEnded,
  StreamNotFound
} from "./EventLogError.js"

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

export {
  EventLogError,
  EventLogGap,
  InvalidRequest,
  type PositionError,
  ProducerFenced,
  StreamEnded,
  StreamNotFound,
  UnknownEventId
} from "./EventLogError.js"


export class EventLog extends Context.Tag("effect-sse-resume/EventLog")<EventLog, {
  /** Creates the stream if it does not exist (idempotent; `retention` applies when it creates). */
  readonly create: (stream: string, options?: { readonly retention?: Retention }) => Effect.Effect<StreamInfo, EventLogError | InvalidRequest>
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
  ) => Effect.Effect<ReadonlyArray<LoggedEvent>, EventLogError | InvalidRequest | StreamEnded | ProducerFenced>
  /** Events after `after`, at most `limit`, and the end if the read reached it. */
  readonly read: (stream: string, request?: ReadRequest) => Effect.Effect<ReadResult, EventLogError | InvalidRequest | StreamNotFound | PositionError>
  /**
   * The events after `after`, then new ones as they are appended; ends when the stream
   * completes, fails with `StreamEnded` (a `Failed` end) when it fails. Positioning
   * errors come before any event; later, `StreamNotFound` if the stream is deleted,
   * `EventLogGap` if retention removes events this follower has not read yet.
   */
  readonly follow: (
    stream: string,
    request?: { readonly after?: string | undefined }
  ) => Stream.Stream<LoggedEvent, EventLogError | InvalidRequest | StreamNotFound | PositionError | StreamEnded>
  /** Marks the stream completed: readers get the rest, then the end. Idempotent; fenced as `append` is. */
  readonly complete: (stream: string, producer?: Producer) => Effect.Effect<void, EndError>
  /** Marks the stream failed with `reason`; otherwise as `complete`. */
  readonly fail: (
    stream: string,
    reason: string,
    producer?: Producer
  ) => Effect.Effect<void, EndError>
  /** Removes the stream and its events (its followers end with `StreamNotFound`); its generation is never reused. */
  readonly delete: (stream: string) => Effect.Effect<void, EventLogError | InvalidRequest>
  readonly info: (stream: string) => Effect.Effect<Option.Option<StreamInfo>, EventLogError | InvalidRequest>
  /**
   * Applies the stream's retention now (the layer does it for every stream every
   * `trimInterval`); returns how many events it removed.
   */
  readonly trim: (stream: string) => Effect.Effect<number, EventLogError | InvalidRequest>
}>() {}

/** The errors of `complete` and `fail`. */
export type EndError = EventLogError | InvalidRequest | StreamNotFound | StreamEnded | ProducerFenced

// --- Storage ---

/** What a backend knows of a stream besides its events. */
export interface Head {
  readonly generation: number
  /** The last seq issued in this generation (0 before the first append). */
  readonly lastSeq: number
  /** Every seq up to this one was removed by retention; the first kept is the next. */
  readonly trimmedThrough: number
  readonly end: Option.Option<StreamEnd>
  readonly retention: Retention
}

/**
 * A backend: storage only; requests reach it checked. `make` adds the rest (checks,
 * positioning, the shared subscription, the trimmer, spans, metrics), so an engine
 * of its own (`RedisEventLog`) implements this and nothing more.
 */
export interface Storage {
  readonly head: (stream: string) => Effect.Effect<Option.Option<Head>, EventLogError>
  /** Creates the stream with a fresh generation unless it exists; its head either way. */
  readonly create: (stream: string, retention: Retention) => Effect.Effect<Head, EventLogError>
  /** Appends all or none, creating the stream if needed; fenced when `epoch` is below the stream's newest. */
  readonly append: (
    stream: string,
    events: ReadonlyArray<EventInput>,
    epoch: number | undefined
  ) => Effect.Effect<ReadonlyArray<LoggedEvent>, EventLogError | StreamEnded | ProducerFenced>
  /** Up to `limit` kept events of `generation` with a seq above `afterSeq`, in order. */
  readonly readAfter: (
    stream: string,
    generation: number,
    afterSeq: number,
    limit: number
  ) => Effect.Effect<ReadonlyArray<LoggedEvent>, EventLogError>
  /** Records the end; the same end again is accepted, another one is `StreamEnded`. */
  readonly end: (
    stream: string,
    end: StreamEnd,
    epoch: number | undefined
  ) => Effect.Effect<void, EventLogError | StreamNotFound | StreamEnded | ProducerFenced>
  readonly delete: (stream: string) => Effect.Effect<void, EventLogError>
  /** Applies the stream's retention; the number of events removed. */
  readonly trim: (stream: string) => Effect.Effect<number, EventLogError>
  /** The streams that have a retention, for the background trimmer. */
  readonly retained: Effect.Effect<ReadonlyArray<string>, EventLogError>
  /**
   * Names of streams changed by other instances (PostgreSQL notifications); absent
   * when the backend has none, and then followed streams are polled.
   */
  readonly changes?: Stream.Stream<string, unknown> | undefined
  /** Whether others (processes, transactions committing later) append unseen: followed streams are then polled. */
  readonly pollsOthers: boolean
}

/** The id of `seq` in `generation`: the form every `Storage` issues (`<generation>-<seq>`). */
export const formatId: (generation: number, seq: number) => string = eventId.formatId

// --- Settings ---

export interface Settings {
  /** Longest stream name accepted, in UTF-16 code units. */
  readonly maxStreamNameLength: number
  /** Most events one `read` returns (a larger `limit` is lowered to it), and a follower's page from storage. */
  readonly maxReadLimit: number
  /**
   * Events a follower may have waiting; one that falls further behind drops its buffer
   * and goes on by reading storage, so a slow reader holds at most this many.
   */
  readonly readerBuffer: number
  /** How often the layer applies every stream's retention. */
  readonly trimInterval: Duration.Duration
  /**
   * How often a followed stream's last id is read, once per stream per process, to
   * see appends made elsewhere (`layerSql`: another process on the same database, or
   * a caller's transaction that committed after the append). The PostgreSQL engine
   * is told by notifications and polls only as a safety net.
   */
  readonly pollInterval: Duration.Duration
}

export const defaults: Settings = {
  maxStreamNameLength: 256,
  maxReadLimit: 1_000,
  readerBuffer: 1_024,
  trimInterval: Duration.seconds(30),
  pollInterval: Duration.millis(500)
}

/** The settings from the environment, each with its default. */
export const config: Config.Config<Settings> = Config.all({
  maxStreamNameLength: positiveInt("SSE_EVENT_LOG_MAX_STREAM_NAME", defaults.maxStreamNameLength, "Longest stream name accepted"),
  maxReadLimit: positiveInt("SSE_EVENT_LOG_MAX_READ", defaults.maxReadLimit, "Most events one read of the event log returns"),
  readerBuffer: positiveInt(
    "SSE_EVENT_LOG_READER_BUFFER",
    defaults.readerBuffer,
    "Events a follower may have waiting before it goes on from storage"
  ),
  trimInterval: positiveDuration("SSE_EVENT_LOG_TRIM_INTERVAL", defaults.trimInterval, "How often retention is applied"),
  pollInterval: positiveDuration(
    "SSE_EVENT_LOG_POLL_INTERVAL",
    defaults.pollInterval,
    "How often a followed stream is checked for appends made by other processes"
  )
})

// --- Metrics ---

export { appended, readerFallbacks, readers, subscriptions, trimmed } from "./internal/logMetrics.js"

// --- Constructors ---

/**
 * The log over `storage`, with `settings` checked (a setting out of its rule fails
 * with `EventLogError`, operation "open"); its trimmer and shared subscriptions live
 * in the scope. For engines with storage of their own.
 */
export const make = (storage: Storage, settings: Settings): Effect.Effect<EventLog["Type"], EventLogError, Scope.Scope> =>
  core.make(storage, settings)

/**
 * The SQL storage of `layerSql` on the client in context, creating its tables; with
 * `changes`, the names of streams other instances changed (the PostgreSQL engine's
 * notifications on `sqlChannel`), which wake their followers.
 */
export const makeSqlStorage: (
  options?: { readonly changes?: Stream.Stream<string, unknown> | undefined }
) => Effect.Effect<Storage, EventLogError, SqlClient.SqlClient> = sqlLog.make

/** The notification channel the SQL storage names changed streams on (PostgreSQL `NOTIFY`). */
export const sqlChannel: string = sqlLog.channel

// --- Layers ---

/**
 * The log in this process's memory (ids start again with a new layer); for tests,
 * demos and single-process servers that need no durability. Fails (`EventLogError`,
 * operation "open") only on a setting out of its rule.
 */
export const layerMemory = (options: Partial<Settings> = {}): Layer.Layer<EventLog, EventLogError> =>
  Layer.scoped(EventLog, Effect.flatMap(memory.make, (storage) => core.make(storage, { ...defaults, ...options })))

/**
 * The log on any `@effect/sql` client (SQLite, PostgreSQL, …), creating its tables on
 * first use. Appends join the client's `withTransaction`: an upstream read, the
 * append and the upstream's cursor (`CursorStore.layerSql` on the same client) commit
 * together. Followers in this process are told of its appends at once; appends made
 * by other processes are seen by polling each followed stream's last id every
 * `pollInterval`, once per stream per process (the PostgreSQL engine uses
 * `LISTEN`/`NOTIFY` instead: `PgEventLog`).
 */
export const layerSql = (options: Partial<Settings> = {}): Layer.Layer<EventLog, EventLogError, SqlClient.SqlClient> =>
  Layer.scoped(EventLog, Effect.flatMap(sqlLog.make(), (storage) => core.make(storage, { ...defaults, ...options })))
