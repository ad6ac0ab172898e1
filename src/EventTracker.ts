/**
 * Remembers which SSE events a consumer has seen: the last event id (the resume
 * point) and a bounded window of recent ids, so events a server replays after a
 * reconnect are dropped. Each new event is handed to a sync and/or async callback;
 * awaiting the async one is what lets a full queue behind it slow the stream down.
 */
import { Cause, Context, Data, Effect, Metric, Option } from "effect"
import type { SseEvent } from "./SseEvent.js"

export class TrackerOptionsError extends Data.TaggedError("TrackerOptionsError")<{
  readonly option: string
  readonly value: unknown
  readonly reason: string
}> {}

/** What `recordEvent` saw: a first sighting, a replay within the window, or an event without id. */
export type RecordResult = "new" | "duplicate" | "no-id"

export interface Options<E = never, R = never> {
  /** How many recent new ids are remembered for de-duplication (≥ 1). */
  readonly maxTracked: number
  /** Called synchronously for each new event id. */
  readonly onNewEvent?: (id: string) => void
  /** Awaited for each new event id; its typed failures reach the caller of `recordEvent`. */
  readonly onNewEventAsync?: (id: string) => Effect.Effect<void, E, R>
  /**
   * A callback that throws or dies is, by default, logged and counted and the event
   * still counts as new ("log"); "propagate" turns it into a defect instead.
   */
  readonly onCallbackDefect?: "log" | "propagate"
}

/** A persisted tracker state, as a cursor store keeps it. */
export interface Snapshot {
  readonly lastEventId: Option.Option<string>
  /** Recent new ids, oldest first; only the newest `maxTracked` are kept. */
  readonly recentIds: ReadonlyArray<string>
}

export interface EventTracker<E = never> {
  /** Records one event: updates the cursor and runs the callbacks if its id is new. */
  readonly recordEvent: (event: SseEvent) => Effect.Effect<RecordResult, E>
  /** Records a chunk of events in one Effect; returns the new ones, in order. */
  readonly recordAll: (events: Iterable<SseEvent>) => Effect.Effect<ReadonlyArray<SseEvent>, E>
  /** The id of the last new event: the `Last-Event-ID` to resume from. */
  readonly lastEventId: Effect.Effect<Option.Option<string>>
  /** Whether `id` is within the de-duplication window. */
  readonly isDuplicate: (id: string) => Effect.Effect<boolean>
  /** Replaces the state with a persisted one (callbacks are not run). */
  readonly restore: (snapshot: Snapshot) => Effect.Effect<void>
  /** The current state: the cursor and the window's ids, oldest first. */
  readonly snapshot: Effect.Effect<Snapshot>
  /** How many ids the window holds now (never more than `maxTracked`). */
  readonly trackedCount: Effect.Effect<number>
  readonly maxTracked: number
}

export const eventsNew = Metric.counter("sse_events_new", {
  description: "SSE events recorded for the first time",
  incremental: true
})
export const duplicateEvents = Metric.counter("sse_duplicate_events", {
  description: "SSE events dropped because their id was seen within the window",
  incremental: true
})
export const callbackFailures = Metric.counter("sse_callback_failures", {
  description: "Tracker callbacks that threw or died",
  incremental: true
})

const noTags: ReadonlyArray<never> = []

/**
 * The window: a Set for O(1) membership plus a ring of the same ids for O(1)
 * eviction of the oldest. All state changes happen inside one synchronous step,
 * which is what makes check-and-insert atomic between fibers.
 */
class Window {
  readonly ids = new Set<string>()
  ring: Array<string> = []
  head = 0
  last: string | undefined = undefined

  constructor(readonly capacity: number) {}

  /** Inserts `id` if absent; false when it is already in the window. */
  admit(id: string): boolean {
    if (this.ids.has(id)) return false
    if (this.ring.length < this.capacity) {
      this.ring.push(id)
    } else {
      this.ids.delete(this.ring[this.head]!)
      this.ring[this.head] = id
      this.head = this.head + 1 === this.capacity ? 0 : this.head + 1
    }
    this.ids.add(id)
    this.last = id
    return true
  }

  reset(snapshot: Snapshot): void {
    this.ids.clear()
    this.ring = []
    this.head = 0
    const recent = snapshot.recentIds
    for (let i = Math.max(0, recent.length - this.capacity); i < recent.length; i++) this.admit(recent[i]!)
    this.last = Option.getOrUndefined(snapshot.lastEventId)
  }

  oldestFirst(): Array<string> {
    return this.ring.length < this.capacity
      ? this.ring.slice()
      : this.ring.slice(this.head).concat(this.ring.slice(0, this.head))
  }
}

/**
 * Makes a tracker. The async callback's requirements `R` are captured here, so
 * `recordEvent` needs none.
 */
export const make = <E = never, R = never>(
  options: Options<E, R>
): Effect.Effect<EventTracker<E>, TrackerOptionsError, R> =>
  Effect.gen(function*() {
    const { maxTracked } = options
    if (!Number.isSafeInteger(maxTracked) || maxTracked < 1) {
      return yield* new TrackerOptionsError({
        option: "maxTracked",
        value: maxTracked,
        reason: "must be a whole number ≥ 1"
      })
    }
    const context = yield* Effect.context<R>()
    const window = new Window(maxTracked)
    const propagate = options.onCallbackDefect === "propagate"
    const syncCallback = options.onNewEvent
    const asyncCallback = options.onNewEventAsync

    const callbackFailed = (id: string, callback: "sync" | "async", cause: Cause.Cause<unknown>) => {
      callbackFailures.unsafeUpdate(1, noTags)
      return Effect.logWarning("EventTracker callback failed; the event stays recorded", cause).pipe(
        Effect.annotateLogs({ eventId: id, callback })
      )
    }

    // Sync callback failures are collected per step and logged afterwards, so the
    // step itself stays a plain function.
    let syncFailures: Array<[string, unknown]> | undefined
    const runSync = syncCallback === undefined ? undefined : (id: string) => {
      try {
        syncCallback(id)
      } catch (error) {
        if (propagate) throw error
        ;(syncFailures ??= []).push([id, error])
      }
    }
    const flushSyncFailures: Effect.Effect<void> = Effect.suspend(() => {
      const failures = syncFailures
      syncFailures = undefined
      return failures === undefined
        ? Effect.void
        : Effect.forEach(failures, ([id, error]) => callbackFailed(id, "sync", Cause.die(error)), { discard: true })
    })

    // The async callback needs the services captured at make time. Providing them
    // costs ~5 µs (a FiberRef.locally), far more than recording an event, so it is
    // skipped when the caller's context already holds them (the usual case), and
    // recordAll pays it once per chunk, not per event.
    const captured = Array.from(context.unsafeMap)
    const covers = (current: Context.Context<never>) => {
      for (const [key, service] of captured) if (current.unsafeMap.get(key) !== service) return false
      return true
    }
    const withCaptured = <A, E1>(effect: Effect.Effect<A, E1, R>): Effect.Effect<A, E1> =>
      captured.length === 0 ? effect as Effect.Effect<A, E1> : Effect.contextWithEffect((current: Context.Context<never>) =>
        covers(current)
          ? effect as Effect.Effect<A, E1>
          : Effect.provide(effect, Context.merge(current, context)))
    const runAsync = asyncCallback === undefined ? undefined : (id: string): Effect.Effect<void, E, R> => {
      const effect = Effect.suspend(() => asyncCallback(id))
      return propagate ? effect : Effect.catchAllDefect(effect, (defect) => callbackFailed(id, "async", Cause.die(defect)))
    }

    /** The synchronous part of recording one event; true when it is new. */
    const step = (event: SseEvent, counts: { fresh: number; duplicates: number }): boolean => {
      const id = event.id
      if (id === undefined) return false
      if (!window.admit(id)) {
        counts.duplicates++
        return false
      }
      counts.fresh++
      if (runSync !== undefined) runSync(id)
      return true
    }

    const publish = (counts: { fresh: number; duplicates: number }) => {
      if (counts.fresh > 0) eventsNew.unsafeUpdate(counts.fresh, noTags)
      if (counts.duplicates > 0) duplicateEvents.unsafeUpdate(counts.duplicates, noTags)
    }

    const recordSync = (event: SseEvent): RecordResult => {
      const counts = { fresh: 0, duplicates: 0 }
      const fresh = step(event, counts)
      publish(counts)
      return fresh ? "new" : event.id === undefined ? "no-id" : "duplicate"
    }

    /** Hands back `value`, first logging any sync callback failures of this step. */
    const settle = <A>(value: A, done: Effect.Effect<A>): Effect.Effect<A> =>
      syncFailures === undefined ? done : Effect.as(flushSyncFailures, value)
    const constants = {
      new: Effect.succeed<RecordResult>("new"),
      duplicate: Effect.succeed<RecordResult>("duplicate"),
      "no-id": Effect.succeed<RecordResult>("no-id")
    }

    const recordEvent = (event: SseEvent): Effect.Effect<RecordResult, E> => {
      if (runSync === undefined && runAsync === undefined) return Effect.sync(() => recordSync(event))
      return Effect.suspend(() => {
        const result = recordSync(event)
        const settled = settle(result, constants[result])
        return result === "new" && runAsync !== undefined
          ? Effect.zipRight(settled, withCaptured(Effect.as(runAsync(event.id!), result)))
          : settled
      })
    }

    const recordAll = (events: Iterable<SseEvent>): Effect.Effect<ReadonlyArray<SseEvent>, E> => {
      if (runAsync === undefined) {
        return Effect.suspend(() => {
          const counts = { fresh: 0, duplicates: 0 }
          const fresh: Array<SseEvent> = []
          for (const event of events) if (step(event, counts)) fresh.push(event)
          publish(counts)
          return settle<ReadonlyArray<SseEvent>>(fresh, Effect.succeed(fresh))
        })
      }
      return withCaptured(Effect.suspend(() => {
        const iterator = events[Symbol.iterator]()
        const fresh: Array<SseEvent> = []
        const counts = { fresh: 0, duplicates: 0 }
        // Each new event's async callback is awaited before the next event is
        // looked at, so callbacks see events one at a time, in order.
        const next = (): Effect.Effect<ReadonlyArray<SseEvent>, E, R> => {
          for (let r = iterator.next(); !r.done; r = iterator.next()) {
            if (step(r.value, counts)) {
              fresh.push(r.value)
              publish(counts)
              counts.fresh = 0
              counts.duplicates = 0
              const callback = Effect.flatMap(runAsync(r.value.id!), next)
              return syncFailures === undefined ? callback : Effect.zipRight(flushSyncFailures, callback)
            }
          }
          publish(counts)
          return settle<ReadonlyArray<SseEvent>>(fresh, Effect.succeed(fresh))
        }
        return next()
      }))
    }

    const tracker: EventTracker<E> = {
      recordEvent,
      recordAll,
      lastEventId: Effect.sync(() => Option.fromNullable(window.last)),
      isDuplicate: (id) => Effect.sync(() => window.ids.has(id)),
      restore: (snapshot) => Effect.sync(() => window.reset(snapshot)),
      snapshot: Effect.sync(() => ({ lastEventId: Option.fromNullable(window.last), recentIds: window.oldestFirst() })),
      trackedCount: Effect.sync(() => window.ids.size),
      maxTracked
    }
    return tracker
  })
