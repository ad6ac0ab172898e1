/**
 * The main job: follow one SSE endpoint as a named session, print each new event
 * once, and keep the session's cursor in a store, so the next run resumes where
 * this one stopped. `sse-resume tail` (`tail/command.ts`) and `npm start` are
 * thin shells around `run`.
 */
import type { HttpClient } from "@effect/platform"
import type { Chunk, ConfigError, Scope } from "effect"
import { Config, Context, Data, Duration, Effect, Layer, Option, Schedule, Stream } from "effect"
import * as CursorStore from "../../store/CursorStore.js"
import * as EventTable from "../../session/EventTable.js"
import * as EventTracker from "../../client/EventTracker.js"
import * as PersistenceWorker from "../../session/PersistenceWorker.js"
import * as SessionManager from "../../session/SessionManager.js"
import * as SseClient from "../../client/SseClient.js"
import type { SseEvent } from "../../wire/SseEvent.js"
import { type Format, lines } from "./tail/format.js"
import { Account, type Counts, reportProgress } from "./tail/progress.js"
import { request, type RequestOptions, streamOf } from "./tail/request.js"

export type { Counts } from "./tail/progress.js"
export type { Format } from "./tail/format.js"

export interface Options extends RequestOptions {
  readonly session: string
  /**
   * The stream's identity for the session's cursor: a session is never resumed on
   * another stream. Default `"<METHOD> <url>"`; give one where the URL changes but
   * the stream does not (a server on a new port each run).
   */
  readonly stream?: string | undefined
  /**
   * Where the session's cursor is kept: `SqliteCursorStore.layer(file)`,
   * `PgCursorStore.layer(url)`, `CursorStore.layerMemory`. `into` needs one that
   * also provides `CursorTransactions` (the SQL stores do).
   */
  readonly store: Layer.Layer<CursorStore.CursorStore, unknown>
  /** How errors name the store ("./cursors.db", "PostgreSQL"); default "the cursor store". */
  readonly storeName?: string
  /** How each event is printed: `json` (default) one JSON object per line, `data` its data alone. */
  readonly format?: Format
  /** Stop after this many new events. */
  readonly maxEvents?: number | undefined
  /** While another process holds the session, wait for it instead of failing with `SessionBusy`. */
  readonly wait?: boolean
  /**
   * Also append each event to this table of the store's database (created if
   * missing), in the transaction that commits the cursor: exactly once across
   * crashes (`EventTable`). A valid identifier (`EventTable.isTableName`).
   */
  readonly into?: string | undefined
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** Client options beyond these (backoff, attempts, limits); default from `SseClient.config`. */
  readonly client?: Omit<SseClient.Options, "tracker" | "headers" | "idleTimeout" | "onConnection">
  /** Where each new event's line goes; awaited, so a slow reader slows the stream. */
  readonly write: (lines: string) => Effect.Effect<void>
  /** Progress for people: connection changes and counts when they change. */
  readonly report?: (status: Status) => Effect.Effect<void>
  /** How often `report` gets counts (when they changed); default 1 second. */
  readonly reportEvery?: Duration.DurationInput
}

export type Status =
  | { readonly _tag: "Waiting"; readonly busy: CursorStore.SessionBusy }
  | { readonly _tag: "Resuming"; readonly lastEventId: Option.Option<string> }
  | ({ readonly _tag: "Connection" } & SseClient.ConnectionStatus)
  | { readonly _tag: "Progress"; readonly counts: Counts; readonly eventsPerSecond: number }
  | { readonly _tag: "Stopped"; readonly summary: Summary }

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

export type TailError =
  | SseClient.SseClientError
  | StoreUnavailable
  | InvalidConfig
  | CursorStore.SessionBusy
  | CursorStore.SessionLost
  | SessionManager.SessionStreamMismatch

/**
 * Every SSE_* setting a run uses, all read (each bad value named) before the store
 * is opened, so a usage error touches no file.
 */
const settings = Config.all({
  client: SseClient.config,
  worker: PersistenceWorker.config,
  sessions: SessionManager.config
}).pipe(Effect.mapError((cause) => new InvalidConfig({ cause })))

type Settings = Effect.Effect.Success<typeof settings>

/** Store errors retried before the run fails (exit 6): a busy SQLite file or a dropped pg connection. */
const commitRetry = Schedule.exponential("50 millis").pipe(Schedule.intersect(Schedule.recurs(5)))

/** One run's pieces: its store, worker and session manager (closed with the run), and how it names store errors. */
interface Persistence {
  readonly context: Context.Context<SessionManager.SessionManager | PersistenceWorker.PersistenceWorker | CursorStore.CursorStore>
  readonly storeError: (cause: unknown) => StoreUnavailable
}

const persistence = (options: Options, env: Settings): Effect.Effect<Persistence, StoreUnavailable, Scope.Scope> => {
  const storeError = (cause: unknown) => new StoreUnavailable({ store: options.storeName ?? "the cursor store", cause })
  return Layer.build(
    SessionManager.layer(env.sessions).pipe(
      Layer.provideMerge(PersistenceWorker.layer(env.worker)),
      Layer.provideMerge(options.store)
    )
  ).pipe(Effect.mapError(storeError), Effect.map((context) => ({ context, storeError })))
}

/**
 * Takes the session, for this stream (`"<METHOD> <url>"`: a session's cursor is
 * never resumed on another stream); told to wait, says whom it waits for first.
 */
const hold = (options: Options, { context, storeError }: Persistence, report: (status: Status) => Effect.Effect<void>) => {
  const manager = Context.get(context, SessionManager.SessionManager)
  const holdOptions = { stream: options.stream ?? streamOf(options) }
  return manager.hold(options.session, holdOptions).pipe(
    Effect.catchTag("SessionBusy", (busy) =>
      options.wait === true
        ? Effect.zipRight(report({ _tag: "Waiting", busy }), manager.hold(options.session, { ...holdOptions, wait: true }))
        : Effect.fail(busy)),
    Effect.catchTags({
      SessionLimitError: (cause) => Effect.fail(storeError(cause)),
      CursorStoreError: (cause) => Effect.fail(storeError(cause))
    })
  )
}

/**
 * How a handled chunk moves the session: through its tracker and the worker, or
 * with `into`, in one transaction with the chunk's rows (`EventTable`), the table
 * created first.
 */
const recorder = (options: Options, session: SessionManager.Session, { context, storeError }: Persistence) => {
  const into = options.into
  if (into === undefined) {
    return Effect.succeed((chunk: Chunk.Chunk<SseEvent>): Effect.Effect<unknown, TailError | PersistenceWorker.PersistenceClosedError> =>
      session.tracker.recordAll(chunk)
    )
  }
  return Option.match(Context.getOption(context as Context.Context<unknown>, CursorStore.CursorTransactions), {
    onNone: () => Effect.fail(storeError("--into needs a SQL store (SQLite or PostgreSQL)")),
    onSome: (transactions) => {
      const tables = Context.make(CursorStore.CursorTransactions, transactions).pipe(
        Context.add(SessionManager.SessionManager, Context.get(context, SessionManager.SessionManager))
      )
      return EventTable.create(into).pipe(
        Effect.provide(tables),
        Effect.mapError(storeError),
        Effect.as((chunk: Chunk.Chunk<SseEvent>): Effect.Effect<unknown, TailError> =>
          EventTable.append(session, chunk, into, { retry: commitRetry }).pipe(
            Effect.provide(tables),
            Effect.mapError((error) => error._tag === "SessionLost" ? error : storeError(error))
          )
        )
      )
    }
  })
}

/** The run's client: its own tracker copy, settings from the environment under the caller's, its own account. */
const clientStream = (
  options: Options,
  env: Settings,
  clientTracker: EventTracker.EventTracker,
  account: Account,
  report: (status: Status) => Effect.Effect<void>
) =>
  SseClient.stream(request(options), {
    ...env.client,
    ...options.client,
    tracker: clientTracker,
    idleTimeout: options.idleTimeout ?? env.client.idleTimeout,
    onConnection: (status) => {
      if (status.state === "reconnecting") account.reconnects++
      return report({ _tag: "Connection", ...status })
    }
  })

/** Writes the cursor now rather than at the worker's next flush, and sums the run up. */
const finish = (options: Options, { context, storeError }: Persistence, account: Account, resumedFrom: Option.Option<string>) =>
  Effect.gen(function*() {
    yield* Context.get(context, SessionManager.SessionManager).close(options.session)
    const storedCursor = yield* Context.get(context, CursorStore.CursorStore).load(options.session)
    return { ...(yield* account.counts), resumedFrom, storedCursor }
  }).pipe(Effect.mapError((error) => error._tag === "SessionLost" ? error : storeError(error)))

/**
 * Tails until `maxEvents`, a 204, a fatal error or interruption; in every case the
 * session's cursor is written before it returns (by the worker's drain).
 *
 * Each chunk's lines are written before the chunk is recorded to the session, so
 * the cursor never runs ahead of what was written: a kill or `maxEvents` cutting
 * a chunk costs at most a replay next run, never a lost event.
 */
export const run = (options: Options): Effect.Effect<Summary, TailError, HttpClient.HttpClient> =>
  Effect.scoped(Effect.gen(function*() {
    const report = options.report ?? (() => Effect.void)
    const env = yield* settings
    const stores = yield* persistence(options, env)
    // Held: this process owns the session (exclusive across processes sharing the
    // store), and a feed that goes quiet for longer than the idle TTL is not evicted.
    const session = yield* hold(options, stores, report)
    const record = yield* recorder(options, session, stores)
    const resumedFrom = yield* session.tracker.lastEventId
    yield* report({ _tag: "Resuming", lastEventId: resumedFrom })

    // The client dedups with its own tracker, a copy of the session's; the session's
    // tracker (which persists) records a chunk only once it is written.
    const clientTracker = yield* EventTracker.copy(session.tracker)
    const account = new Account(clientTracker, Context.get(stores.context, PersistenceWorker.PersistenceWorker))
    yield* reportProgress(
      account,
      (counts, eventsPerSecond) => report({ _tag: "Progress", counts, eventsPerSecond }),
      Duration.decode(options.reportEvery ?? "1 second")
    )
    const events = clientStream(options, env, clientTracker, account, report)
    const format = options.format ?? "json"
    const done = finish(options, stores, account, resumedFrom)
    const { shutdownTimeout } = env.worker

    yield* (options.maxEvents === undefined ? events : Stream.take(events, options.maxEvents)).pipe(
      // Another owner took the session (our lease lapsed): stop printing at once.
      Stream.interruptWhen(session.lost),
      // Interruptible throughout, so a stalled store cannot hold a stop.
      Stream.runForEachChunk((chunk) =>
        options.write(lines(format, chunk)).pipe(
          Effect.tap(() => void (account.delivered += chunk.length)),
          Effect.zipRight(record(chunk))
        )
      ),
      // The store refuses this session's cursor: the worker is closed.
      Effect.catchTag("PersistenceClosedError", (cause) => Effect.fail(stores.storeError(cause))),
      // Stopped by a signal: the cursor is still stored, and said so. Bounded like
      // the worker's own drain, so a hung store cannot hold the exit.
      Effect.onInterrupt(() =>
        done.pipe(
          // Finalizers run uninterruptibly: without `interruptible` the timeout could not cut finish.
          Effect.interruptible,
          Effect.timeoutFail({
            duration: shutdownTimeout,
            onTimeout: () => stores.storeError(`no answer within ${Duration.format(shutdownTimeout)}`)
          }),
          Effect.flatMap((summary) => report({ _tag: "Stopped", summary })),
          Effect.catchAll((error) => Effect.logError("storing the cursor on stop failed", error))
        )
      )
    )
    return yield* done
  }))

