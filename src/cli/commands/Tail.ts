/**
 * The main job: follow one SSE endpoint as a named session, print each new event
 * once, and keep the session's cursor in a store, so the next run resumes where
 * this one stopped. `sse-resume tail` and `npm start` are thin shells around it.
 */
import type { HttpClient } from "@effect/platform"
import { HttpClientRequest } from "@effect/platform"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Chunk, ConfigError } from "effect"
import { Clock, Config, Context, Data, Duration, Effect, Layer, Option, Schedule, Stream } from "effect"
import * as CursorStore from "../../store/CursorStore.js"
import * as EventTracker from "../../client/EventTracker.js"
import * as ExactlyOnce from "../../session/ExactlyOnce.js"
import * as PersistenceWorker from "../../session/PersistenceWorker.js"
import * as PgCursorStore from "../../engines/PgCursorStore.js"
import * as SessionManager from "../../session/SessionManager.js"
import * as SqliteCursorStore from "../../engines/SqliteCursorStore.js"
import * as SseClient from "../../client/SseClient.js"
import type { SseEvent } from "../../wire/SseEvent.js"

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
  /** Sent as the `Content-Type` in `headers`, else `application/json` when it parses as JSON, else `text/plain`. */
  readonly body?: string
  /** How each event is printed: `json` (default) one JSON object per line, `data` its data alone. */
  readonly format?: Format
  /** Stop after this many new events. */
  readonly maxEvents?: number
  /** While another process holds the session, wait for it instead of failing with `SessionBusy`. */
  readonly wait?: boolean
  /**
   * Also append each event to this table of the store's database (created if
   * missing), in the transaction that commits the cursor: exactly once across
   * crashes. A valid identifier (`isTableName`); not with the memory store.
   */
  readonly into?: string
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

export type Format = "json" | "data"

export type Status =
  | { readonly _tag: "Waiting"; readonly busy: CursorStore.SessionBusy }
  | { readonly _tag: "Resuming"; readonly lastEventId: Option.Option<string> }
  | ({ readonly _tag: "Connection" } & SseClient.ConnectionStatus)
  | { readonly _tag: "Progress"; readonly counts: Counts; readonly eventsPerSecond: number }
  | { readonly _tag: "Stopped"; readonly summary: Summary }

/** What this run saw: another run in the same process never adds to it. */
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

export type TailError =
  | SseClient.SseClientError
  | StoreUnavailable
  | InvalidConfig
  | CursorStore.SessionBusy
  | CursorStore.SessionLost

const describeStore = (store: Store) =>
  store._tag === "sqlite" ? store.filename : store._tag === "pg" ? "PostgreSQL" : "memory"

const unavailable = (store: Store) => (cause: unknown) => new StoreUnavailable({ store: describeStore(store), cause })

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

/** The run's own store, worker and session manager, closed with the run. */
const persistence = (options: Options, settings: Settings) =>
  Layer.build(
    SessionManager.layer(settings.sessions).pipe(
      Layer.provideMerge(PersistenceWorker.layer(settings.worker)),
      Layer.provideMerge(storeLayer(options.store))
    )
  ).pipe(Effect.mapError(unavailable(options.store)))

/**
 * The body's content type: the caller's `Content-Type` header, else JSON when the
 * body parses as JSON (JSON APIs and MCP servers answer 415 to `text/plain`).
 */
const contentTypeOf = (headers: Record<string, string> | undefined, body: string): string => {
  for (const [name, value] of Object.entries(headers ?? {})) if (name.toLowerCase() === "content-type") return value
  try {
    JSON.parse(body)
    return "application/json"
  } catch {
    return "text/plain"
  }
}

const request = (options: Options): HttpClientRequest.HttpClientRequest => {
  let request = HttpClientRequest.make((options.method ?? "GET").toUpperCase() as "GET")(options.url)
  if (options.headers !== undefined) request = HttpClientRequest.setHeaders(request, options.headers)
  // The body's content type replaces the header's, so the header's is passed as the body's.
  if (options.body !== undefined) {
    request = HttpClientRequest.bodyText(request, options.body, contentTypeOf(options.headers, options.body))
  }
  return request
}

/**
 * `json`: one JSON object per event, one per line: easy to read, grep and pipe into jq.
 * `data`: the event's data as sent, so a stream of JSON messages pipes into jq as is.
 */
const formatters: Record<Format, (event: SseEvent) => string> = {
  json: (event) =>
    JSON.stringify(event.retry === undefined
      ? { id: event.id ?? null, event: event.event, data: event.data }
      : { id: event.id ?? null, event: event.event, data: event.data, retry: event.retry }),
  data: (event) => event.data
}

/**
 * The run's own account: `delivered` and `reconnects` from what it handles and its
 * client reports, duplicates from the client's tracker, timeouts from its own worker.
 */
class Account {
  delivered = 0
  reconnects = 0
  readonly counts: Effect.Effect<Counts>
  constructor(clientTracker: EventTracker.EventTracker, worker: PersistenceWorker.PersistenceWorker["Type"]) {
    this.counts = Effect.zipWith(clientTracker.counts, worker.stats, (tracker, stats) => ({
      delivered: this.delivered,
      duplicatesDropped: tracker.duplicates,
      reconnects: this.reconnects,
      backpressureTimeouts: stats.timedOut
    }))
  }
}

/** `report` gets the counts and the rate every `every`, until the scope closes. */
const reportProgress = (account: Account, report: (status: Status) => Effect.Effect<void>, every: Duration.Duration) => {
  let lastDelivered = 0
  return account.counts.pipe(
    Effect.flatMap((counts) => {
      const eventsPerSecond = (counts.delivered - lastDelivered) / Duration.toSeconds(every)
      lastDelivered = counts.delivered
      return report({ _tag: "Progress", counts, eventsPerSecond })
    }),
    Effect.delay(every),
    Effect.forever,
    Effect.forkScoped
  )
}

/**
 * Writes a chunk's lines, and only then records the chunk to the session (through
 * its tracker and the worker, or `commitInto`), which moves the stored cursor: the cursor never runs ahead of what was written,
 * so a kill or `--max-events` cutting a chunk costs at most a replay next run,
 * never a lost event. Interruptible throughout, so a stalled store cannot hold a stop.
 */
const deliver = <E>(
  options: Options,
  account: Account,
  record: (chunk: Chunk.Chunk<SseEvent>) => Effect.Effect<unknown, E>
) =>
(chunk: Chunk.Chunk<SseEvent>) => {
  const format = formatters[options.format ?? "json"]
  let lines = ""
  for (const event of chunk) lines += format(event) + "\n"
  return options.write(lines).pipe(
    Effect.tap(() => {
      account.delivered += chunk.length
    }),
    Effect.zipRight(record(chunk))
  )
}

/** A plain SQL identifier, and not one of the store's own tables. */
export const isTableName = (name: string): boolean =>
  /^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name) && !name.toLowerCase().startsWith("sse_resume_")

// 5 parameters a row: far below SQLite's (32,766) and pg's (65,535) limits.
const rowsPerInsert = 500

/** Store errors retried before the run fails (exit 6): a busy SQLite file or a dropped pg connection. */
const commitRetry = Schedule.exponential("50 millis").pipe(Schedule.intersect(Schedule.recurs(5)))

/** Creates `table` if missing: one row per event, in the order committed. */
const createTable = (sql: SqlClient.SqlClient, table: string) =>
  sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
    session_id TEXT NOT NULL,
    event_id TEXT,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    received_at BIGINT NOT NULL
  )`

/** The handler of `--into`: the chunk's new events as rows of `table`. */
const appendTo = (table: string, sessionId: string): ExactlyOnce.Handler<SqlError, never> => (events, sql) =>
  Effect.flatMap(Clock.currentTimeMillis, (receivedAt) => {
    const rows = events.map((event) => ({
      session_id: sessionId,
      event_id: event.id ?? null,
      event: event.event,
      data: event.data,
      received_at: receivedAt
    }))
    const inserts: Array<Effect.Effect<unknown, SqlError>> = []
    for (let i = 0; i < rows.length; i += rowsPerInsert) {
      inserts.push(sql`INSERT INTO ${sql(table)} ${sql.insert(rows.slice(i, i + rowsPerInsert))}`)
    }
    return Effect.all(inserts, { discard: true })
  })

/**
 * How `--into` records a chunk: its rows and the cursor commit in one transaction
 * (the session moves only then), so a kill anywhere leaves the table with every
 * event up to the stored cursor exactly once.
 */
const commitInto = (
  options: Options & { readonly into: string },
  session: SessionManager.Session,
  context: Context.Context<SessionManager.SessionManager | CursorStore.CursorTransactions>
) =>
(chunk: Chunk.Chunk<SseEvent>) =>
  ExactlyOnce.handle(session, chunk, appendTo(options.into, options.session), { retry: commitRetry }).pipe(
    Effect.provide(context),
    Effect.mapError((error) => error._tag === "SessionLost" ? error : unavailable(options.store)(error))
  )

/** For `--into`: the table created, and what `deliverInto` runs with; the memory store has no table. */
const openInto = (
  options: Options,
  manager: SessionManager.SessionManager["Type"],
  transactions: Option.Option<CursorStore.CursorTransactions["Type"]>,
  into: string
) =>
  Option.match(transactions, {
    onNone: () => Effect.fail(unavailable(options.store)("--into needs a SQL store (SQLite or PostgreSQL)")),
    onSome: (transactions) =>
      createTable(transactions.sql, into).pipe(
        Effect.mapError(unavailable(options.store)),
        Effect.as(
          Context.make(SessionManager.SessionManager, manager).pipe(
            Context.add(CursorStore.CursorTransactions, transactions)
          )
        )
      )
  })

/** Takes the session; told to wait, says whom it waits for first. */
const hold = (
  manager: SessionManager.SessionManager["Type"],
  options: Options,
  report: (status: Status) => Effect.Effect<void>
) =>
  manager.hold(options.session).pipe(
    Effect.catchTag("SessionBusy", (busy) =>
      options.wait === true
        ? Effect.zipRight(report({ _tag: "Waiting", busy }), manager.hold(options.session, { wait: true }))
        : Effect.fail(busy))
  )

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

/**
 * Tails until `maxEvents`, a 204, a fatal error or interruption; in every case the
 * session's cursor is written before it returns (by the worker's drain).
 */
export const run = (options: Options): Effect.Effect<Summary, TailError, HttpClient.HttpClient> =>
  Effect.scoped(Effect.gen(function*() {
    const report = options.report ?? (() => Effect.void)
    const env = yield* settings
    const context = yield* persistence(options, env)
    const manager = Context.get(context, SessionManager.SessionManager)
    const store = Context.get(context, CursorStore.CursorStore)
    const storeError = unavailable(options.store)

    // Held: this process owns the session (exclusive across processes sharing the
    // store), and a feed that goes quiet for longer than the idle TTL is not evicted.
    const session = yield* hold(manager, options, report).pipe(
      Effect.catchTags({
        SessionLimitError: (cause) => Effect.fail(storeError(cause)),
        CursorStoreError: (cause) => Effect.fail(storeError(cause))
      })
    )
    const into = options.into
    const intoContext = into === undefined ? undefined : yield* openInto(
      options,
      manager,
      Context.getOption(context as Context.Context<unknown>, CursorStore.CursorTransactions),
      into
    )
    const resumedFrom = yield* session.tracker.lastEventId
    yield* report({ _tag: "Resuming", lastEventId: resumedFrom })

    // The client dedups with its own tracker, a copy of the session's; the session's
    // tracker (which persists) records a chunk only once it is written (`deliver`).
    const clientTracker = yield* EventTracker.copy(session.tracker)
    const account = new Account(clientTracker, Context.get(context, PersistenceWorker.PersistenceWorker))
    yield* reportProgress(account, report, Duration.decode(options.reportEvery ?? "1 second"))
    const events = clientStream(options, env, clientTracker, account, report)

    // Writes the cursor now rather than at the worker's next flush.
    const finish = Effect.gen(function*() {
      yield* manager.close(options.session)
      const storedCursor = yield* store.load(options.session)
      return { ...(yield* account.counts), resumedFrom, storedCursor }
    }).pipe(Effect.mapError((error) => error._tag === "SessionLost" ? error : storeError(error)))
    const { shutdownTimeout } = env.worker

    yield* (options.maxEvents === undefined ? events : Stream.take(events, options.maxEvents)).pipe(
      // Another owner took the session (our lease lapsed): stop printing at once.
      Stream.interruptWhen(session.lost),
      Stream.runForEachChunk(
        deliver(
          options,
          account,
          into === undefined || intoContext === undefined
            ? (chunk: Chunk.Chunk<SseEvent>): Effect.Effect<unknown, TailError | PersistenceWorker.PersistenceClosedError> =>
              session.tracker.recordAll(chunk)
            : commitInto({ ...options, into }, session, intoContext)
        )
      ),
      // The store refuses this session's cursor: the worker is closed.
      Effect.catchTag("PersistenceClosedError", (cause) => Effect.fail(storeError(cause))),
      // Stopped by a signal: the cursor is still stored, and said so. Bounded like
      // the worker's own drain, so a hung store cannot hold the exit.
      Effect.onInterrupt(() =>
        finish.pipe(
          // Finalizers run uninterruptibly: without `interruptible` the timeout could not cut finish.
          Effect.interruptible,
          Effect.timeoutFail({
            duration: shutdownTimeout,
            onTimeout: () => storeError(`no answer within ${Duration.format(shutdownTimeout)}`)
          }),
          Effect.flatMap((summary) => report({ _tag: "Stopped", summary })),
          Effect.catchAll((error) => Effect.logError("storing the cursor on stop failed", error))
        )
      )
    )
    return yield* finish
  }))
