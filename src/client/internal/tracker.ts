/**
 * The tracker itself: the resume-point rule, the de-duplication window and the
 * callbacks, as a class whose synchronous step the client's hot path calls
 * directly (`Recorder`), without an Effect per chunk.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as EventTracker from "../EventTracker.js"
import { isIdOnly, type SseEvent } from "../../wire/SseEvent.js"
import { IdWindow } from "./idWindow.js"
import { noTags } from "../../internal/metricTags.js"

/**
 * The tracker's side of the client's hot path. Running an Effect per network
 * chunk (a fiber step inside the channel) cost more than parsing a one-event
 * chunk (measured), so a tracker made by `EventTracker.make` records a chunk
 * synchronously when it has no callbacks.
 */
export interface Recorder {
  /**
   * Records `events` as `recordAll` with `keepWithoutId` would, keeping the
   * returned ones in `events` itself (compacted in place); or changes nothing
   * and returns false when an Effect is needed (the tracker has callbacks).
   */
  recordInPlace(events: Array<SseEvent>): boolean
  /**
   * After `recordInPlace`: the kept events with the chunk's id-only blocks, in
   * order, when it had any (they moved or cleared the resume point, and a
   * tracker recording the emitted chunk must see them: `recordedAs`).
   */
  readonly withIdOnly: ReadonlyArray<SseEvent> | undefined
}

/**
 * The `Recorder` of `tracker`, when it is one made by `EventTracker.make` or
 * `copy` itself; not one derived from it (`Object.create`), which may override
 * `recordAll`: then `recordAll` runs.
 */
export const recorderOf = (tracker: EventTracker.EventTracker<unknown>): Recorder | undefined =>
  Object.getPrototypeOf(tracker) === Tracker.prototype ? tracker as Tracker<unknown, unknown> : undefined

/**
 * The events `tracker` recorded before an async callback failed partway through
 * its last `recordAll` (their callbacks ran: their cursors may be stored), once.
 * The client must still hand them on, or they are lost.
 */
export const takeRecordedBeforeFailure = (tracker: EventTracker.EventTracker<unknown>): ReadonlyArray<SseEvent> =>
  tracker instanceof Tracker ? tracker.takeRecordedBeforeFailure() : []

/**
 * What a chunk the client emitted stands for: its events and the id-only blocks
 * among them, in order. An id-only block is never an event, so the client's
 * chunk cannot hold it; but a consumer that records each handled chunk into the
 * session's tracker (commit after handling, with `EventTracker.copy` deduping
 * for the client) must move its resume point as the client's did, or its stored
 * cursor stays behind the live one (`id: 1` + data, then `id: 5` alone: the
 * reconnect says 5, a restart would resume from 1). A chunk of id-only blocks
 * alone is emitted empty for this. Keyed by the chunk: one that a consumer
 * rebuilds (mapped, sliced) is recorded as it is.
 */
export const recordedAs = new WeakMap<object, ReadonlyArray<SseEvent>>()

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


const callbackFailed = (id: string, callback: "sync" | "async", cause: Cause.Cause<unknown>) => {
  callbackFailures.unsafeUpdate(1, noTags)
  return Effect.logWarning("EventTracker callback failed; the event stays recorded", cause).pipe(
    Effect.annotateLogs({ eventId: id, callback })
  )
}

// What one synchronous step did with an event (small integers: no allocation per event).
/** A new id: returned, counted, callbacks run. */
const NEW = 0
/** A replayed id: dropped and counted. */
const DUPLICATE = 1
/** No id, or an empty one (which cleared the resume point): returned only with `keepWithoutId`. */
const NO_ID = 2
/** An id-only block with a new id: the resume point moved and callbacks run, nothing returned. */
const CURSOR = 3
/** An id-only block that changed nothing (its id is in the window) or cleared the resume point. */
const ID_ONLY = 4

const outcomes: ReadonlyArray<EventTracker.RecordResult> = ["new", "duplicate", "no-id", "id-only", "id-only"]
const outcomeEffects = outcomes.map((outcome) => Effect.succeed(outcome))

/** Whether a step's callbacks run: a new id, of an event or of an id-only block. */
const runsCallbacks = (step: number) => step === NEW || step === CURSOR

/**
 * Every state change happens inside one synchronous step, which is what makes
 * check-and-insert atomic between fibers.
 *
 * A class, not a record of closures: sessions keep thousands of idle trackers,
 * and prototype methods cost nothing per instance.
 */
export class Tracker<E, R> implements EventTracker.EventTracker<E>, Recorder {
  readonly window: IdWindow
  /** The resume point. */
  last: string | undefined = undefined
  fresh = 0
  duplicates = 0
  /** The events recorded before the last failed `recordAll`, until the client takes them. */
  recordedBeforeFailure: ReadonlyArray<SseEvent> | undefined = undefined
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
    this.window = new IdWindow(maxTracked)
    this.propagate = onCallbackDefect === "propagate"
  }

  // Members of the service interface are bound, so `Effect.forEach(events, tracker.recordEvent)`
  // works; bound on each read by a prototype getter rather than stored as arrow fields, which
  // cost a closure (56 bytes) each in every one of thousands of idle session trackers.
  get recordEvent(): (event: SseEvent) => Effect.Effect<EventTracker.RecordResult, E> {
    return (event) => this.record(event)
  }
  get recordAll(): (
    events: Iterable<SseEvent>,
    options?: EventTracker.RecordAllOptions
  ) => Effect.Effect<ReadonlyArray<SseEvent>, E> {
    return (events, options) => this.recordChunk(events, options?.keepWithoutId === true)
  }
  get isDuplicate(): (id: string) => Effect.Effect<boolean> {
    return (id) => Effect.sync(() => this.window.has(id))
  }
  get restore(): (snapshot: EventTracker.Snapshot) => Effect.Effect<void> {
    return (snapshot) => Effect.sync(() => this.reset(snapshot))
  }
  get unsafeSnapshot(): () => EventTracker.Snapshot {
    return () => this.snapshotNow()
  }

  get lastEventId(): Effect.Effect<Option.Option<string>> {
    return Effect.sync(() => Option.fromNullable(this.last))
  }
  get snapshot(): Effect.Effect<EventTracker.Snapshot> {
    return Effect.sync(() => this.snapshotNow())
  }
  get trackedCount(): Effect.Effect<number> {
    return Effect.sync(() => this.window.size)
  }
  get counts(): Effect.Effect<EventTracker.Counts> {
    return Effect.sync(() => ({ fresh: this.fresh, duplicates: this.duplicates }))
  }

  snapshotNow(): EventTracker.Snapshot {
    return { lastEventId: Option.fromNullable(this.last), recentIds: this.window.oldestFirst() }
  }

  reset(snapshot: EventTracker.Snapshot): void {
    this.window.reset(snapshot.recentIds)
    this.last = Option.getOrUndefined(snapshot.lastEventId)
  }

  /** The synchronous part of recording one event: the resume-point rule and the window. */
  step(event: SseEvent): number {
    const id = event.id
    if (isIdOnly(event)) {
      if (id === undefined || id === "") {
        this.last = undefined
        return ID_ONLY
      }
      if (!this.window.admit(id)) return ID_ONLY
      this.advance(id)
      return CURSOR
    }
    if (id === undefined) return NO_ID
    // An empty `id:` resets the spec's last-event-id buffer: it names no event, so
    // it can neither be de-duplicated nor be a cursor.
    if (id === "") {
      this.last = undefined
      return NO_ID
    }
    if (!this.window.admit(id)) {
      this.duplicates++
      return DUPLICATE
    }
    this.fresh++
    this.advance(id)
    return NEW
  }

  /** Moves the resume point to a newly admitted id and runs the sync callback. */
  advance(id: string): void {
    this.last = id
    if (this.syncCallback === undefined) return
    try {
      this.syncCallback(id)
    } catch (error) {
      if (this.propagate) throw error
      ;(this.syncFailures ??= []).push([id, error])
    }
  }

  /** Adds what the steps since `fresh`/`duplicates` were read to the global metrics. */
  publish(fresh: number, duplicates: number): void {
    if (this.fresh > fresh) eventsNew.unsafeUpdate(this.fresh - fresh, noTags)
    if (this.duplicates > duplicates) duplicateEvents.unsafeUpdate(this.duplicates - duplicates, noTags)
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

  /** One step, published. */
  stepOne(event: SseEvent): number {
    const fresh = this.fresh
    const duplicates = this.duplicates
    const step = this.step(event)
    this.publish(fresh, duplicates)
    return step
  }

  record(event: SseEvent): Effect.Effect<EventTracker.RecordResult, E> {
    if (this.syncCallback === undefined && this.asyncCallback === undefined) {
      return Effect.sync(() => outcomes[this.stepOne(event)]!)
    }
    return Effect.suspend(() => {
      const step = this.stepOne(event)
      const settled = this.settle(outcomeEffects[step]!)
      return runsCallbacks(step) && this.asyncCallback !== undefined
        ? Effect.zipRight(settled, this.withCaptured(Effect.as(this.runAsync(event.id!), outcomes[step]!)))
        : settled
    })
  }

  /** The chunk's events with its id-only blocks, in order, after the last `recordInPlace`; undefined: there were none. */
  withIdOnly: ReadonlyArray<SseEvent> | undefined = undefined

  recordInPlace(events: Array<SseEvent>): boolean {
    // Callbacks need Effects: to await the async one, to log the sync one's failures.
    if (this.syncCallback !== undefined || this.asyncCallback !== undefined) return false
    const fresh = this.fresh
    const duplicates = this.duplicates
    let kept = 0
    // Made only when an id-only block comes: most chunks have none.
    let withIdOnly: Array<SseEvent> | undefined
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!
      const step = this.step(event)
      if (step === NEW || step === NO_ID) {
        events[kept++] = event
        if (withIdOnly !== undefined) withIdOnly.push(event)
      } else if (step !== DUPLICATE) {
        ;(withIdOnly ??= events.slice(0, kept)).push(event)
      }
    }
    events.length = kept
    this.withIdOnly = withIdOnly
    this.publish(fresh, duplicates)
    return true
  }

  takeRecordedBeforeFailure(): ReadonlyArray<SseEvent> {
    const events = this.recordedBeforeFailure
    this.recordedBeforeFailure = undefined
    return events ?? []
  }

  recordChunk(chunk: Iterable<SseEvent>, keepWithoutId: boolean): Effect.Effect<ReadonlyArray<SseEvent>, E> {
    // A chunk a client emitted may have carried id-only blocks: recorded with them, the
    // resume point here ends where the client's did.
    const events = recordedAs.get(chunk) ?? chunk
    if (this.asyncCallback === undefined) {
      return Effect.suspend(() => {
        const fresh = this.fresh
        const duplicates = this.duplicates
        const kept: Array<SseEvent> = []
        for (const event of events) {
          const step = this.step(event)
          if (step === NEW || (step === NO_ID && keepWithoutId)) kept.push(event)
        }
        this.publish(fresh, duplicates)
        return this.settle<ReadonlyArray<SseEvent>>(Effect.succeed(kept))
      })
    }
    return this.withCaptured(Effect.suspend(() => this.recordEachAwaited(events[Symbol.iterator](), keepWithoutId)))
  }

  /**
   * Each new id's async callback is awaited before the next event is looked at,
   * so callbacks see ids one at a time, in order.
   */
  recordEachAwaited(
    iterator: Iterator<SseEvent>,
    keepWithoutId: boolean
  ): Effect.Effect<ReadonlyArray<SseEvent>, E, R> {
    const kept: Array<SseEvent> = []
    const next = (): Effect.Effect<ReadonlyArray<SseEvent>, E, R> => {
      const fresh = this.fresh
      const duplicates = this.duplicates
      for (let r = iterator.next(); !r.done; r = iterator.next()) {
        const step = this.step(r.value)
        if (step === NEW || (step === NO_ID && keepWithoutId)) kept.push(r.value)
        if (runsCallbacks(step)) {
          this.publish(fresh, duplicates)
          const event = r.value
          const callback = Effect.flatMap(
            Effect.tapError(this.runAsync(event.id!), () =>
              Effect.sync(() => {
                // The failed event itself is not among them: its callback did not succeed.
                this.recordedBeforeFailure = kept.at(-1) === event ? kept.slice(0, -1) : kept
              })),
            next
          )
          return this.syncFailures === undefined ? callback : Effect.zipRight(this.settle(Effect.void), callback)
        }
      }
      this.publish(fresh, duplicates)
      return this.settle<ReadonlyArray<SseEvent>>(Effect.succeed(kept))
    }
    return next()
  }
}

