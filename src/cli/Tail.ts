/**
 * The main job: follow one SSE endpoint as a named session, print each new event
 * once, and keep the session's cursor in a store, so the next run resumes where
 * this one stopped. `sse-resume tail` and `npm start` are thin shells around it.
 */
import type { HttpClient } from "@effect/platform"
import { HttpClientRequest } from "@effect/platform"
import { Chunk, ConfigError, Data, Duration, Effect, Layer, Metric, Option, Stream } from "effect"
import * as Backpressure from "../Backpressure.js"
import * as CursorStore from "../CursorStore.js"
import * as PgCursorStore from "../PgCursorStore.js"
import * as SqliteCursorStore from "../SqliteCursorStore.js"
import * as EventTracker from "../EventTracker.js"
import * as PersistenceWorker from "../PersistenceWorker.js"
import * as SessionManager from "../SessionManager.js"
import * as SseClient from "../SseClient.js"
import type { SseEvent } from "../SseEvent.js"

export type Store =
  | { readonly _tag: "sqlite"; readonly filename: string }
  | { readonly _tag: "pg"; readonly url: string }
  | { readonly _tag: "memory" }

export interface Options {
  readonly url: string
  readonly session: string
  readonly store: Store
  readonly method?: string
  readonly headers?: Record<string, string>
  readonly body?: string
  /** Stop after this many new events. */
  readonly maxEvents?: number
  readonly idleTimeout?: Duration.DurationInput
  /** Client options beyond these (backoff, attempts, limits); default from `SseClient.config`. */
  readonly client?: Omit<SseClient.Options, "tracker" | "headers" | "idleTimeout" | "onConnection">
  /** Where each new event's line goes; awaited, so a slow reader slows the stream. */
  readonly write: (lines: string) => Effect.Effect<void>
  /** Progress for people: connection changes and periodic counts. */
  readonly report?: (status: Status) => Effect.Effect<void>
  /** How often `report` gets counts; default 1 second. */
  readonly reportEvery?: Duration.DurationInput
}

export type Status =
  | { readonly _tag: "Resuming"; readonly lastEventId: Option.Option<string> }
  | ({ readonly _tag: "Connection" } & SseClient.ConnectionStatus)
  | { readonly _tag: "Progress"; readonly counts: Counts; readonly eventsPerSecond: number }
  | { readonly _tag: "Stopped"; readonly summary: Summary }

export interface Counts {
  readonly delivered: number
  readonly duplicatesDropped: number
  readonly reconnects: number
  readonly backpressureTimeouts: number
}

export interface Summary extends Counts {
  readonly resumedFrom: Option.Option<string>
  readonly storedCursor: Option.Option<CursorStore.Cursor>
}

/** The store could not be opened, read or written. */
export class StoreUnavailable extends Data.TaggedError("StoreUnavailable")<{
  readonly store: string
  readonly cause: unknown
}> {
  override get message() {
    const cause = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `cursor store ${this.store} is unavailable: ${cause}`
  }
}

/** An SSE_* (or OTEL_*) environment variable has a value its option cannot take. */
export class InvalidConfig extends Data.TaggedError("InvalidConfig")<{ readonly cause: ConfigError.ConfigError }> {
  override get message() {
    return `invalid configuration: ${String(this.cause)}`
  }
}

export type TailError = SseClient.SseClientError | StoreUnavailable | InvalidConfig

const describeStore = (store: Store) =>
  store._tag === "sqlite" ? store.filename : store._tag === "pg" ? "PostgreSQL" : "memory"

const storeLayer = (store: Store) => {
  switch (store._tag) {
    case "sqlite":
      return SqliteCursorStore.layer(store.filename)
    case "pg":
      return PgCursorStore.layer(store.url)
    case "memory":
      return CursorStore.layerMemory
  }
}

/** Store, worker and session manager, configured from the environment. */
export const layer = (store: Store) =>
  SessionManager.layerConfig.pipe(
    Layer.provideMerge(PersistenceWorker.layerConfig),
    Layer.provideMerge(storeLayer(store)),
    Layer.mapError((cause) =>
      ConfigError.isConfigError(cause)
        ? new InvalidConfig({ cause })
        : new StoreUnavailable({ store: describeStore(store), cause })
    )
  )

const counterNow = (counter: Metric.Metric.Counter<number>) => Effect.map(Metric.value(counter), (s) => s.count)

/** One JSON object per event, one per line: easy to read, grep and pipe into jq. */
const formatEvent = (event: SseEvent): string =>
  JSON.stringify(event.retry === undefined
    ? { id: event.id ?? null, event: event.event, data: event.data }
    : { id: event.id ?? null, event: event.event, data: event.data, retry: event.retry })

/**
 * Tails until `maxEvents`, a 204, a fatal error or interruption; in every case the
 * session's cursor is written before it returns (by the worker's drain).
 */
export const run = (options: Options): Effect.Effect<Summary, TailError, HttpClient.HttpClient> =>
  Effect.scoped(Effect.gen(function*() {
    const report = options.report ?? (() => Effect.void)
    const context = yield* Layer.build(layer(options.store))
    const manager = Effect.provide(SessionManager.SessionManager, context)
    const store = Effect.provide(CursorStore.CursorStore, context)
    const storeError = (cause: unknown) => new StoreUnavailable({ store: describeStore(options.store), cause })

    const baseline = {
      duplicatesDropped: yield* counterNow(EventTracker.duplicateEvents),
      reconnects: yield* counterNow(SseClient.reconnects),
      backpressureTimeouts: yield* counterNow(Backpressure.backpressureTimeouts)
    }
    let delivered = 0
    const counts: Effect.Effect<Counts> = Effect.all({
      delivered: Effect.sync(() => delivered),
      duplicatesDropped: Effect.map(counterNow(EventTracker.duplicateEvents), (n) => n - baseline.duplicatesDropped),
      reconnects: Effect.map(counterNow(SseClient.reconnects), (n) => n - baseline.reconnects),
      backpressureTimeouts: Effect.map(
        counterNow(Backpressure.backpressureTimeouts),
        (n) => n - baseline.backpressureTimeouts
      )
    })

    // Held, so a feed that goes quiet for longer than the idle TTL is not evicted under us.
    const session = yield* Effect.flatMap(manager, (m) => m.hold(options.session)).pipe(Effect.mapError(storeError))
    const resumedFrom = yield* session.tracker.lastEventId
    yield* report({ _tag: "Resuming", lastEventId: resumedFrom })

    let request = HttpClientRequest.make((options.method ?? "GET").toUpperCase() as "GET")(options.url)
    if (options.headers !== undefined) request = HttpClientRequest.setHeaders(request, options.headers)
    if (options.body !== undefined) request = HttpClientRequest.bodyText(request, options.body)

    const every = Duration.decode(options.reportEvery ?? "1 second")
    const invalid = (cause: ConfigError.ConfigError) => new InvalidConfig({ cause })
    const persistence = yield* PersistenceWorker.config.pipe(Effect.mapError(invalid))
    let lastDelivered = 0
    yield* counts.pipe(
      Effect.flatMap((c) => {
        const eventsPerSecond = (c.delivered - lastDelivered) / Duration.toSeconds(every)
        lastDelivered = c.delivered
        return report({ _tag: "Progress", counts: c, eventsPerSecond })
      }),
      Effect.delay(every),
      Effect.forever,
      Effect.forkScoped
    )

    // The client dedups with its own tracker, a copy of the session's; the session's
    // tracker (which persists) records a chunk only once its lines are written. So the
    // stored cursor never runs ahead of stdout: a kill or `--max-events` cutting a
    // chunk costs at most a replay on the next run, never a lost event.
    const clientTracker = yield* EventTracker.copy(session.tracker)
    const fromEnv = yield* SseClient.config.pipe(Effect.mapError(invalid))
    const events = SseClient.stream(request, {
      ...fromEnv,
      ...options.client,
      tracker: clientTracker,
      idleTimeout: options.idleTimeout ?? fromEnv.idleTimeout,
      onConnection: (status) => report({ _tag: "Connection", ...status })
    })

    // Writes the cursor now rather than at the worker's next flush.
    const finish = Effect.gen(function*() {
      yield* Effect.flatMap(manager, (m) => m.close(options.session)).pipe(Effect.mapError(storeError))
      const storedCursor = yield* Effect.flatMap(store, (s) => s.load(options.session)).pipe(Effect.mapError(storeError))
      return { ...(yield* counts), resumedFrom, storedCursor }
    })

    yield* (options.maxEvents === undefined ? events : Stream.take(events, options.maxEvents)).pipe(
      Stream.runForEachChunk((chunk) => {
        let lines = ""
        for (const event of Chunk.toReadonlyArray(chunk)) lines += formatEvent(event) + "\n"
        // Interruptible throughout: a stop between the write and the record costs
        // a replay of this chunk next run, and a stalled store cannot hold the stop.
        return options.write(lines).pipe(
          Effect.tap(() => {
            delivered += chunk.length
          }),
          Effect.zipRight(session.tracker.recordAll(chunk))
        )
      }),
      Effect.catchTag("PersistenceClosedError", (cause) => Effect.fail(storeError(cause))),
      // Stopped by a signal: the cursor is still stored, and said so.
      // Bounded like the worker's own drain, so a hung store cannot hold the exit.
      // Finalizers run uninterruptibly: without `interruptible` the timeout could not cut finish.
      Effect.onInterrupt(() =>
        finish.pipe(
          Effect.interruptible,
          Effect.timeoutFail({
            duration: persistence.shutdownTimeout,
            onTimeout: () => storeError(`no answer within ${Duration.format(persistence.shutdownTimeout)}`)
          }),
          Effect.flatMap((summary) => report({ _tag: "Stopped", summary })),
          Effect.catchAll((error) => Effect.logError("storing the cursor on stop failed", error))
        )
      )
    )
    return yield* finish
  }))
