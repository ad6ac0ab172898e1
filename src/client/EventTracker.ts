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
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import * as internal from "./internal/tracker.js"
import type { SseEvent } from "../wire/SseEvent.js"
import { count, resolve } from "../internal/settings.js"
import { SettingsError } from "../Settings.js"

/**
 * An option given to `make` that a tracker cannot run with.
 * @deprecated Every module's settings now fail with `Settings.SettingsError` (tag "SettingsError").
 */
export const TrackerOptionsError = SettingsError
/** @deprecated Use `Settings.SettingsError`. */
export type TrackerOptionsError = SettingsError

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

/** SSE events recorded for the first time. */
export const eventsNew: Metric.Metric.Counter<number> = internal.eventsNew
/** SSE events dropped because their id was seen within the window. */
export const duplicateEvents: Metric.Metric.Counter<number> = internal.duplicateEvents
/** Tracker callbacks that threw or died. */
export const callbackFailures: Metric.Metric.Counter<number> = internal.callbackFailures

/** The window when `maxTracked` is given as `undefined`: the client's and the session manager's default. */
const defaults: Pick<Options, "maxTracked"> = { maxTracked: 10_000 }

/** A window of zero would drop nothing and keep no resume point. */
const rules = { maxTracked: count }

/**
 * Makes a tracker; a `maxTracked` that is not a whole number ≥ 1 fails with
 * `SettingsError`. The async callback's requirements `R` are captured here, so
 * `recordEvent` needs none.
 */
export const make = <E = never, R = never>(
  options: Options<E, R>
): Effect.Effect<EventTracker<E>, SettingsError, R> =>
  Effect.flatMap(resolve("EventTracker", defaults, options, rules), (settings) =>
    Effect.map(
      Effect.context<R>(),
      (context) =>
        new internal.Tracker<E, R>(
          settings.maxTracked,
          options.onNewEvent,
          options.onNewEventAsync,
          options.onCallbackDefect,
          context
        )
    ))

/**
 * A tracker with the same window and resume point as `tracker` but no callbacks,
 * and its own `counts` from zero. Give it to a client for de-duplication and
 * record into `tracker` only after handling each chunk: then the callbacks (which
 * persist the cursor) never run ahead of what was handled, and a crash or an
 * early stop costs a replay, never an event.
 */
export const copy = <E>(tracker: EventTracker<E>): Effect.Effect<EventTracker> =>
  Effect.sync(() => {
    const twin = new internal.Tracker<never, never>(tracker.maxTracked, undefined, undefined, undefined, Context.empty())
    twin.reset(tracker.unsafeSnapshot())
    return twin
  })
