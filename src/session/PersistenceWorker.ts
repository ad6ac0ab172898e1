/**
 * Turns a stream of per-event cursor updates into few store writes without ever
 * losing a session's newest cursor. Producers wait on a bounded queue (that is the
 * backpressure); a producer that waits too long parks its cursor in a latest-only
 * slot per session instead of dropping it (the seed card's flaw). One worker fiber
 * coalesces everything to the newest cursor per session (`PendingTable`) and writes
 * it with one `saveAll`, retrying failed writes with backoff while newer cursors
 * replace older.
 */
import {
  type Cause,
  type Clock,
  Config,
  Context,
  Data,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  MetricBoundaries,
  Option,
  Queue,
  Random,
  type Scope
} from "effect"
import type { ConfigError } from "effect/ConfigError"
import * as Backpressure from "../client/Backpressure.js"
import { type Cursor, CursorStore, type SessionLost } from "../store/CursorStore.js"
import { PendingTable } from "./internal/pendingTable.js"
import { positiveDuration, positiveInt } from "../internal/settings.js"

/** One new event of a session, on its way to the store. */
export interface PersistenceRequest {
  readonly sessionId: string
  readonly eventId: string
  /** The session's event counter at this event; the newest cursor has the highest. */
  readonly seq: number
  /** Epoch ms when the event was recorded: the start of its staleness. */
  readonly recordedAt: number
  /**
   * Reads the session's de-duplication window at write time, cut at `upTo`, so a
   * stored window never runs ahead of its stored cursor.
   */
  readonly recentIds?: ((upTo: string) => ReadonlyArray<string>) | undefined
  /** The session's lease epoch when owned: the store refuses the write once another owner has it. */
  readonly epoch?: number | undefined
  /** Told when the store refused the write for a stale epoch; such a write is final, never retried. */
  readonly onFenced?: ((lost: SessionLost) => void) | undefined
}

/** The worker is closed: its scope is closing or closed, so the cursor cannot be taken. */
export class PersistenceClosedError extends Data.TaggedError("PersistenceClosedError")<{
  readonly sessionId: string
  readonly seq: number
}> {}

export interface Settings {
  /** Capacity of the bounded queue between producers and the worker. */
  readonly maxPending: number
  /** Most cursors (coalesced, one per session) written by one `saveAll`. */
  readonly batchSize: number
  /** Longest a recorded cursor waits before the worker writes it. */
  readonly flushInterval: Duration.Duration
  /** How long a producer waits on a full queue before parking its cursor. */
  readonly offerTimeout: Duration.Duration
  /** Failed writes of a cursor before it is counted as failed (and still kept). */
  readonly maxAttempts: number
  /** First retry delay of a cursor; doubles with each of its failed attempts (with jitter), up to 100×. */
  readonly retryBase: Duration.Duration
  /** How long closing the layer may spend writing what is left. */
  readonly shutdownTimeout: Duration.Duration
}

export const defaults: Settings = {
  maxPending: 1_000,
  batchSize: 1_000,
  flushInterval: Duration.millis(100),
  offerTimeout: Duration.millis(100),
  maxAttempts: 5,
  retryBase: Duration.millis(100),
  shutdownTimeout: Duration.seconds(5)
}

/** The worker's settings from the environment, each with its default. */
export const config: Config.Config<Settings> = Config.all({
  maxPending: positiveInt("SSE_MAX_PENDING", defaults.maxPending, "Capacity of the queue between sessions and the writer"),
  batchSize: positiveInt("SSE_BATCH_SIZE", defaults.batchSize, "Most session cursors written by one store transaction"),
  flushInterval: positiveDuration(
    "SSE_FLUSH_INTERVAL",
    defaults.flushInterval,
    "Longest a recorded cursor waits before it is written"
  ),
  offerTimeout: positiveDuration(
    "SSE_PERSIST_TIMEOUT",
    defaults.offerTimeout,
    "How long a session waits on a full queue before parking its cursor"
  ),
  maxAttempts: positiveInt(
    "SSE_PERSIST_MAX_ATTEMPTS",
    defaults.maxAttempts,
    "Failed writes of a cursor before it counts as failed (it is still kept and retried)"
  ),
  retryBase: positiveDuration(
    "SSE_PERSIST_RETRY_BASE",
    defaults.retryBase,
    "First retry delay of a failed write; doubles per attempt, up to 100 times"
  ),
  shutdownTimeout: positiveDuration(
    "SSE_SHUTDOWN_TIMEOUT",
    defaults.shutdownTimeout,
    "How long closing may spend writing the cursors that are left"
  )
})

export interface Stats {
  /** Requests in the bounded queue, counting producers blocked on offering one. */
  readonly queued: number
  /** Sessions with a parked cursor (their producer timed out on a full queue). */
  readonly parked: number
  /** Coalesced cursors taken by the worker and not yet durable. */
  readonly pending: number
  /** Offers that waited past `offerTimeout` and were parked, since this worker started. */
  readonly timedOut: number
}

export class PersistenceWorker extends Context.Tag("effect-sse-resume/PersistenceWorker")<PersistenceWorker, {
  /**
   * Hands a cursor to the worker, waiting up to `offerTimeout` while the queue is
   * full, then parking it; fails only once the worker is closing.
   */
  readonly persist: (request: PersistenceRequest) => Effect.Effect<void, PersistenceClosedError>
  /** Where cursors are right now, for health checks and tests. */
  readonly stats: Effect.Effect<Stats>
}>() {}

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
  description: "Cursors that failed maxAttempts writes in a row (still kept), or were left unwritten at shutdown",
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

const noTags: ReadonlyArray<never> = []

/** Put into the queue to wake a worker blocked on an empty queue; carries no cursor. */
const wakeUp: unique symbol = Symbol("PersistenceWorker/wakeUp")
type Item = PersistenceRequest | typeof wakeUp

/** What the worker's steps share: the queue, the parking slot and the pending table. */
interface State {
  readonly settings: Settings
  readonly store: CursorStore["Type"]
  readonly clock: Clock.Clock
  readonly queue: Queue.Queue<Item>
  /** The newest timed-out request per session, until the worker takes it. */
  readonly parked: Map<string, PersistenceRequest>
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

/** Starts the worker in the current scope; closing the scope drains it. */
export const make = (
  options: Partial<Settings> = {}
): Effect.Effect<PersistenceWorker["Type"], never, CursorStore | Scope.Scope> =>
  Effect.gen(function*() {
    const settings: Settings = { ...defaults, ...options }
    const state: State = {
      settings,
      store: yield* CursorStore,
      clock: yield* Effect.clock,
      queue: yield* Queue.bounded<Item>(settings.maxPending),
      parked: new Map(),
      table: new PendingTable({
        batchSize: settings.batchSize,
        flushIntervalMillis: Duration.toMillis(settings.flushInterval),
        maxAttempts: settings.maxAttempts,
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
    return PersistenceWorker.of({ persist: persistTo(state), stats: Effect.sync(() => statsOf(state)) })
  })

// --- Producers: queue, or park after offerTimeout -----------------------------------

const closedError = (request: PersistenceRequest) =>
  Effect.fail(new PersistenceClosedError({ sessionId: request.sessionId, seq: request.seq }))

const persistTo = (state: State) => {
  const release = Effect.sync(() => {
    state.inFlight--
  })
  return (request: PersistenceRequest): Effect.Effect<void, PersistenceClosedError> =>
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
const park = (state: State, request: PersistenceRequest) => {
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

const statsOf = (state: State): Stats => ({
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

// On close: keep absorbing and writing everything, fresh at once, failed ones on
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

/** The worker with the given settings (defaults for the rest). */
export const layer = (options: Partial<Settings> = {}): Layer.Layer<PersistenceWorker, never, CursorStore> =>
  Layer.scoped(PersistenceWorker, make(options))

/** The worker with its settings read from the environment (`config`). */
export const layerConfig: Layer.Layer<PersistenceWorker, ConfigError, CursorStore> = Layer.unwrapEffect(
  Effect.map(config, layer)
)
