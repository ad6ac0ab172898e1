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

/** What `recordEvent` saw: a first sighting, a replay within the window, or an event without (or with an empty) id. */
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

interface Counts {
  fresh: number
  duplicates: number
}

const publish = (counts: Counts) => {
  if (counts.fresh > 0) eventsNew.unsafeUpdate(counts.fresh, noTags)
  if (counts.duplicates > 0) duplicateEvents.unsafeUpdate(counts.duplicates, noTags)
}

const callbackFailed = (id: string, callback: "sync" | "async", cause: Cause.Cause<unknown>) => {
  callbackFailures.unsafeUpdate(1, noTags)
  return Effect.logWarning("EventTracker callback failed; the event stays recorded", cause).pipe(
    Effect.annotateLogs({ eventId: id, callback })
  )
}

/**
 * How an id is kept in the window. Ids in canonical decimal form below 10^9 (what
 * most servers send) are kept as small integers: V8 stores those inline, while a
 * window of fresh id strings from the parser keeps young strings alive from an
 * old Set, which measured as most of the client's per-event cost (GC scavenges).
 * The mapping is one-to-one: "007" or "1e3" stay strings.
 */
type Key = string | number

const keyOf = (id: string): Key => {
  const length = id.length
  if (length === 0 || length > 9) return id
  let n = 0
  for (let i = 0; i < length; i++) {
    const digit = id.charCodeAt(i) - 48
    if (digit < 0 || digit > 9 || (digit === 0 && i === 0 && length > 1)) return id
    n = n * 10 + digit
  }
  return n
}

const results: Record<RecordResult, Effect.Effect<RecordResult>> = {
  new: Effect.succeed("new"),
  duplicate: Effect.succeed("duplicate"),
  "no-id": Effect.succeed("no-id")
}

/**
 * The window is a Set for O(1) membership plus a ring of the same ids for O(1)
 * eviction of the oldest. Every state change happens inside one synchronous step,
 * which is what makes check-and-insert atomic between fibers.
 *
 * A class, not a record of closures: sessions keep thousands of idle trackers,
 * and prototype methods cost nothing per instance.
 */
class Tracker<E, R> implements EventTracker<E> {
  readonly ids = new Set<Key>()
  ring: Array<Key> = []
  head = 0
  last: string | undefined = undefined
  /** Sync callback failures of the current step, logged right after it. */
  syncFailures: Array<[string, unknown]> | undefined = undefined
  readonly propagate: boolean

  constructor(
    readonly maxTracked: number,
    readonly syncCallback: ((id: string) => void) | undefined,
    readonly asyncCallback: ((id: string) => Effect.Effect<void, E, R>) | undefined,
    onCallbackDefect: "log" | "propagate" | undefined,
    readonly context: Context.Context<R>
  ) {
    this.propagate = onCallbackDefect === "propagate"
  }

  // Members of the service interface are bound, so `Effect.forEach(events, tracker.recordEvent)` works.
  readonly recordEvent = (event: SseEvent): Effect.Effect<RecordResult, E> => this.record(event)
  readonly recordAll = (events: Iterable<SseEvent>): Effect.Effect<ReadonlyArray<SseEvent>, E> => this.recordChunk(events)
  readonly isDuplicate = (id: string): Effect.Effect<boolean> => Effect.sync(() => this.ids.has(keyOf(id)))
  readonly restore = (snapshot: Snapshot): Effect.Effect<void> => Effect.sync(() => this.reset(snapshot))

  get lastEventId(): Effect.Effect<Option.Option<string>> {
    return Effect.sync(() => Option.fromNullable(this.last))
  }
  get snapshot(): Effect.Effect<Snapshot> {
    return Effect.sync(() => ({ lastEventId: Option.fromNullable(this.last), recentIds: this.oldestFirst() }))
  }
  get trackedCount(): Effect.Effect<number> {
    return Effect.sync(() => this.ids.size)
  }

  /** Inserts `id` if absent; false when it is already in the window. */
  admit(id: string): boolean {
    const key = keyOf(id)
    if (this.ids.has(key)) return false
    if (this.ring.length < this.maxTracked) {
      this.ring.push(key)
    } else {
      this.ids.delete(this.ring[this.head]!)
      this.ring[this.head] = key
      this.head = this.head + 1 === this.maxTracked ? 0 : this.head + 1
    }
    this.ids.add(key)
    this.last = id
    return true
  }

  reset(snapshot: Snapshot): void {
    this.ids.clear()
    this.ring = []
    this.head = 0
    const recent = snapshot.recentIds
    for (let i = Math.max(0, recent.length - this.maxTracked); i < recent.length; i++) this.admit(recent[i]!)
    this.last = Option.getOrUndefined(snapshot.lastEventId)
  }

  oldestFirst(): Array<string> {
    const keys = this.ring.length < this.maxTracked
      ? this.ring
      : this.ring.slice(this.head).concat(this.ring.slice(0, this.head))
    return keys.map(String)
  }

  /** The synchronous part of recording one event: true when it is new. */
  step(event: SseEvent, counts: Counts): boolean {
    const id = event.id
    // An empty `id:` only resets the spec's last-event-id buffer: it names no event,
    // so it can neither be de-duplicated nor be a cursor.
    if (id === undefined || id === "") return false
    if (!this.admit(id)) {
      counts.duplicates++
      return false
    }
    counts.fresh++
    if (this.syncCallback !== undefined) {
      try {
        this.syncCallback(id)
      } catch (error) {
        if (this.propagate) throw error
        ;(this.syncFailures ??= []).push([id, error])
      }
    }
    return true
  }

  /** `done`, after logging any sync callback failures of the step that just ran. */
  settle<A>(done: Effect.Effect<A>): Effect.Effect<A> {
    const failures = this.syncFailures
    if (failures === undefined) return done
    this.syncFailures = undefined
    return Effect.zipRight(
      Effect.forEach(failures, ([id, error]) => callbackFailed(id, "sync", Cause.die(error)), { discard: true }),
      done
    )
  }

  runAsync(id: string): Effect.Effect<void, E, R> {
    const effect = Effect.suspend(() => this.asyncCallback!(id))
    return this.propagate
      ? effect
      : Effect.catchAllDefect(effect, (defect) => callbackFailed(id, "async", Cause.die(defect)))
  }

  /**
   * Runs `effect` with the services captured at make time. Providing them costs
   * ~5 µs (a FiberRef.locally), far more than recording an event, so it is skipped
   * when the caller's context already holds them (the usual case), and recordAll
   * pays it once per chunk, not per event.
   */
  withCaptured<A, E1>(effect: Effect.Effect<A, E1, R>): Effect.Effect<A, E1> {
    const captured = this.context.unsafeMap
    if (captured.size === 0) return effect as Effect.Effect<A, E1>
    return Effect.contextWithEffect((current: Context.Context<never>) => {
      for (const [key, service] of captured) {
        if (current.unsafeMap.get(key) !== service) return Effect.provide(effect, Context.merge(current, this.context))
      }
      return effect as Effect.Effect<A, E1>
    })
  }

  recordSync(event: SseEvent): RecordResult {
    const counts = { fresh: 0, duplicates: 0 }
    const fresh = this.step(event, counts)
    publish(counts)
    return fresh ? "new" : event.id === undefined || event.id === "" ? "no-id" : "duplicate"
  }

  record(event: SseEvent): Effect.Effect<RecordResult, E> {
    if (this.syncCallback === undefined && this.asyncCallback === undefined) {
      return Effect.sync(() => this.recordSync(event))
    }
    return Effect.suspend(() => {
      const result = this.recordSync(event)
      const settled = this.settle(results[result])
      return result === "new" && this.asyncCallback !== undefined
        ? Effect.zipRight(settled, this.withCaptured(Effect.as(this.runAsync(event.id!), result)))
        : settled
    })
  }

  recordChunk(events: Iterable<SseEvent>): Effect.Effect<ReadonlyArray<SseEvent>, E> {
    if (this.asyncCallback === undefined) {
      return Effect.suspend(() => {
        const counts = { fresh: 0, duplicates: 0 }
        const fresh: Array<SseEvent> = []
        for (const event of events) if (this.step(event, counts)) fresh.push(event)
        publish(counts)
        return this.settle<ReadonlyArray<SseEvent>>(Effect.succeed(fresh))
      })
    }
    return this.withCaptured(Effect.suspend(() => {
      const iterator = events[Symbol.iterator]()
      const fresh: Array<SseEvent> = []
      const counts = { fresh: 0, duplicates: 0 }
      // Each new event's async callback is awaited before the next event is
      // looked at, so callbacks see events one at a time, in order.
      const next = (): Effect.Effect<ReadonlyArray<SseEvent>, E, R> => {
        for (let r = iterator.next(); !r.done; r = iterator.next()) {
          if (this.step(r.value, counts)) {
            fresh.push(r.value)
            publish(counts)
            counts.fresh = 0
            counts.duplicates = 0
            const callback = Effect.flatMap(this.runAsync(r.value.id!), next)
            return this.syncFailures === undefined ? callback : Effect.zipRight(this.settle(Effect.void), callback)
          }
        }
        publish(counts)
        return this.settle<ReadonlyArray<SseEvent>>(Effect.succeed(fresh))
      }
      return next()
    }))
  }
}

/**
 * Makes a tracker. The async callback's requirements `R` are captured here, so
 * `recordEvent` needs none.
 */
export const make = <E = never, R = never>(
  options: Options<E, R>
): Effect.Effect<EventTracker<E>, TrackerOptionsError, R> => {
  const { maxTracked } = options
  if (!Number.isSafeInteger(maxTracked) || maxTracked < 1) {
    return Effect.fail(
      new TrackerOptionsError({ option: "maxTracked", value: maxTracked, reason: "must be a whole number ≥ 1" })
    )
  }
  return Effect.map(
    Effect.context<R>(),
    (context) =>
      new Tracker<E, R>(maxTracked, options.onNewEvent, options.onNewEventAsync, options.onCallbackDefect, context)
  )
}

/**
 * A tracker with the same window and cursor as `tracker` but no callbacks. Give it
 * to a client for de-duplication and record into `tracker` only after handling
 * each chunk: then the callbacks (which persist the cursor) never run ahead of
 * what was handled, and a crash or an early stop costs a replay, never an event.
 */
export const copy = <E>(tracker: EventTracker<E>): Effect.Effect<EventTracker> =>
  Effect.flatMap(tracker.snapshot, (snapshot) => {
    const twin = new Tracker<never, never>(tracker.maxTracked, undefined, undefined, undefined, Context.empty())
    twin.reset(snapshot)
    return Effect.succeed(twin)
  })
