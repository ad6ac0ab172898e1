/**
 * The backend-independent half of every `EventLog` layer: checking requests,
 * positioning a read at `after`, following a stream through the process's shared
 * subscription (`fanout.ts`), the background trimmer, spans and metrics. A backend
 * only stores: it implements `Storage`.
 */
import { Chunk, Effect, Metric, Option, Schedule, type Scope, Stream } from "effect"
import type * as EventLog from "../EventLog.js"
import { countRule, durationRule, isCount, isPositiveDuration } from "../../internal/settings.js"
import type { Head, Storage } from "../EventLog.js"
import { EventLogError, EventLogGap, InvalidRequest, StreamEnded, StreamNotFound, UnknownEventId } from "../EventLogError.js"
import { formatId, seqOf } from "./eventId.js"
import { type Hubs, makeHubs } from "./fanout.js"
import { appended, trimmed } from "./logMetrics.js"

// --- Ids ---

// Both parts below 10^15, so they are safe integers; anything longer is not an id of ours.
const idPattern = /^([1-9][0-9]{0,14})-([1-9][0-9]{0,14})$/

/** An id in errors is cut short: a hostile `Last-Event-ID` may be huge. */
const shown = (id: string) => id.length <= 64 ? id : `${id.slice(0, 64)}…`

/**
 * Where a read after `after` starts in `head`'s generation: the seq it follows. An id
 * this stream never issued is `UnknownEventId`, one retention removed the successor
 * of is `EventLogGap`; no `after` starts at the first kept event.
 */
const position = (
  stream: string,
  head: Head,
  after: string | undefined
): Effect.Effect<number, UnknownEventId | EventLogGap> => {
  if (after === undefined) return Effect.succeed(head.trimmedThrough)
  const match = after.length <= 31 ? idPattern.exec(after) : null
  if (match === null) return Effect.fail(new UnknownEventId({ stream, id: shown(after), reason: "malformed" }))
  const generation = Number(match[1])
  const seq = Number(match[2])
  if (generation !== head.generation) return Effect.fail(new UnknownEventId({ stream, id: after, reason: "other-stream" }))
  if (seq > head.lastSeq) return Effect.fail(new UnknownEventId({ stream, id: after, reason: "ahead" }))
  if (seq < head.trimmedThrough) {
    return Effect.fail(
      new EventLogGap({ stream, requested: after, firstAvailable: formatId(head.generation, head.trimmedThrough + 1) })
    )
  }
  return Effect.succeed(seq)
}

// --- Checks ---

type Operation = InvalidRequest["operation"]

const invalid = (operation: Operation, stream: string, reason: string) =>
  Effect.fail(new InvalidRequest({ operation, stream: shown(stream), reason }))

const checkName = (settings: EventLog.Settings, operation: Operation, stream: string) =>
  stream.length === 0
    ? invalid(operation, stream, "the stream name is empty")
    : stream.length > settings.maxStreamNameLength
    ? invalid(operation, stream, `the stream name is longer than ${settings.maxStreamNameLength} (maxStreamNameLength)`)
    : Effect.void

const lineBreak = /[\r\n]/

const checkEvents = (stream: string, events: ReadonlyArray<EventLog.EventInput>) => {
  if (events.length === 0) return invalid("append", stream, "no events to append")
  for (const event of events) {
    if (typeof event.data !== "string") return invalid("append", stream, "an event's data is not a string")
    if (event.event !== undefined && (typeof event.event !== "string" || lineBreak.test(event.event))) {
      return invalid("append", stream, "an event type is not a string on one line")
    }
  }
  return Effect.void
}

const isCountOrUnset = (n: number | undefined) => n === undefined || isCount(n)

const checkRetention = (stream: string, retention: EventLog.Retention) =>
  isCountOrUnset(retention.maxEvents) && isCountOrUnset(retention.maxAgeMillis)
    ? Effect.void
    : invalid("create", stream, "retention bounds must be whole numbers ≥ 1")

/** Settings given in code obey the rules the environment's do (`internal/settings.ts`). */
const checkSettings = (settings: EventLog.Settings) => {
  const bad = (["maxStreamNameLength", "maxReadLimit", "readerBuffer"] as const).find((key) => !isCount(settings[key])) ??
    (["trimInterval", "pollInterval"] as const).find((key) => !isPositiveDuration(settings[key]))
  return bad === undefined ? Effect.void : Effect.fail(
    new EventLogError({
      operation: "open",
      stream: "",
      cause: `${bad}: ${String(settings[bad])} ${bad.endsWith("Interval") ? durationRule : countRule}`
    })
  )
}

// --- The service ---

const infoOf = (stream: string, head: Head): EventLog.StreamInfo => ({
  stream,
  generation: head.generation,
  firstId: head.lastSeq > head.trimmedThrough ? Option.some(formatId(head.generation, head.trimmedThrough + 1)) : Option.none(),
  lastId: head.lastSeq > 0 ? Option.some(formatId(head.generation, head.lastSeq)) : Option.none(),
  count: head.lastSeq - head.trimmedThrough,
  end: head.end,
  retention: head.retention
})

/** What every operation of one log uses: its storage, its settings and the process's subscriptions. */
interface Log {
  readonly storage: Storage
  readonly settings: EventLog.Settings
  readonly hubs: Hubs
}

type Service = EventLog.EventLog["Type"]

const existing = (storage: Storage, stream: string) =>
  Effect.flatMap(
    storage.head(stream),
    Option.match({ onNone: () => Effect.fail(new StreamNotFound({ stream })), onSome: Effect.succeed })
  )

// --- Writes: check, store, wake the stream's followers ---

const create = ({ settings, storage }: Log): Service["create"] => (stream, options) =>
  checkName(settings, "create", stream).pipe(
    Effect.zipRight(checkRetention(stream, options?.retention ?? {})),
    Effect.zipRight(storage.create(stream, options?.retention ?? {})),
    Effect.map((head) => infoOf(stream, head))
  )

const append = ({ hubs, settings, storage }: Log): Service["append"] => (stream, events, producer) =>
  checkName(settings, "append", stream).pipe(
    Effect.zipRight(checkEvents(stream, events)),
    Effect.zipRight(storage.append(stream, events, producer?.epoch)),
    Effect.tap((logged) => Effect.zipRight(Metric.incrementBy(appended, logged.length), Effect.sync(() => hubs.wake(stream)))),
    Effect.withSpan("EventLog.append", { attributes: { "event_log.stream": stream, "event_log.events": events.length } })
  )

const end = ({ hubs, settings, storage }: Log) =>
(stream: string, streamEnd: EventLog.StreamEnd, producer: EventLog.Producer | undefined) =>
  checkName(settings, "end", stream).pipe(
    Effect.zipRight(storage.end(stream, streamEnd, producer?.epoch)),
    Effect.tap(() => Effect.sync(() => hubs.wake(stream))),
    Effect.withSpan("EventLog.end", { attributes: { "event_log.stream": stream, "event_log.end": streamEnd._tag } })
  )

const remove = ({ hubs, settings, storage }: Log): Service["delete"] => (stream) =>
  checkName(settings, "delete", stream).pipe(
    Effect.zipRight(storage.delete(stream)),
    Effect.tap(() => Effect.sync(() => hubs.wake(stream)))
  )

// --- Reads ---

const read = ({ settings, storage }: Log): Service["read"] => (stream, request = {}) =>
  Effect.gen(function*() {
    yield* checkName(settings, "read", stream)
    const limit = request.limit ?? settings.maxReadLimit
    if (!Number.isSafeInteger(limit) || limit < 1) return yield* invalid("read", stream, "limit must be a whole number ≥ 1")
    const head = yield* existing(storage, stream)
    const after = yield* position(stream, head, request.after)
    const events = yield* storage.readAfter(stream, head.generation, after, Math.min(limit, settings.maxReadLimit))
    // Retention ran between reading the head and the events.
    if (events.length > 0 && request.after !== undefined && seqOf(events[0]!) !== after + 1) {
      return yield* new EventLogGap({ stream, requested: request.after, firstAvailable: events[0]!.id })
    }
    const reached = events.length === 0 ? after : seqOf(events[events.length - 1]!)
    // The head was read first: once ended, its lastSeq is final.
    return { events, end: reached >= head.lastSeq ? head.end : Option.none() }
  }).pipe(Effect.withSpan("EventLog.read", { attributes: { "event_log.stream": stream } }))

const info = ({ settings, storage }: Log): Service["info"] => (stream) =>
  checkName(settings, "info", stream).pipe(
    Effect.zipRight(storage.head(stream)),
    Effect.map(Option.map((head) => infoOf(stream, head)))
  )

// --- Following: one reader of the stream's shared subscription, storage when it falls behind ---

const follow = ({ hubs, settings, storage }: Log): Service["follow"] => (stream, request = {}) =>
  Stream.unwrapScoped(Effect.gen(function*() {
    yield* checkName(settings, "follow", stream)
    const head = yield* existing(storage, stream)
    let after = yield* position(stream, head, request.after)
    // From the first kept event: what retention removes meanwhile is no gap to this reader.
    let fromStart = request.after === undefined
    const reader = yield* hubs.subscribe(stream, head.generation)

    const gap = (firstAvailable: string) =>
      Effect.fail(Option.some(new EventLogGap({ stream, requested: formatId(head.generation, after), firstAvailable })))

    /** Takes the next events (buffered, else from storage), else waits; none at the end. */
    const next: Effect.Effect<
      Chunk.Chunk<EventLog.LoggedEvent>,
      Option.Option<EventLog.EventLogError | StreamNotFound | EventLogGap | StreamEnded>
    > = Effect.suspend(() => {
      if (reader.gone) return Effect.fail(Option.some(new StreamNotFound({ stream })))
      if (reader.needsStorage) {
        reader.needsStorage = false
        return storage.readAfter(stream, head.generation, after, settings.maxReadLimit).pipe(
          Effect.mapError(Option.some),
          Effect.flatMap((events) => {
            if (events.length === 0) {
              const end = reader.end
              return end !== undefined && after < end.lastSeq
                ? gap(formatId(head.generation, end.lastSeq + 1))
                : next
            }
            if (!fromStart && seqOf(events[0]!) !== after + 1) return gap(events[0]!.id)
            if (events.length === settings.maxReadLimit) reader.needsStorage = true
            return emit(events)
          })
        )
      }
      const buffered = reader.take()
      if (buffered.length > 0) {
        let from = 0
        while (from < buffered.length && seqOf(buffered[from]!) <= after) from++
        if (from === buffered.length) return next
        if (seqOf(buffered[from]!) !== after + 1) {
          reader.needsStorage = true
          return next
        }
        return emit(from === 0 ? buffered : buffered.slice(from))
      }
      const end = reader.end
      if (end !== undefined && after >= end.lastSeq) {
        return end.end._tag === "Completed"
          ? Effect.fail(Option.none())
          : Effect.fail(Option.some(new StreamEnded({ stream, end: end.end })))
      }
      if (end !== undefined) {
        // The end is known but this reader's events are not buffered: storage has them.
        reader.needsStorage = true
        return next
      }
      return Effect.zipRight(reader.wait, next)
    })

    const emit = (events: ReadonlyArray<EventLog.LoggedEvent>) => {
      fromStart = false
      after = seqOf(events[events.length - 1]!)
      return Effect.succeed(Chunk.unsafeFromArray(events))
    }

    return Stream.repeatEffectChunkOption(next)
  }))

// --- Retention: on demand, and every trimInterval in the layer's scope ---

const trim = (storage: Storage) => (stream: string) =>
  storage.trim(stream).pipe(
    Effect.tap((removed) => Metric.incrementBy(trimmed, removed)),
    Effect.withSpan("EventLog.trim", { attributes: { "event_log.stream": stream } })
  )

const trimAll = (storage: Storage) =>
  storage.retained.pipe(
    Effect.flatMap((streams) => Effect.forEach(streams, trim(storage), { discard: true })),
    Effect.catchAllCause((cause) => Effect.logWarning("EventLog: retention could not be applied", cause))
  )

export const make = (
  storage: Storage,
  settings: EventLog.Settings
): Effect.Effect<Service, EventLogError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* checkSettings(settings)
    const log: Log = { storage, settings, hubs: yield* makeHubs(storage, settings) }
    yield* Effect.forkScoped(Effect.schedule(trimAll(storage), Schedule.spaced(settings.trimInterval)))
    const ended = end(log)
    const trimOne = trim(storage)
    return {
      create: create(log),
      append: append(log),
      read: read(log),
      follow: follow(log),
      complete: (stream, producer) => ended(stream, { _tag: "Completed" }, producer),
      fail: (stream, reason, producer) => ended(stream, { _tag: "Failed", reason }, producer),
      delete: remove(log),
      info: info(log),
      trim: (stream) => Effect.zipRight(checkName(settings, "trim", stream), trimOne(stream))
    }
  })
