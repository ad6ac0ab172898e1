/**
 * `EventLog.layerMemory`'s storage: maps in this process. Every operation is one
 * synchronous step, so appends of concurrent fibers never interleave within a call.
 */
import { Clock, Effect, Option } from "effect"
import type * as EventLog from "../EventLog.js"
import type { Head, Storage } from "../EventLog.js"
import { ProducerFenced, StreamEnded, StreamNotFound } from "../EventLogError.js"
import { formatId } from "./eventId.js"

interface MemoryStream {
  readonly generation: number
  readonly retention: EventLog.Retention
  /** Kept events, oldest first: `events[i]` has seq `trimmedThrough + 1 + i`. */
  events: Array<EventLog.LoggedEvent>
  lastSeq: number
  trimmedThrough: number
  producerEpoch: number
  end: Option.Option<EventLog.StreamEnd>
}

const headOf = (stream: MemoryStream): Head => ({
  generation: stream.generation,
  lastSeq: stream.lastSeq,
  trimmedThrough: stream.trimmedThrough,
  end: stream.end,
  retention: stream.retention
})

const sameEnd = (a: EventLog.StreamEnd, b: EventLog.StreamEnd) =>
  a._tag === b._tag && (a._tag === "Completed" || a.reason === (b as typeof a).reason)

/** Drops what `state`'s retention no longer keeps at `now`; the number of events dropped. */
const applyRetention = (state: MemoryStream, now: number): number => {
  const { maxAgeMillis, maxEvents } = state.retention
  let cut = maxEvents === undefined ? 0 : Math.max(0, state.events.length - maxEvents)
  if (maxAgeMillis !== undefined) {
    while (cut < state.events.length && state.events[cut]!.appendedAt < now - maxAgeMillis) cut++
  }
  if (cut === 0) return 0
  state.events = state.events.slice(cut)
  state.trimmedThrough += cut
  return cut
}

const hasRetention = (state: MemoryStream): boolean =>
  state.retention.maxEvents !== undefined || state.retention.maxAgeMillis !== undefined

export const make: Effect.Effect<Storage> = Effect.sync(() => {
  const streams = new Map<string, MemoryStream>()
  let generations = 0

  const createNow = (stream: string, retention: EventLog.Retention): MemoryStream => {
    const found = streams.get(stream)
    if (found !== undefined) return found
    const created: MemoryStream = {
      generation: ++generations,
      retention,
      events: [],
      lastSeq: 0,
      trimmedThrough: 0,
      producerEpoch: 0,
      end: Option.none()
    }
    streams.set(stream, created)
    return created
  }

  /** The refusal of a write by `epoch` to `state`, if any. */
  const refusal = (stream: string, state: MemoryStream, epoch: number | undefined) =>
    epoch !== undefined && epoch < state.producerEpoch
      ? new ProducerFenced({ stream, epoch, current: state.producerEpoch })
      : undefined

  const storage: Storage = {
    pollsOthers: false,
    head: (stream) => Effect.sync(() => Option.map(Option.fromNullable(streams.get(stream)), headOf)),
    create: (stream, retention) => Effect.sync(() => headOf(createNow(stream, retention))),
    append: (stream, events, epoch) =>
      Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<ReadonlyArray<EventLog.LoggedEvent>, StreamEnded | ProducerFenced> => {
        const state = createNow(stream, {})
        const fenced = refusal(stream, state, epoch)
        if (fenced !== undefined) return Effect.fail(fenced)
        if (Option.isSome(state.end)) return Effect.fail(new StreamEnded({ stream, end: state.end.value }))
        if (epoch !== undefined) state.producerEpoch = epoch
        const logged = events.map((event, i): EventLog.LoggedEvent => ({
          id: formatId(state.generation, state.lastSeq + 1 + i),
          event: event.event ?? "message",
          data: event.data,
          appendedAt: now
        }))
        state.lastSeq += logged.length
        for (const event of logged) state.events.push(event)
        return Effect.succeed(logged)
      }),
    readAfter: (stream, generation, afterSeq, limit) =>
      Effect.sync(() => {
        const state = streams.get(stream)
        if (state === undefined || state.generation !== generation) return []
        const from = Math.max(0, afterSeq - state.trimmedThrough)
        return state.events.slice(from, from + limit)
      }),
    end: (stream, end, epoch) =>
      Effect.suspend((): Effect.Effect<void, StreamNotFound | StreamEnded | ProducerFenced> => {
        const state = streams.get(stream)
        if (state === undefined) return Effect.fail(new StreamNotFound({ stream }))
        const fenced = refusal(stream, state, epoch)
        if (fenced !== undefined) return Effect.fail(fenced)
        if (Option.isSome(state.end)) {
          return sameEnd(state.end.value, end) ? Effect.void : Effect.fail(new StreamEnded({ stream, end: state.end.value }))
        }
        if (epoch !== undefined) state.producerEpoch = epoch
        state.end = Option.some(end)
        return Effect.void
      }),
    delete: (stream) => Effect.sync(() => void streams.delete(stream)),
    trim: (stream) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const state = streams.get(stream)
        return state === undefined ? 0 : applyRetention(state, now)
      }),
    retained: Effect.sync(() => Array.from(streams).filter(([, state]) => hasRetention(state)).map(([name]) => name))
  }
  return storage
})
