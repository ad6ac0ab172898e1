/**
 * Turns a stream of per-event cursor updates into few store writes without ever
 * losing a session's newest cursor. Producers wait on a bounded queue (that is the
 * backpressure); a producer that waits too long parks its cursor in a latest-only
 * slot per session instead of dropping it (the seed card's flaw). One worker fiber
 * coalesces everything to the newest cursor per session and writes it with one
 * `saveAll`, retrying failed writes with backoff while newer cursors replace older.
 */
import {
  Config as C,
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
import * as Backpressure from "./Backpressure.js"
import { type Cursor, CursorStore } from "./CursorStore.js"
import { positiveInt } from "./Settings.js"

/** One new event of a session, on its way to the store. */
export interface PersistenceRequest {
  readonly sessionId: string
  readonly eventId: string
  /** The session's event counter at this event; the newest cursor has the highest. */
  readonly seq: number
  /** Failed writes of this cursor so far. */
  readonly attempt: number
  /** Epoch ms before which a failed write is not retried (unset: write at the next flush). */
  readonly nextRetry?: number | undefined
  /** Epoch ms when the event was recorded: the start of its staleness. */
  readonly recordedAt: number
  /**
   * Reads the session's de-duplication window at write time, cut at `upTo`, so a
   * stored window never runs ahead of its stored cursor.
   */
  readonly recentIds?: ((upTo: string) => ReadonlyArray<string>) | undefined
}

/** The worker is closed: its scope is closing or closed, so the cursor cannot be taken. */
export class PersistenceClosedError extends Data.TaggedError("PersistenceClosedError")<{
  readonly sessionId: string
  readonly seq: number
}> {}

export interface Config {
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

export const defaults: Config = {
  maxPending: 1_000,
  batchSize: 1_000,
  flushInterval: Duration.millis(100),
  offerTimeout: Duration.millis(100),
  maxAttempts: 5,
  retryBase: Duration.millis(100),
  shutdownTimeout: Duration.seconds(5)
}

/** The worker's options from the environment, each with its default. */
export const config: C.Config<Config> = C.all({
  maxPending: positiveInt("SSE_MAX_PENDING", defaults.maxPending),
  batchSize: positiveInt("SSE_BATCH_SIZE", defaults.batchSize),
  flushInterval: C.withDefault(C.duration("SSE_FLUSH_INTERVAL"), defaults.flushInterval),
  offerTimeout: C.withDefault(C.duration("SSE_PERSIST_TIMEOUT"), defaults.offerTimeout),
  maxAttempts: positiveInt("SSE_PERSIST_MAX_ATTEMPTS", defaults.maxAttempts),
  retryBase: C.withDefault(C.duration("SSE_PERSIST_RETRY_BASE"), defaults.retryBase),
  shutdownTimeout: C.withDefault(C.duration("SSE_SHUTDOWN_TIMEOUT"), defaults.shutdownTimeout)
})

export interface Stats {
  /** Requests in the bounded queue, counting producers blocked on offering one. */
  readonly queued: number
  /** Sessions with a parked cursor (their producer timed out on a full queue). */
  readonly parked: number
  /** Coalesced cursors taken by the worker and not yet durable. */
  readonly pending: number
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

/** A coalesced cursor the worker holds until it is durable. */
interface Pending {
  eventId: string
  seq: number
  attempt: number
  nextRetry: number | undefined
  recentIds: ((upTo: string) => ReadonlyArray<string>) | undefined
  /** The oldest event this cursor covers that is not durable yet. */
  firstRecordedAt: number
}

// Retry delays stop doubling at 100× the base, so a store that comes back is found soon.
const maxBackoffFactor = 100

/** Starts the worker in the current scope; closing the scope drains it. */
export const make = (
  options: Partial<Config> = {}
): Effect.Effect<PersistenceWorker["Type"], never, CursorStore | Scope.Scope> =>
  Effect.gen(function*() {
    const cfg: Config = { ...defaults, ...options }
    const store = yield* CursorStore
    const clock = yield* Effect.clock
    const flushMillis = Duration.toMillis(cfg.flushInterval)
    const retryBaseMillis = Duration.toMillis(cfg.retryBase)
    const queue = yield* Queue.bounded<Item>(cfg.maxPending)
    const parked = new Map<string, PersistenceRequest>()
    const pending = new Map<string, Pending>()
    let closing = false
    // Producers past the `closing` check that have not queued or parked yet; the
    // final drain waits for them so none of their cursors lands behind it.
    let inFlight = 0
    // Fresh cursors (never failed) are written together once the oldest has waited
    // `flushInterval`; failed ones each wait for their own `nextRetry`.
    let fresh = 0
    let flushAt: number | undefined = undefined
    let retryAt = Infinity

    const absorb = (request: PersistenceRequest, now: number): number => {
      const held = pending.get(request.sessionId)
      if (held === undefined) {
        pending.set(request.sessionId, {
          eventId: request.eventId,
          seq: request.seq,
          attempt: request.attempt,
          nextRetry: request.nextRetry,
          recentIds: request.recentIds,
          firstRecordedAt: request.recordedAt
        })
        if (request.nextRetry === undefined) {
          fresh++
          if (flushAt === undefined) flushAt = now + flushMillis
        } else if (request.nextRetry < retryAt) retryAt = request.nextRetry
        return 0
      }
      // A newer cursor takes over the held one's retry schedule: the retry then writes the newest.
      if (request.seq > held.seq) {
        held.eventId = request.eventId
        held.seq = request.seq
        held.recentIds = request.recentIds
      }
      if (request.recordedAt < held.firstRecordedAt) held.firstRecordedAt = request.recordedAt
      return 1
    }

    const absorbAll = (items: Iterable<Item>, depth: number) => {
      const now = clock.unsafeCurrentTimeMillis()
      let folded = 0
      for (const item of items) if (item !== wakeUp) folded += absorb(item, now)
      for (const request of parked.values()) folded += absorb(request, now)
      parked.clear()
      if (folded > 0) coalesced.unsafeUpdate(folded, noTags)
      queueDepth.unsafeUpdate(depth, noTags)
    }

    // Taking and absorbing are one uninterruptible step: an interrupted take can lose
    // the items it was just handed.
    /** Moves everything queued and parked into `pending` without waiting. */
    const takeAll = Effect.uninterruptible(Effect.map(Queue.takeAll(queue), (items) => absorbAll(items, items.length)))
    /** Like `takeAll`, but first waits for at least one item. */
    const takeSome = Effect.uninterruptible(
      Effect.map(Queue.takeBetween(queue, 1, Number.MAX_SAFE_INTEGER), (items) => absorbAll(items, items.length))
    )

    const isDue = (held: Pending, now: number) => held.nextRetry === undefined || held.nextRetry <= now

    /** Recounts the schedule after a write: O(pending), once per batch. */
    const reschedule = (now: number) => {
      fresh = 0
      retryAt = Infinity
      for (const held of pending.values()) {
        if (held.nextRetry === undefined) fresh++
        else if (held.nextRetry < retryAt) retryAt = held.nextRetry
      }
      if (fresh === 0) flushAt = undefined
      else if (flushAt === undefined) flushAt = now + flushMillis
    }

    /** Writes the due cursors (up to `batchSize`) with one `saveAll`. */
    const write = Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      const batch: Array<[string, Pending]> = []
      const cursors: Array<Cursor> = []
      for (const entry of pending) {
        const [sessionId, held] = entry
        if (!isDue(held, now)) continue
        batch.push(entry)
        cursors.push({
          sessionId,
          lastEventId: held.eventId,
          seq: held.seq,
          recentIds: held.recentIds?.(held.eventId),
          updatedAt: now
        })
        if (batch.length === cfg.batchSize) break
      }
      return store.saveAll(cursors).pipe(
        Effect.exit,
        Effect.flatMap((exit) => {
          const done = clock.unsafeCurrentTimeMillis()
          if (Exit.isSuccess(exit)) {
            for (const [sessionId, held] of batch) {
              cursorStaleness.unsafeUpdate(done - held.firstRecordedAt, noTags)
              pending.delete(sessionId)
            }
            batchLatency.unsafeUpdate(done - now, noTags)
            batches.unsafeUpdate(1, noTags)
            reschedule(done)
            return Effect.void
          }
          return Effect.flatMap(Random.next, (random) => {
            let failed = 0
            for (const [, held] of batch) {
              held.attempt++
              // Doubling per attempt with jitter in [½, 1) of the delay, so cursors (and
              // instances) that failed together do not retry together.
              const factor = Math.min(maxBackoffFactor, 2 ** (held.attempt - 1))
              held.nextRetry = done + Math.ceil(retryBaseMillis * factor * (0.5 + random / 2))
              if (held.attempt >= cfg.maxAttempts) {
                // Counted, and kept: its backoff starts over and a later flush writes it.
                failed++
                held.attempt = 0
              }
            }
            reschedule(done)
            retries.unsafeUpdate(batch.length, noTags)
            if (failed > 0) failures.unsafeUpdate(failed, noTags)
            return Effect.logWarning("PersistenceWorker: saveAll failed; cursors kept for retry", exit.cause).pipe(
              Effect.annotateLogs({ cursors: batch.length, failedAfterMaxAttempts: failed, retryAt }),
              Effect.when(() => batch.some(([, held]) => held.attempt === 1) || failed > 0)
            )
          })
        }),
        Effect.withSpan("persistence.batch", { attributes: { "persistence.cursors": cursors.length } })
      )
    })

    /** Waits for queued items, or until `deadline` (epoch ms) if given, then absorbs them. */
    const waitForWork = (deadline: number | undefined) =>
      deadline === undefined ? takeSome : Effect.gen(function*() {
        // A timer that queues a wake-up rather than a timed take, for the reason above.
        const timer = yield* Effect.forkDaemon(
          Effect.sleep(Math.max(0, deadline - clock.unsafeCurrentTimeMillis())).pipe(
            Effect.andThen(() => queue.unsafeOffer(wakeUp))
          )
        )
        yield* takeSome
        yield* Fiber.interruptFork(timer)
      })

    /** When the next write is due (epoch ms), or undefined when nothing is pending. */
    const nextWrite = (): number | undefined => {
      const freshAt = fresh === 0 ? Infinity : pending.size >= cfg.batchSize ? 0 : flushAt!
      const at = Math.min(freshAt, retryAt)
      return at === Infinity ? undefined : at
    }

    const step = Effect.gen(function*() {
      yield* takeAll
      const at = nextWrite()
      if (at !== undefined && clock.unsafeCurrentTimeMillis() >= at) return yield* write
      if (closing) return
      yield* waitForWork(at)
    })

    // On close: keep absorbing and writing everything, fresh at once, failed ones on
    // their schedule, until nothing is left.
    const drain = Effect.gen(function*() {
      while (true) {
        yield* takeAll
        if (pending.size === 0) {
          if (inFlight === 0 && parked.size === 0 && (yield* Queue.size(queue)) === 0) return
          // Producers still between offer and queue/slot: let them finish.
          yield* Effect.yieldNow()
          continue
        }
        const now = clock.unsafeCurrentTimeMillis()
        const at = fresh > 0 ? now : retryAt
        if (now >= at) yield* write
        else yield* Effect.sleep(at - now)
      }
    })

    const loop = Effect.gen(function*() {
      while (!closing) yield* step
      yield* drain
    })

    const fiber = yield* Effect.forkDaemon(loop)

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closing = true
        queue.unsafeOffer(wakeUp)
        // Finalizers run uninterruptibly; the wait itself must be interruptible for the timeout to cut it.
        const finished = yield* Effect.interruptible(Fiber.await(fiber)).pipe(Effect.timeoutOption(cfg.shutdownTimeout))
        if (Option.isNone(finished)) {
          yield* Fiber.interruptFork(fiber)
          const left = pending.size + parked.size + (yield* Queue.size(queue))
          failures.unsafeUpdate(left, noTags)
          yield* Effect.logError("PersistenceWorker: shutdown timeout; cursors left unwritten").pipe(
            Effect.annotateLogs({ cursors: left, shutdownTimeout: Duration.format(cfg.shutdownTimeout) })
          )
        }
        yield* Queue.shutdown(queue)
      })
    )

    const closedError = (request: PersistenceRequest) =>
      Effect.fail(new PersistenceClosedError({ sessionId: request.sessionId, seq: request.seq }))

    const release = Effect.sync(() => {
      inFlight--
    })

    const persist = (request: PersistenceRequest): Effect.Effect<void, PersistenceClosedError> =>
      Effect.suspend(() => {
        if (closing) return closedError(request)
        // Fast path, in the same synchronous step as the `closing` check above.
        if (queue.unsafeOffer(request)) {
          Backpressure.queued.unsafeUpdate(1, noTags)
          return Effect.void
        }
        inFlight++
        return Backpressure.offer(queue, request, { timeout: cfg.offerTimeout }).pipe(
          Effect.flatMap((result) => {
            if (result === "queued") return Effect.void
            // "shutdown" only happens after the final drain: refusing loudly beats parking
            // a cursor nobody will write.
            if (result === "shutdown") return closedError(request)
            const held = parked.get(request.sessionId)
            if (held === undefined || request.seq > held.seq) parked.set(request.sessionId, request)
            // The worker may be blocked on an empty queue by now.
            queue.unsafeOffer(wakeUp)
            return Effect.void
          }),
          Effect.ensuring(release)
        )
      })

    return PersistenceWorker.of({
      persist,
      stats: Effect.sync(() => ({
        // A waiting taker (the idle worker) counts as -1 in the queue's size.
        queued: Math.max(0, Option.getOrElse(queue.unsafeSize(), () => 0)),
        parked: parked.size,
        pending: pending.size
      }))
    })
  })

/** The worker with the given options (defaults for the rest). */
export const layer = (options: Partial<Config> = {}): Layer.Layer<PersistenceWorker, never, CursorStore> =>
  Layer.scoped(PersistenceWorker, make(options))

/** The worker with its options read from the environment (`config`). */
export const layerConfig: Layer.Layer<PersistenceWorker, ConfigError, CursorStore> = Layer.unwrapEffect(
  Effect.map(config, layer)
)
