/**
 * Remembers which SSE events a consumer has seen: the resume point (`lastEventId`)
 * and a bounded window of recent ids, so events a server replays after a reconnect
 * are dropped. Each new event is handed to a sync and/or async callback; awaiting
 * the async one is what lets a full queue behind it slow the stream down.
 *
 * The resume point only moves forward: to each new event's id and to each id-only
 * block (`id: 5` and a blank line) whose id is not in the window. A replayed id
 * never moves it, or a server cut in the middle of a replay would make the next
 * reconnect ask for older events again. An empty id clears it (spec: the
 * last-event-id buffer becomes empty, so the next reconnect sends no Last-Event-ID).
 */
import { Cause, Context, Data, Effect, Metric, Option } from "effect"
import { IdWindow } from "./internal/idWindow.js"
import { isIdOnly } from "../wire/internal/idOnly.js"
import type { SseEvent } from "../wire/SseEvent.js"
import { type RecordedBeforeFailure, recordedBeforeFailure } from "./internal/recordedBeforeFailure.js"
import { recordNow, type RecordsNow } from "./internal/recordNow.js"
import { countRule, isCount } from "../internal/settings.js"

export class TrackerOptionsError extends Data.TaggedError("TrackerOptionsError")<{
  readonly option: string
  readonly value: unknown
  readonly reason: string
}> {}

/**
 * What `recordEvent` saw: a first sighting, a replay within the window, an event
 * without (or with an empty) id, or an id-only block, which is never an event
 * (it may have moved or cleared the resume point).
 */
export type RecordResult = "new" | "duplicate" | "no-id" | "id-only"

export interface Options<E = never, R = never> {
  /** How many recent new ids are remembered for de-duplication (≥ 1). */
  readonly maxTracked: number
  /** Called synchronously for each new id (of an event or an id-only block). */
  readonly onNewEvent?: (id: string) => void
  /** Awaited for each new id (of an event or an id-only block); its typed failures reach the caller of `recordEvent`. */
  readonly onNewEventAsync?: (id: string) => Effect.Effect<void, E, R>
  /**
   * A callback that throws or dies is, by default, logged and counted and the event
   * still counts as new ("log"); "propagate" turns it into a defect instead.
   */
  readonly onCallbackDefect?: "log" | "propagate"
}

export interface RecordAllOptions {
  /**
   * Return events without an id (or with an empty id) too, in place among the new
   * ones, so a client needs no merge pass. Default: only new events are returned.
   */
  readonly keepWithoutId?: boolean
}

/** A persisted tracker state, as a cursor store keeps it. */
export interface Snapshot {
  readonly lastEventId: Option.Option<string>
  /** Recent new ids, oldest first; only the newest `maxTracked` are kept. */
  readonly recentIds: ReadonlyArray<string>
}

/** One tracker's account since it was made (or copied); id-only blocks count in neither. */
export interface Counts {
  /** Events recorded as new. */
  readonly fresh: number
  /** Events dropped as replays within the window. */
  readonly duplicates: number
}

export interface EventTracker<E = never> {
  /** Records one event: moves the resume point and runs the callbacks if its id is new. */
  readonly recordEvent: (event: SseEvent) => Effect.Effect<RecordResult, E>
  /** Records a chunk of events in one Effect; returns the new ones, in order. */
  readonly recordAll: (events: Iterable<SseEvent>, options?: RecordAllOptions) => Effect.Effect<ReadonlyArray<SseEvent>, E>
  /** The resume point: the `Last-Event-ID` to reconnect with. */
  readonly lastEventId: Effect.Effect<Option.Option<string>>
  /** Whether `id` is within the de-duplication window. */
  readonly isDuplicate: (id: string) => Effect.Effect<boolean>
  /** Replaces the state with a persisted one (callbacks are not run; `counts` are kept). */
  readonly restore: (snapshot: Snapshot) => Effect.Effect<void>
  /** The current state: the resume point and the window's ids, oldest first. */
  readonly snapshot: Effect.Effect<Snapshot>
  /** `snapshot`, synchronously: for code running inside a callback. */
  readonly unsafeSnapshot: () => Snapshot
  /** How many ids the window holds now (never more than `maxTracked`). */
  readonly trackedCount: Effect.Effect<number>
  /** New and duplicate events recorded by this tracker: a run's account, apart from the global metrics. */
  readonly counts: Effect.Effect<Counts>
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

const outcomes: ReadonlyArray<RecordResult> = ["new", "duplicate", "no-id", "id-only", "id-only"]
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
class Tracker<E, R> implements EventTracker<E>, RecordsNow {
  readonly window: IdWindow
  /** The resume point. */
  last: string | undefined = undefined
  fresh = 0
  duplicates = 0
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
  get recordEvent(): (event: SseEvent) => Effect.Effect<RecordResult, E> {
    return (event) => this.record(event)
  }
  get recordAll(): (
    events: Iterable<SseEvent>,
    options?: RecordAllOptions
  ) => Effect.Effect<ReadonlyArray<SseEvent>, E> {
    return (events, options) => this.recordChunk(events, options?.keepWithoutId === true)
  }
  get isDuplicate(): (id: string) => Effect.Effect<boolean> {
    return (id) => Effect.sync(() => this.window.has(id))
  }
  get restore(): (snapshot: Snapshot) => Effect.Effect<void> {
    return (snapshot) => Effect.sync(() => this.reset(snapshot))
  }
  get unsafeSnapshot(): () => Snapshot {
    return () => this.snapshotNow()
  }

  get lastEventId(): Effect.Effect<Option.Option<string>> {
    return Effect.sync(() => Option.fromNullable(this.last))
  }
  get snapshot(): Effect.Effect<Snapshot> {
    return Effect.sync(() => this.snapshotNow())
  }
  get trackedCount(): Effect.Effect<number> {
    return Effect.sync(() => this.window.size)
  }
  get counts(): Effect.Effect<Counts> {
    return Effect.sync(() => ({ fresh: this.fresh, duplicates: this.duplicates }))
  }

  snapshotNow(): Snapshot {
    return { lastEventId: Option.fromNullable(this.last), recentIds: this.window.oldestFirst() }
  }

  reset(snapshot: Snapshot): void {
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

  record(event: SseEvent): Effect.Effect<RecordResult, E> {
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

  [recordNow](events: Array<SseEvent>): boolean {
    // Callbacks need Effects: to await the async one, to log the sync one's failures.
    if (this.syncCallback !== undefined || this.asyncCallback !== undefined) return false
    const fresh = this.fresh
    const duplicates = this.duplicates
    let kept = 0
    for (let i = 0; i < events.length; i++) {
      const step = this.step(events[i]!)
      if (step === NEW || step === NO_ID) events[kept++] = events[i]!
    }
    events.length = kept
    this.publish(fresh, duplicates)
    return true
  }

  recordChunk(events: Iterable<SseEvent>, keepWithoutId: boolean): Effect.Effect<ReadonlyArray<SseEvent>, E> {
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
                ;(this as RecordedBeforeFailure)[recordedBeforeFailure] = kept.at(-1) === event ? kept.slice(0, -1) : kept
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

/**
 * Makes a tracker. The async callback's requirements `R` are captured here, so
 * `recordEvent` needs none.
 */
export const make = <E = never, R = never>(
  options: Options<E, R>
): Effect.Effect<EventTracker<E>, TrackerOptionsError, R> => {
  const { maxTracked } = options
  if (!isCount(maxTracked)) {
    return Effect.fail(
      new TrackerOptionsError({ option: "maxTracked", value: maxTracked, reason: countRule })
    )
  }
  return Effect.map(
    Effect.context<R>(),
    (context) =>
      new Tracker<E, R>(maxTracked, options.onNewEvent, options.onNewEventAsync, options.onCallbackDefect, context)
  )
}

/**
 * A tracker with the same window and resume point as `tracker` but no callbacks,
 * and its own `counts` from zero. Give it to a client for de-duplication and
 * record into `tracker` only after handling each chunk: then the callbacks (which
 * persist the cursor) never run ahead of what was handled, and a crash or an
 * early stop costs a replay, never an event.
 */
export const copy = <E>(tracker: EventTracker<E>): Effect.Effect<EventTracker> =>
  Effect.sync(() => {
    const twin = new Tracker<never, never>(tracker.maxTracked, undefined, undefined, undefined, Context.empty())
    twin.reset(tracker.unsafeSnapshot())
    return twin
  })
