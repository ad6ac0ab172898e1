/**
 * The PersistenceWorker's machinery: producers queue or park their cursors, one
 * fiber takes them into the pending table and writes what is due, and closing
 * drains it within `shutdownTimeout`.
 */
import {
  type Cause,
  type Clock,
  Data,
  Duration,
  Effect,
  Exit,
  Fiber,
  Metric,
  MetricBoundaries,
  Option,
  Queue,
  Random,
  type Scope
} from "effect"
import * as Backpressure from "../../client/Backpressure.js"
import { noTags } from "../../internal/metricTags.js"
import type { Cursor, CursorStore, SessionLost } from "../../store/CursorStore.js"
import type * as PersistenceWorker from "../PersistenceWorker.js"
import { PendingTable } from "./pendingTable.js"

// The public module declares its type and re-exports the constructor.
export class PersistenceClosedError extends Data.TaggedError("PersistenceClosedError")<{
  readonly sessionId: string
  readonly seq: number
}> {}

// --- Metrics (re-exported, with their docs, by the public module) ---

export const batches = Metric.counter("persistence_batches", {
  description: "saveAll calls that succeeded",
  incremental: true
})
export const coalesced = Metric.counter("persistence_coalesced", {
  description: "Requests folded into a newer or older cursor of the same session instead of written",
  incremental: true
})
export const retries = Metric.counter("persistence_retries", {
  description: "Cursors whose write failed and is scheduled again",
  incremental: true
})
export const failures = Metric.counter("persistence_failures", {
  description: "Cursors that failed maxSaveAttempts writes in a row (still kept), or were left unwritten at shutdown",
  incremental: true
})
export const fenced = Metric.counter("persistence_fenced", {
  description: "Cursors refused by the store because their session has a newer owner (dropped, not retried)",
  incremental: true
})
export const queueDepth = Metric.gauge("persistence_queue_depth", {
  description: "Requests waiting in the persistence queue"
})
const millisBoundaries = MetricBoundaries.fromIterable([1, 2, 5, 10, 20, 50, 100, 150, 200, 250, 300, 500, 1_000, 2_000, 5_000, 10_000])
export const batchLatency = Metric.histogram("persistence_batch_latency", millisBoundaries, "Milliseconds one saveAll took")
export const cursorStaleness = Metric.histogram(
  "cursor_staleness",
  millisBoundaries,
  "Milliseconds from the oldest event a write covers being recorded to the write being durable"
)

/** Put into the queue to wake a worker blocked on an empty queue; carries no cursor. */
const wakeUp: unique symbol = Symbol("PersistenceWorker/wakeUp")
type Item = PersistenceWorker.PersistenceRequest | typeof wakeUp

/** What the worker's steps share: the queue, the parking slot and the pending table. */
interface State {
  readonly settings: PersistenceWorker.Settings
  readonly store: CursorStore["Type"]
  readonly clock: Clock.Clock
  readonly queue: Queue.Queue<Item>
  /** The newest timed-out request per session, until the worker takes it. */
  readonly parked: Map<string, PersistenceWorker.PersistenceRequest>
  readonly table: PendingTable
  /** Set when the scope starts closing: `persist` refuses, the loop turns to draining. */
  closing: boolean
  /**
   * Producers past the `closing` check that have not queued or parked yet; the
   * final drain waits for them so none of their cursors lands behind it.
   */
  inFlight: number
  /** Offers parked after `offerTimeout`, for `Stats.timedOut`. */
  timedOut: number
  /** A wake-up is in the queue: one is enough, and it is not a cursor left at shutdown. */
  wakeQueued: boolean
}

/** Starts the worker in the current scope with resolved settings; closing the scope drains it. */
export const make = (
  settings: PersistenceWorker.Settings,
  store: CursorStore["Type"]
): Effect.Effect<PersistenceWorker.PersistenceWorker["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const state: State = {
      settings,
      store,
      clock: yield* Effect.clock,
      queue: yield* Queue.bounded<Item>(settings.maxPending),
      parked: new Map(),
      table: new PendingTable({
        batchSize: settings.batchSize,
        flushIntervalMillis: Duration.toMillis(settings.flushInterval),
        maxSaveAttempts: settings.maxSaveAttempts,
        retryBaseMillis: Duration.toMillis(settings.retryBase)
      }),
      closing: false,
      inFlight: 0,
      timedOut: 0,
      wakeQueued: false
    }
    // A daemon, not forkScoped: the scope would wait for the fiber's interruption, and a
    // store call that ignores interruption would then hold the close past shutdownTimeout.
    // Forked interruptible whatever region `make` runs in, so that timeout can stop it.
    const fiber = yield* Effect.interruptible(Effect.forkDaemon(run(state)))
    yield* Effect.addFinalizer(() => shutdown(state, fiber))
    return { persist: persistTo(state), stats: Effect.sync(() => statsOf(state)) }
  })

// --- Producers: queue, or park after offerTimeout -----------------------------------

const closedError = (request: PersistenceWorker.PersistenceRequest) =>
  Effect.fail(new PersistenceClosedError({ sessionId: request.sessionId, seq: request.seq }))

const persistTo = (state: State) => {
  const release = Effect.sync(() => {
    state.inFlight--
  })
  return (request: PersistenceWorker.PersistenceRequest): Effect.Effect<void, PersistenceClosedError> =>
    Effect.suspend(() => {
      if (state.closing) return closedError(request)
      // Fast path, in the same synchronous step as the `closing` check above.
      if (state.queue.unsafeOffer(request)) {
        Backpressure.queued.unsafeUpdate(1, noTags)
        return Effect.void
      }
      state.inFlight++
      return Backpressure.offer(state.queue, request, { timeout: state.settings.offerTimeout }).pipe(
        Effect.flatMap((result) =>
          result === "queued" ? Effect.void :
          // "shutdown" only happens after the final drain: refusing loudly beats parking
          // a cursor nobody will write.
          result === "shutdown" ? closedError(request) :
          Effect.sync(() => park(state, request))
        ),
        Effect.ensuring(release)
      )
    })
}

/** Keeps the newest timed-out request per session for the worker's next intake. */
const park = (state: State, request: PersistenceWorker.PersistenceRequest) => {
  state.timedOut++
  const held = state.parked.get(request.sessionId)
  if (held === undefined || request.seq > held.seq) state.parked.set(request.sessionId, request)
  // The worker may be blocked on an empty queue by now.
  wake(state)
}

/** Wakes a worker blocked on an empty queue (a full queue wakes it anyway). */
const wake = (state: State) => {
  if (!state.wakeQueued) state.wakeQueued = state.queue.unsafeOffer(wakeUp)
}

/** Requests in the queue, with producers blocked on offering one; a wake-up is no request. */
const queuedRequests = (state: State) =>
  // A waiting taker (the idle worker) counts as -1 in the queue's size.
  Math.max(0, Option.getOrElse(state.queue.unsafeSize(), () => 0) - (state.wakeQueued ? 1 : 0))

const statsOf = (state: State): PersistenceWorker.Stats => ({
  queued: queuedRequests(state),
  parked: state.parked.size,
  pending: state.table.size,
  timedOut: state.timedOut
})

// --- Intake: queued and parked requests into the table --------------------------------

const absorbAll = (state: State, items: Iterable<Item>, depth: number) => {
  const now = state.clock.unsafeCurrentTimeMillis()
  let folded = 0
  for (const item of items) {
    if (item === wakeUp) state.wakeQueued = false
    else if (state.table.absorb(item, now)) folded++
  }
  for (const request of state.parked.values()) if (state.table.absorb(request, now)) folded++
  state.parked.clear()
  if (folded > 0) coalesced.unsafeUpdate(folded, noTags)
  queueDepth.unsafeUpdate(depth, noTags)
}

// Taking and absorbing are one uninterruptible step: an interrupted take can lose
// the items it was just handed.
/** Moves everything queued and parked into the table without waiting. */
const takeAll = (state: State) =>
  Effect.uninterruptible(Effect.map(Queue.takeAll(state.queue), (items) => absorbAll(state, items, items.length)))

/** Like `takeAll`, but first waits for at least one item, or until `deadline` (epoch ms) if given. */
const takeSome = (state: State, deadline: number | undefined) => {
  const take = Effect.uninterruptible(
    Effect.map(Queue.takeBetween(state.queue, 1, Number.MAX_SAFE_INTEGER), (items) => absorbAll(state, items, items.length))
  )
  if (deadline === undefined) return take
  // A timer that queues a wake-up rather than a timed take, for the reason above.
  const timer = Effect.sleep(Math.max(0, deadline - state.clock.unsafeCurrentTimeMillis())).pipe(
    Effect.andThen(() => wake(state))
  )
  return Effect.flatMap(Effect.fork(timer), (fiber) => Effect.zipRight(take, Fiber.interruptFork(fiber)))
}

// --- Writing: the due batch, then settle it in the table ------------------------------

/** Writes the due cursors (up to `batchSize`) with one `saveAll`. */
const write = (state: State) =>
  Effect.suspend(() => {
    const started = state.clock.unsafeCurrentTimeMillis()
    const batch = state.table.due(started)
    return state.store.saveAll(batch).pipe(
      Effect.exit,
      Effect.flatMap((exit) =>
        Exit.isSuccess(exit) ? settle(state, batch, started, exit.value) : retryLater(state, batch, exit.cause)
      ),
      Effect.withSpan("persistence.batch", { attributes: { "persistence.cursors": batch.length } })
    )
  })

/**
 * The write is done: cursors refused for a stale epoch are final (their owner is
 * told and they leave the table like the written ones), the rest are durable.
 */
const settle = (state: State, batch: ReadonlyArray<Cursor>, started: number, lost: ReadonlyArray<SessionLost>) =>
  Effect.suspend(() => {
    const notices = lost.map((refused) => [refused, state.table.onFenced(refused.sessionId)] as const)
    durable(state, batch, started)
    if (lost.length === 0) return Effect.void
    fenced.unsafeUpdate(lost.length, noTags)
    for (const [refused, onFenced] of notices) onFenced?.(refused)
    return Effect.logWarning("PersistenceWorker: cursors refused, their sessions have a newer owner").pipe(
      Effect.annotateLogs({ sessions: lost.map((refused) => refused.sessionId).join(", ") })
    )
  })

const durable = (state: State, batch: ReadonlyArray<Cursor>, started: number) => {
  const done = state.clock.unsafeCurrentTimeMillis()
  for (const millis of state.table.succeeded(batch, done)) cursorStaleness.unsafeUpdate(millis, noTags)
  batchLatency.unsafeUpdate(done - started, noTags)
  batches.unsafeUpdate(1, noTags)
}

const retryLater = (state: State, batch: ReadonlyArray<Cursor>, cause: Cause.Cause<unknown>) =>
  Effect.flatMap(Random.next, (random) => {
    const failed = state.table.failed(batch, state.clock.unsafeCurrentTimeMillis(), random)
    retries.unsafeUpdate(batch.length, noTags)
    if (failed.gaveUp > 0) failures.unsafeUpdate(failed.gaveUp, noTags)
    // One line per outage, not per retry: when a cursor first fails or gives up.
    if (!failed.firstFailure && failed.gaveUp === 0) return Effect.void
    return Effect.logWarning("PersistenceWorker: saveAll failed; cursors kept for retry", cause).pipe(
      Effect.annotateLogs({ cursors: batch.length, failedAfterMaxAttempts: failed.gaveUp, retryAt: failed.retryAt })
    )
  })

// --- The loop: write what is due, else wait for work; drain once closing --------------

const step = (state: State) =>
  Effect.zipRight(takeAll(state), Effect.suspend(() => {
    const at = state.table.nextWrite()
    if (at !== undefined && state.clock.unsafeCurrentTimeMillis() >= at) return write(state)
    if (state.closing) return Effect.void
    return takeSome(state, at)
  }))

// On close: keep absorbing and writing everything, untried cursors at once, failed ones on
// their schedule, until nothing is left and no producer is still on its way.
const drain = (state: State) =>
  Effect.gen(function*() {
    while (true) {
      yield* takeAll(state)
      const at = state.table.nextWrite(true)
      if (at === undefined) {
        if (state.inFlight === 0 && state.parked.size === 0 && (yield* Queue.size(state.queue)) === 0) return
        // Producers still between offer and queue/slot: let them finish.
        yield* Effect.yieldNow()
        continue
      }
      const now = state.clock.unsafeCurrentTimeMillis()
      if (now >= at) yield* write(state)
      else yield* Effect.sleep(at - now)
    }
  })

const run = (state: State) =>
  Effect.gen(function*() {
    while (!state.closing) yield* step(state)
    yield* drain(state)
  })

// --- Finalization: drain within shutdownTimeout, then refuse --------------------------

const shutdown = (state: State, fiber: Fiber.RuntimeFiber<void>) =>
  Effect.gen(function*() {
    state.closing = true
    wake(state)
    // Finalizers run uninterruptibly; the wait itself must be interruptible for the timeout to cut it.
    const finished = yield* Effect.interruptible(Fiber.await(fiber)).pipe(
      Effect.timeoutOption(state.settings.shutdownTimeout)
    )
    if (Option.isNone(finished)) {
      yield* Fiber.interruptFork(fiber)
      const left = state.table.size + state.parked.size + queuedRequests(state)
      failures.unsafeUpdate(left, noTags)
      yield* Effect.logError("PersistenceWorker: shutdown timeout; cursors left unwritten").pipe(
        Effect.annotateLogs({ cursors: left, shutdownTimeout: Duration.format(state.settings.shutdownTimeout) })
      )
    }
    yield* Queue.shutdown(state.queue)
  })

