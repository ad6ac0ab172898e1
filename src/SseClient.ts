/**
 * A Server-Sent Events client that reconnects, resumes from `Last-Event-ID` and
 * drops replayed events, so each new event is emitted once across disconnects.
 *
 * Resume point: the `Last-Event-ID` header follows the spec's last-event-id
 * buffer — the id of the last dispatched event that had an `id` field, replays
 * included, and an empty `id:` clears it so no header is sent. The tracker's
 * `lastEventId` (last *new* id) only seeds the buffer at start; after that the
 * server's own ids decide. Both agree except right after a reconnect, while the
 * server replays events we already have: resuming from the older buffer value
 * costs a few more replays, which the tracker drops.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as Headers from "@effect/platform/Headers"
import {
  type Cause,
  Channel,
  Chunk,
  Clock,
  Config,
  Data,
  Duration,
  Effect,
  Either,
  ExecutionStrategy,
  Exit,
  Metric,
  MetricLabel,
  Option,
  Schedule,
  ScheduleDecision,
  ScheduleIntervals,
  Scope,
  Stream
} from "effect"
import * as EventTracker from "./EventTracker.js"
import * as Sse from "./Sse.js"
import type { SseEvent } from "./SseEvent.js"
import { positiveInt } from "./Settings.js"

/** The server answered with a status that retrying will not fix. */
export class SseHttpError extends Data.TaggedError("SseHttpError")<{
  readonly status: number
  readonly url: string
  readonly attempt: number
}> {
  override get message() {
    return `SSE request to ${this.url} failed with HTTP ${this.status}`
  }
}

/** The server answered 2xx but not with `text/event-stream`. */
export class SseContentTypeError extends Data.TaggedError("SseContentTypeError")<{
  readonly contentType: string | undefined
  readonly url: string
}> {
  override get message() {
    return `SSE response from ${this.url} has content type ${this.contentType ?? "(none)"}, not text/event-stream`
  }
}

/** `maxAttempts` consecutive attempts delivered nothing new, or the schedule gave up. */
export class SseRetriesExhausted extends Data.TaggedError("SseRetriesExhausted")<{
  /** Consecutive attempts without a new event. */
  readonly attempts: number
  /** How the last attempt ended. */
  readonly last: Reconnect
}> {
  override get message() {
    return `SSE gave up after ${this.attempts} attempts; the last ended with ${this.last.reason}` +
      (this.last.status === undefined ? "" : ` (HTTP ${this.last.status})`)
  }
}

export type SseClientError =
  | SseHttpError
  | SseContentTypeError
  | SseRetriesExhausted
  | Sse.SseParseError
  | EventTracker.TrackerOptionsError

/**
 * Why a connection ended: the server closed the body, the transport failed
 * (refused, reset, cut mid-body), no byte arrived within `idleTimeout`, or the
 * server answered 408, 429 or 5xx.
 */
export type ReconnectReason = "closed" | "transport" | "idle" | "status"

/** One ended attempt, as the reconnect schedule sees it. */
export interface Reconnect {
  readonly reason: ReconnectReason
  /** 1-based count of attempts made by this stream. */
  readonly attempt: number
  readonly status?: number
  /** The server's `Retry-After` on 429 or 503. */
  readonly retryAfter?: Duration.Duration
  readonly cause?: unknown
}

/** Connection changes, for people watching: progress lines, dashboards. */
export type ConnectionStatus =
  | { readonly state: "connecting"; readonly attempt: number; readonly lastEventId: string | undefined }
  | { readonly state: "connected"; readonly attempt: number; readonly status: number }
  | {
    readonly state: "reconnecting"
    readonly attempt: number
    readonly reason: ReconnectReason
    readonly delayMillis: number
    readonly status?: number
  }

export interface Options<E = never, EH = never, RH = never> {
  /** Records every event, dropping replays; its callbacks' typed failures end the stream. */
  readonly tracker?: EventTracker.EventTracker<E>
  /** The window of a tracker made here when none is given; default 10,000. */
  readonly maxTracked?: number
  /** Resume point for the first request; default the tracker's `lastEventId`. */
  readonly lastEventId?: string
  /** Run before every attempt, so refreshed credentials are used on reconnect. */
  readonly headers?: Effect.Effect<Headers.Input, EH, RH>
  /** Reconnect when no byte arrives for this long; default 60 seconds. */
  readonly idleTimeout?: Duration.DurationInput
  /** Consecutive attempts without a new event before giving up; default 10. */
  readonly maxAttempts?: number
  /** First delay of the default backoff; default 500 ms. */
  readonly initialDelay?: Duration.DurationInput
  /** Cap of the default backoff; default 30 seconds. */
  readonly maxDelay?: Duration.DurationInput
  /** Longest `Retry-After` honoured (a server asking for a day is not obeyed); default 10 minutes. */
  readonly maxRetryAfter?: Duration.DurationInput
  /**
   * Replaces the default backoff (exponential from `initialDelay`, doubling, with
   * jitter, capped at `maxDelay`). Its delay is raised to the server's `retry:`
   * and `Retry-After`; when it ends, the stream fails with `SseRetriesExhausted`.
   * It restarts after each attempt that delivered a new event.
   */
  readonly schedule?: Schedule.Schedule<unknown, Reconnect>
  /** See `Sse.ParseOptions`; default 10 MiB. */
  readonly maxEventBytes?: number
  /** Awaited on each connection change; must not fail. */
  readonly onConnection?: (status: ConnectionStatus) => Effect.Effect<void>
}

export const reconnects = Metric.counter("sse_reconnects", {
  description: "SSE reconnections scheduled",
  incremental: true
})
export const connectionErrors = Metric.counter("sse_connection_errors", {
  description: "SSE connections that ended abnormally, tagged by reason",
  incremental: true
})
export const eventsReceived = Metric.counter("sse_events_received", {
  description: "SSE events parsed, replays included",
  incremental: true
})
export const bytesReceived = Metric.counter("sse_bytes_received", {
  description: "SSE body bytes received",
  incremental: true
})

const noTags: ReadonlyArray<never> = []
const reasonTags: Record<ReconnectReason, ReadonlyArray<MetricLabel.MetricLabel>> = {
  closed: [MetricLabel.make("reason", "closed")],
  transport: [MetricLabel.make("reason", "transport")],
  idle: [MetricLabel.make("reason", "idle")],
  status: [MetricLabel.make("reason", "status")]
}

/** The default backoff: exponential with jitter, capped. */
export const backoff = (options: {
  readonly initialDelay?: Duration.DurationInput
  readonly maxDelay?: Duration.DurationInput
}): Schedule.Schedule<unknown, Reconnect> => {
  const cap = Duration.decode(options.maxDelay ?? "30 seconds")
  return Schedule.exponential(options.initialDelay ?? "500 millis", 2).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((delay) => Duration.min(delay, cap))
  )
}

/** Options from the environment: SSE_IDLE_TIMEOUT, SSE_MAX_ATTEMPTS, SSE_MAX_EVENT_BYTES, SSE_MAX_TRACKED, SSE_INITIAL_DELAY, SSE_MAX_DELAY, SSE_MAX_RETRY_AFTER. */
export const config: Config.Config<{
  readonly idleTimeout: Duration.Duration
  readonly maxAttempts: number
  readonly maxEventBytes: number
  readonly maxTracked: number
  readonly initialDelay: Duration.Duration
  readonly maxDelay: Duration.Duration
  readonly maxRetryAfter: Duration.Duration
}> = Config.all({
  idleTimeout: Config.withDefault(
    Config.validate(Config.duration("SSE_IDLE_TIMEOUT"), {
      message: "must be longer than zero",
      validation: (d) => Duration.toMillis(d) > 0
    }),
    Duration.seconds(60)
  ),
  maxAttempts: positiveInt("SSE_MAX_ATTEMPTS", 10),
  maxEventBytes: positiveInt("SSE_MAX_EVENT_BYTES", Sse.defaultMaxEventBytes),
  maxTracked: positiveInt("SSE_MAX_TRACKED", 10_000),
  initialDelay: Config.withDefault(Config.duration("SSE_INITIAL_DELAY"), Duration.millis(500)),
  maxDelay: Config.withDefault(Config.duration("SSE_MAX_DELAY"), Duration.seconds(30)),
  maxRetryAfter: Config.withDefault(Config.duration("SSE_MAX_RETRY_AFTER"), Duration.minutes(10))
})

class IdleTimeout extends Data.TaggedError("IdleTimeout") {}

/** `Retry-After` is either delay-seconds or an HTTP date. */
const parseRetryAfter = (value: string | undefined, now: number): Duration.Duration | undefined => {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Duration.seconds(Number(trimmed))
  const date = Date.parse(trimmed)
  return Number.isNaN(date) ? undefined : Duration.millis(Math.max(0, date - now))
}

/**
 * Header values are byte strings. An id beyond ASCII goes out as its UTF-8 bytes,
 * as browsers send it; fetch would otherwise refuse it (or send other bytes).
 */
const headerValue = (id: string): string => {
  for (let i = 0; i < id.length; i++) {
    if (id.charCodeAt(i) > 0x7f) return Buffer.from(id, "utf8").toString("latin1")
  }
  return id
}

const isEventStream = (contentType: string | undefined): boolean =>
  contentType !== undefined && contentType.split(";")[0]!.trim().toLowerCase() === "text/event-stream"

/** What one stream run remembers between its attempts. */
interface State {
  /** The spec's last-event-id buffer; "" means none. */
  lastEventId: string
  /** The server's latest `retry:` in milliseconds. */
  serverRetry: number | undefined
  attempt: number
  failures: number
  scheduleState: unknown
  delivered: boolean
  ended: Reconnect | undefined
  stopped: boolean
}

/**
 * Streams the events of `request`, reconnecting and resuming until the server
 * answers 204, a fatal error occurs or the retry budget runs out.
 */
export const stream = <E = never, EH = never, RH = never>(
  request: HttpClientRequest.HttpClientRequest,
  options: Options<E, EH, RH> = {}
): Stream.Stream<SseEvent, SseClientError | E | EH, HttpClient.HttpClient | RH> =>
  Stream.unwrap(Effect.gen(function*() {
    // Scoped requests are aborted when their attempt's scope closes: on
    // interruption, on an error status we do not read, and on idle timeout.
    const client = HttpClient.withScope(yield* HttpClient.HttpClient)
    const tracker: EventTracker.EventTracker<E> = options.tracker ??
      (yield* EventTracker.make<never>({ maxTracked: options.maxTracked ?? 10_000 }))
    const initialId = options.lastEventId ?? Option.getOrElse(yield* tracker.lastEventId, () => "")
    const idleTimeout = options.idleTimeout ?? "60 seconds"
    const idleMillis = Duration.toMillis(idleTimeout)
    const clock = yield* Effect.clock
    const maxAttempts = options.maxAttempts ?? 10
    const maxRetryAfter = Duration.toMillis(options.maxRetryAfter ?? "10 minutes")
    const schedule = options.schedule ?? backoff(options)
    const url = request.url
    const onConnection = options.onConnection ?? (() => Effect.void)
    const state: State = {
      lastEventId: initialId,
      serverRetry: undefined,
      attempt: 0,
      failures: 0,
      scheduleState: schedule.initial,
      delivered: false,
      ended: undefined,
      stopped: false
    }
    const parse = Sse.parse({
      maxEventBytes: options.maxEventBytes,
      onRetry: (millis) => {
        state.serverRetry = millis
      }
    })

    /** Per chunk: moves the resume point, drops replays, keeps id-less events. */
    const deduplicate = (events: Chunk.Chunk<SseEvent>): Effect.Effect<Chunk.Chunk<SseEvent>, E> => {
      eventsReceived.unsafeUpdate(events.length, noTags)
      const all = Chunk.toReadonlyArray(events)
      let withId = 0
      for (let i = 0; i < all.length; i++) {
        const id = all[i]!.id
        if (id !== undefined) {
          state.lastEventId = id
          // An empty id is the spec's "no id": it cannot be deduplicated.
          if (id !== "") withId++
        }
      }
      const keep = (kept: ReadonlyArray<SseEvent>) => {
        if (kept.length > 0) state.delivered = true
        return kept.length === all.length ? events : Chunk.unsafeFromArray(kept)
      }
      if (withId === all.length) return Effect.map(tracker.recordAll(all), keep)
      const identified: Array<SseEvent> = []
      for (let i = 0; i < all.length; i++) if (all[i]!.id) identified.push(all[i]!)
      return Effect.map(tracker.recordAll(identified), (fresh) => {
        // `fresh` is an in-order subsequence of `identified`: one merge pass.
        const kept: Array<SseEvent> = []
        let j = 0
        for (let i = 0; i < all.length; i++) {
          const event = all[i]!
          if (!event.id) kept.push(event)
          else if (event === fresh[j]) {
            kept.push(event)
            j++
          }
        }
        return keep(kept)
      })
    }

    const countBytes = (chunk: Chunk.Chunk<Uint8Array>) => {
      let bytes = 0
      for (const piece of chunk) bytes += piece.length
      bytesReceived.unsafeUpdate(bytes, noTags)
    }

    const end = (reconnect: Omit<Reconnect, "attempt">) => {
      state.ended = { ...reconnect, attempt: state.attempt }
    }

    const connect = Effect.gen(function*() {
      state.attempt++
      state.delivered = false
      state.ended = undefined
      let req = request
      if (options.headers !== undefined) req = HttpClientRequest.setHeaders(req, yield* options.headers)
      req = HttpClientRequest.setHeaders(req, { accept: "text/event-stream", "cache-control": "no-store" })
      if (state.lastEventId !== "") req = HttpClientRequest.setHeader(req, "last-event-id", headerValue(state.lastEventId))
      const attempt = state.attempt
      yield* onConnection({
        state: "connecting",
        attempt,
        lastEventId: state.lastEventId === "" ? undefined : state.lastEventId
      })
      // The request lives in its own scope so the idle watchdog can abort it.
      const requestScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
      const response = yield* client.execute(req).pipe(
        Scope.extend(requestScope),
        // A server that accepts and then says nothing is as idle as a silent body.
        Effect.timeoutFail({ onTimeout: () => new IdleTimeout(), duration: idleTimeout }),
        Effect.tap((response) => Effect.annotateCurrentSpan("sse.status", response.status)),
        Effect.withSpan("sse.connect", {
          attributes: { "sse.attempt": attempt, "sse.last_event_id": state.lastEventId, "url.full": url }
        }),
        Effect.either
      )
      if (Either.isLeft(response)) {
        // Only transport and URL errors reach here; a bad URL fails again, and
        // the budget turns that into a typed error.
        end(response.left._tag === "IdleTimeout" ? { reason: "idle" } : { reason: "transport", cause: response.left })
        return Stream.empty
      }
      const { status, headers } = response.right
      if (status === 204) {
        state.stopped = true
        return Stream.empty
      }
      if (status === 408 || status === 429 || status >= 500) {
        const retryAfter = status === 429 || status === 503
          ? parseRetryAfter(headers["retry-after"], yield* Clock.currentTimeMillis)
          : undefined
        end(retryAfter === undefined ? { reason: "status", status } : { reason: "status", status, retryAfter })
        return Stream.empty
      }
      if (status < 200 || status >= 300) return yield* new SseHttpError({ status, url, attempt })
      if (!isEventStream(headers["content-type"])) {
        return yield* new SseContentTypeError({ contentType: headers["content-type"], url })
      }
      yield* onConnection({ state: "connected", attempt, status })
      // Idle detection without a timer per read (Stream.timeout's fiber per pull
      // cost a third of the throughput, measured): one watchdog per attempt
      // aborts the request once a read has waited `idleTimeout`. `waiting` is
      // true only while a read is outstanding, so a slow consumer never looks
      // like a silent server.
      let waiting = true
      let since = clock.unsafeCurrentTimeMillis()
      const watch: Channel.Channel<
        Chunk.Chunk<Uint8Array>,
        Chunk.Chunk<Uint8Array>,
        HttpClientError.ResponseError,
        HttpClientError.ResponseError,
        unknown,
        unknown
      > = Channel.readWithCause({
        onInput: (chunk: Chunk.Chunk<Uint8Array>) => {
          waiting = false
          countBytes(chunk)
          // What follows the write runs when downstream pulls again.
          return Channel.zipRight(
            Channel.write(chunk),
            Channel.suspend(() => {
              waiting = true
              since = clock.unsafeCurrentTimeMillis()
              return watch
            })
          )
        },
        onFailure: (cause: Cause.Cause<HttpClientError.ResponseError>) => Channel.failCause(cause),
        onDone: () => Channel.void
      })
      const watchdog: Effect.Effect<void> = Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        if (waiting && now - since >= idleMillis) {
          end({ reason: "idle" })
          return Scope.close(requestScope, Exit.void)
        }
        return Effect.zipRight(Effect.sleep(waiting ? since + idleMillis - now : idleMillis), watchdog)
      })
      yield* Effect.forkScoped(watchdog)
      return response.right.stream.pipe(
        Stream.pipeThroughChannel(watch),
        parse,
        Stream.catchAll((error) => {
          if (!HttpClientError.isHttpClientError(error)) return Stream.fail(error)
          // An abort by the watchdog surfaces as a transport error; idle it was.
          if (state.ended === undefined) end({ reason: "transport", cause: error })
          return Stream.empty
        }),
        Stream.mapChunksEffect(deduplicate)
      )
    })

    /** After an attempt: spend the budget, then wait out the delay. */
    const afterAttempt = Effect.suspend(() => {
      if (state.stopped) return Effect.void
      const ended: Reconnect = state.ended ?? { reason: "closed", attempt: state.attempt }
      if (ended.reason !== "closed") connectionErrors.unsafeUpdate(1, reasonTags[ended.reason])
      if (state.delivered) {
        state.failures = 0
        state.scheduleState = schedule.initial
      } else {
        state.failures++
        if (state.failures >= maxAttempts) return new SseRetriesExhausted({ attempts: state.failures, last: ended })
      }
      return Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const [next, , decision] = yield* schedule.step(now, ended, state.scheduleState)
        if (ScheduleDecision.isDone(decision)) {
          return yield* new SseRetriesExhausted({ attempts: state.failures, last: ended })
        }
        state.scheduleState = next
        let delay = Math.max(0, ScheduleIntervals.start(decision.intervals) - now)
        if (state.serverRetry !== undefined) delay = Math.max(delay, state.serverRetry)
        if (ended.retryAfter !== undefined) {
          delay = Math.max(delay, Math.min(Duration.toMillis(ended.retryAfter), maxRetryAfter))
        }
        reconnects.unsafeUpdate(1, noTags)
        yield* onConnection(
          ended.status === undefined
            ? { state: "reconnecting", attempt: ended.attempt, reason: ended.reason, delayMillis: delay }
            : { state: "reconnecting", attempt: ended.attempt, reason: ended.reason, delayMillis: delay, status: ended.status }
        )
        yield* Effect.sleep(delay).pipe(
          Effect.withSpan("sse.reconnect", {
            attributes: { "sse.reason": ended.reason, "sse.delay_ms": delay, "sse.attempt": ended.attempt }
          })
        )
      })
    })

    const attempt = Stream.unwrapScoped(connect).pipe(Stream.concat(Stream.execute(afterAttempt)))
    // A loop of attempts that ends when one sets `stopped`; a tail call, so
    // reconnecting forever does not grow anything.
    const attempts: Channel.Channel<
      Chunk.Chunk<SseEvent>,
      unknown,
      SseClientError | E | EH,
      unknown,
      unknown,
      unknown,
      HttpClient.HttpClient | RH
    > = Channel.suspend(() =>
      state.stopped ? Channel.void : Channel.zipRight(Stream.toChannel(attempt), attempts)
    )
    return Stream.fromChannel(attempts)
  }))
