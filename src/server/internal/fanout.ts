/**
 * Live fan-out inside one process: the followers of a stream share one `Hub`, one
 * fiber that is woken (by an append here, a notification, or the poll of the
 * stream's last seq) and reads the new events from storage once for all of them.
 * It hands them to each follower's bounded buffer without waiting; a follower whose
 * buffer would overflow drops it and goes on from storage (`needsStorage`), so a
 * slow reader holds at most `readerBuffer` events and never holds up the others.
 *
 * Every hand-over is a contiguous run of seqs that storage had committed when the
 * hub read it; a follower reads storage after joining, so between the two it sees
 * every event, and it checks contiguity to know when to read storage again.
 */
import { Deferred, Effect, Fiber, Metric, Option, Queue, Schedule, type Scope, Stream } from "effect"
import type * as EventLog from "../EventLog.js"
import type { Storage } from "../EventLog.js"
import { seqOf } from "./eventId.js"
import { readerFallbacks, readers, subscriptions } from "./logMetrics.js"

/** How a stream ended and the seq of its last event. */
interface KnownEnd {
  readonly end: EventLog.StreamEnd
  readonly lastSeq: number
}

const nothing: ReadonlyArray<EventLog.LoggedEvent> = []

/** One follower's side of a hub: its bounded buffer and what it must do next. */
class Reader {
  private chunks: Array<ReadonlyArray<EventLog.LoggedEvent>> = []
  private size = 0
  /** The buffer cannot be trusted to continue this reader: read storage next. */
  needsStorage = true
  /** The stream was deleted (or re-created): nothing more will come. */
  gone = false
  end: KnownEnd | undefined = undefined

  constructor(private readonly capacity: number, private readonly signal: Queue.Queue<void>) {}

  /** Buffers a run of events; false when it overflowed (the buffer is dropped instead). */
  offer(events: ReadonlyArray<EventLog.LoggedEvent>): boolean {
    if (this.needsStorage) return true
    if (this.size + events.length > this.capacity) {
      this.chunks = []
      this.size = 0
      this.needsStorage = true
      this.poke()
      return false
    }
    this.chunks.push(events)
    this.size += events.length
    this.poke()
    return true
  }

  /** Everything buffered, oldest first, emptying the buffer. */
  take(): ReadonlyArray<EventLog.LoggedEvent> {
    if (this.size === 0) return nothing
    const taken = this.chunks.length === 1 ? this.chunks[0]! : this.chunks.flat()
    this.chunks = []
    this.size = 0
    return taken
  }

  poke(): void {
    Queue.unsafeOffer(this.signal, undefined)
  }

  /** Until the hub has something for this reader. */
  get wait(): Effect.Effect<void> {
    return Queue.take(this.signal)
  }
}

class Hub {
  readonly readers = new Set<Reader>()
  generation = 0
  lastSeq = 0
  end: KnownEnd | undefined = undefined
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined

  constructor(
    readonly stream: string,
    readonly signal: Queue.Queue<void>,
    /** True once the hub knows the stream's head, false if the stream is gone. */
    readonly ready: Deferred.Deferred<boolean>
  ) {}

  wake(): void {
    Queue.unsafeOffer(this.signal, undefined)
  }

  /** Every reader must read storage: the hub skipped events or could not tell them. */
  sendToStorage(): void {
    for (const reader of this.readers) {
      reader.needsStorage = true
      reader.poke()
    }
  }

  /** Hands a contiguous run to every reader; the number that overflowed. */
  publish(events: ReadonlyArray<EventLog.LoggedEvent>): number {
    let overflowed = 0
    for (const reader of this.readers) if (!reader.offer(events)) overflowed++
    this.lastSeq = seqOf(events[events.length - 1]!)
    return overflowed
  }

  finish(end: KnownEnd): void {
    this.end = end
    for (const reader of this.readers) {
      reader.end = end
      reader.poke()
    }
  }

  close(): void {
    for (const reader of this.readers) {
      reader.gone = true
      reader.poke()
    }
  }
}

export interface Hubs {
  /** Tells the stream's hub (if any follower here) that it may have changed. */
  readonly wake: (stream: string) => void
  /** Joins the stream's hub for the scope, as a follower positioned in `generation`. */
  readonly subscribe: (stream: string, generation: number) => Effect.Effect<Reader, never, Scope.Scope>
}

const retryDelay = "1 second"
const retrySchedule = Schedule.spaced(retryDelay)

// --- Change notifications: wake the hub of every stream another process changed ---

const listenForChanges = (changes: Stream.Stream<string, unknown>, hubs: Map<string, Hub>) =>
  // Each (re)start of the listener may have missed notifications: every hub looks again.
  Effect.sync(() => hubs.forEach((hub) => hub.wake())).pipe(
    Effect.zipRight(Stream.runForEach(changes, (stream) => Effect.sync(() => hubs.get(stream)?.wake()))),
    Effect.catchAllCause((cause) => Effect.logWarning("EventLog: change notifications failed; listening again", cause)),
    Effect.zipRight(Effect.sleep(retryDelay)),
    Effect.forever
  )

// --- One hub's fiber: read what is new once, hand it to every reader ---

/** Reads what is new since the hub's last seq and hands it out; false once the stream is gone. */
const catchUp = (storage: Storage, settings: EventLog.Settings, hub: Hub): Effect.Effect<boolean, EventLog.EventLogError> =>
  Effect.gen(function*() {
    const head = yield* storage.head(hub.stream)
    if (Option.isNone(head) || head.value.generation !== hub.generation) return false
    let overflowed = 0
    while (hub.lastSeq < head.value.lastSeq) {
      const events = yield* storage.readAfter(hub.stream, hub.generation, hub.lastSeq, settings.maxReadLimit)
      if (events.length === 0 || seqOf(events[0]!) !== hub.lastSeq + 1) {
        // Retention removed some: each reader finds out from storage where it stands.
        hub.lastSeq = events.length === 0 ? head.value.lastSeq : seqOf(events[events.length - 1]!)
        hub.sendToStorage()
        continue
      }
      overflowed += hub.publish(events)
    }
    if (overflowed > 0) yield* Metric.incrementBy(readerFallbacks, overflowed)
    if (Option.isSome(head.value.end) && hub.end === undefined) {
      hub.finish({ end: head.value.end.value, lastSeq: head.value.lastSeq })
    }
    return true
  })

const waitForChange = (storage: Storage, settings: EventLog.Settings, hub: Hub) =>
  storage.pollsOthers ? Effect.timeoutOption(Queue.take(hub.signal), settings.pollInterval) : Queue.take(hub.signal)

// --- Hub lifecycle: the map of hubs, a hub's removal ---

/** Removes the hub from the map, once. */
const forget = (hubs: Map<string, Hub>, hub: Hub) =>
  Effect.suspend(() => {
    if (hubs.get(hub.stream) !== hub) return Effect.void
    hubs.delete(hub.stream)
    return Metric.incrementBy(subscriptions, -1)
  })

const stop = (hubs: Map<string, Hub>, hub: Hub) =>
  forget(hubs, hub).pipe(
    Effect.zipRight(Effect.sync(() => hub.close())),
    Effect.zipRight(Deferred.succeed(hub.ready, false))
  )

const run = (storage: Storage, settings: EventLog.Settings, hubs: Map<string, Hub>, hub: Hub) =>
  Effect.gen(function*() {
    const head = yield* Effect.retry(storage.head(hub.stream), { schedule: retrySchedule })
    if (Option.isNone(head)) {
      yield* stop(hubs, hub)
      return
    }
    hub.generation = head.value.generation
    hub.lastSeq = head.value.lastSeq
    if (Option.isSome(head.value.end)) hub.end = { end: head.value.end.value, lastSeq: head.value.lastSeq }
    yield* Deferred.succeed(hub.ready, true)
    while (true) {
      yield* waitForChange(storage, settings, hub)
      const alive = yield* catchUp(storage, settings, hub).pipe(
        Effect.catchAllCause((cause) =>
          Effect.as(Effect.logWarning(`EventLog: following "${hub.stream}" failed; trying again`, cause), true)
        )
      )
      if (!alive) return yield* stop(hubs, hub)
    }
  })

// --- The hubs of one log: joining and leaving ---

export const makeHubs = (storage: Storage, settings: EventLog.Settings): Effect.Effect<Hubs, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const hubs = new Map<string, Hub>()

    const wake = (stream: string) => hubs.get(stream)?.wake()

    if (storage.changes !== undefined) yield* Effect.forkScoped(listenForChanges(storage.changes, hubs))

    const join = (stream: string) =>
      Effect.suspend(() => {
        const found = hubs.get(stream)
        if (found !== undefined) return Effect.succeed(found)
        const hub = new Hub(stream, Effect.runSync(Queue.sliding<void>(1)), Effect.runSync(Deferred.make<boolean>()))
        hubs.set(stream, hub)
        // Joined inside acquireRelease's uninterruptible acquire, which a plain fork would inherit.
        return Effect.map(Effect.forkIn(Effect.interruptible(run(storage, settings, hubs, hub)), scope), (fiber) => {
          hub.fiber = fiber
          return hub
        }).pipe(Effect.zipLeft(Metric.incrementBy(subscriptions, 1)))
      })

    const leave = (hub: Hub, reader: Reader) =>
      Effect.suspend(() => {
        hub.readers.delete(reader)
        if (hub.readers.size > 0) return Effect.void
        return Effect.zipRight(forget(hubs, hub), hub.fiber === undefined ? Effect.void : Fiber.interruptFork(hub.fiber))
      }).pipe(Effect.zipRight(Metric.incrementBy(readers, -1)))

    const subscribe = (stream: string, generation: number) =>
      Effect.gen(function*() {
        const [hub, reader] = yield* Effect.acquireRelease(
          Effect.flatMap(join(stream), (hub) =>
            Effect.map(Queue.sliding<void>(1), (signal) => {
              const reader = new Reader(settings.readerBuffer, signal)
              hub.readers.add(reader)
              return [hub, reader] as const
            })).pipe(Effect.tap(() => Metric.incrementBy(readers, 1))),
          ([hub, reader]) => leave(hub, reader)
        )
        const alive = yield* Deferred.await(hub.ready)
        if (!alive || hub.generation !== generation) reader.gone = true
        reader.end = hub.end
        return reader
      })

    return { wake, subscribe }
  })
