/**
 * The connection loop behind `SseClient.stream`: one stream run is a loop of
 * connections; each builds its request, waits for the answer (every redirect
 * hop within `idleTimeout`), classifies it, then reads the body under an idle
 * watchdog, recording the parsed events in the tracker; when it ends, the retry
 * budget and the server's `retry:` or `Retry-After` decide whether and when the
 * next one starts.
 */
import type * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as EventTracker from "../EventTracker.js"
import type * as SseClient from "../SseClient.js"
import {
  type Reconnect,
  type ReconnectReason,
  type SseClientError,
  type SseContentEncodingError,
  type SseRedirectError,
  type SseRetriesExhausted,
  SseResumeGap,
  SseStreamDropped
} from "../SseClientError.js"
import { Parser, type SseEventTooLarge } from "../../wire/Parser.js"
import * as Sse from "../../wire/Sse.js"
import { isIdOnly, type SseEvent } from "../../wire/SseEvent.js"
import { attemptRequest } from "./attemptRequest.js"
import { type BodySource, directBody, pulledBody } from "./body.js"
import { causeText } from "./causeText.js"
import { decodedBody, mayBeEncoded } from "./contentEncoding.js"
import { IdleWatchdog } from "./idleWatchdog.js"
import { noTags } from "../../internal/metricTags.js"
import { backoff, reconnectDelay, RetryBudget } from "./reconnect.js"
import { ReconnectTrigger } from "./reconnectTrigger.js"
import { defaultMaxRedirects, follow, type Followed, withoutCredentials } from "./redirect.js"
import { classify } from "./response.js"
import { isSafeMethod, resumeRequest } from "./resume.js"
import { recordedAs, recorderOf, takeRecordedBeforeFailure } from "./tracker.js"
import { count, duration, resolve, type Rule } from "../../internal/settings.js"
import type { SettingsError } from "../../Settings.js"

export const defaults: SseClient.Settings = {
  idleTimeout: Duration.seconds(60),
  maxAttempts: 10,
  connectAttempts: undefined,
  maxEventBytes: Sse.defaultMaxEventBytes,
  maxTracked: 10_000,
  initialDelay: Duration.millis(500),
  maxDelay: Duration.seconds(30),
  maxRetryAfter: Duration.minutes(10),
  maxRedirects: defaultMaxRedirects,
  crossOriginRedirects: false,
  tracePropagation: true
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

/** The abnormal ends, counted in `connectionErrors`: not a graceful close, not a requested reconnect. */
const errorTags: Partial<Record<ReconnectReason, ReadonlyArray<MetricLabel.MetricLabel>>> = {
  transport: [MetricLabel.make("reason", "transport")],
  idle: [MetricLabel.make("reason", "idle")],
  status: [MetricLabel.make("reason", "status")]
}

// --- One stream run ---

/** What a stream run holds for all its connections. */
interface Run<E, EH, RH> {
  readonly request: HttpClientRequest.HttpClientRequest
  /** False for a method that must not be sent twice: the stream is never re-sent as it is. */
  readonly resendable: boolean
  /** The request that resumes an unsafe stream from a resume point (`resumeWith`); none: it cannot be. */
  readonly resume: HttpClientRequest.HttpClientRequest | undefined
  readonly trigger: ReconnectTrigger
  /** Aborts a request when the scope it ran in closes. */
  readonly client: HttpClient.HttpClient.With<HttpClientError.HttpClientError, Scope.Scope>
  /** `client` for a hop to another origin: what its request mapping added, credentials are taken off. */
  readonly crossOriginClient: HttpClient.HttpClient.With<HttpClientError.HttpClientError, Scope.Scope>
  readonly tracker: EventTracker.EventTracker<E>
  readonly headers: Effect.Effect<Headers.Input | undefined, EH, RH>
  readonly onConnection: (status: SseClient.ConnectionStatus) => Effect.Effect<void>
  readonly idleTimeout: Duration.Duration
  readonly maxEventBytes: number
  readonly maxRedirects: number
  readonly crossOriginRedirects: boolean
  readonly maxRetryAfter: number
  readonly budget: RetryBudget
  readonly onGap: "fail" | "emit"
  /** The server's latest `retry:` in ms; per spec it outlives the connection that sent it. */
  serverRetry: number | undefined
}

/** How one connection ended: the server said stop (204), or the next attempt is due. */
type Outcome =
  | { readonly _tag: "Stop" }
  | { readonly _tag: "Ended"; readonly ended: Reconnect; readonly delivered: boolean }

const stopped: Outcome = { _tag: "Stop" }

const isBoolean: Rule<boolean> = (b) => typeof b === "boolean" ? undefined : "must be true or false"

/**
 * The rule of each setting: a zero count or duration would give up at once or
 * spin; `maxRedirects` may be 0 (follow none).
 */
const rules: { readonly [K in keyof SseClient.Settings]?: Rule<SseClient.Settings[K]> } = {
  idleTimeout: duration,
  maxAttempts: count,
  connectAttempts: (n) => n === undefined ? undefined : count(n),
  maxEventBytes: count,
  maxTracked: count,
  initialDelay: duration,
  maxDelay: duration,
  maxRetryAfter: duration,
  maxRedirects: (n) => Number.isSafeInteger(n) && n >= 0 ? undefined : "must be a whole number ≥ 0",
  crossOriginRedirects: isBoolean,
  tracePropagation: isBoolean
}

const makeRun = <E, EH, RH>(
  request: HttpClientRequest.HttpClientRequest,
  options: SseClient.Options<E, EH, RH>,
  trigger: ReconnectTrigger
): Effect.Effect<Run<E, EH, RH>, SettingsError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const settings = yield* resolve("SseClient", defaults, options, rules)
    const base = yield* HttpClient.HttpClient
    const tracker: EventTracker.EventTracker<E> = options.tracker ??
      (yield* EventTracker.make<never>({ maxTracked: settings.maxTracked }))
    if (options.lastEventId !== undefined) {
      // The tracker owns the resume point; an explicit start id replaces its cursor, not its window.
      const { recentIds } = yield* tracker.snapshot
      yield* tracker.restore({ lastEventId: Option.some(options.lastEventId).pipe(Option.filter((id) => id !== "")), recentIds })
    }
    const resendable = isSafeMethod(request.method)
    const client = HttpClient.withScope(settings.tracePropagation ? base : HttpClient.withTracerPropagation(base, false))
    return {
      request,
      resendable,
      resume: resendable || options.resumeWith === undefined ? undefined : resumeRequest(request, options.resumeWith),
      trigger,
      client,
      crossOriginClient: HttpClient.mapRequest(client, withoutCredentials),
      tracker,
      headers: options.headers ?? Effect.succeed(undefined),
      onConnection: options.onConnection ?? (() => Effect.void),
      idleTimeout: Duration.decode(settings.idleTimeout),
      maxEventBytes: settings.maxEventBytes,
      maxRedirects: settings.maxRedirects,
      crossOriginRedirects: settings.crossOriginRedirects,
      maxRetryAfter: Duration.toMillis(settings.maxRetryAfter),
      onGap: options.onGap ?? "fail",
      budget: new RetryBudget(options.schedule ?? backoff(settings), settings.maxAttempts, settings.connectAttempts),
      serverRetry: undefined
    }
  })

/**
 * `Channel.unwrapScoped` without its cost per element: that one runs the channel
 * in a concat stage every chunk passes through (about a microsecond each,
 * measured), where a finalizer closing the scope does the same job. Not
 * `Channel.acquireUseRelease` either, whose Ref and masks stay on every open
 * stream's stack: an interruption before the finalizer is in place can only
 * lose a scope nothing was added to yet.
 */
const scopedChannel = <OutElem, OutErr, OutDone, Env, E, R>(
  make: (scope: Scope.CloseableScope) => Effect.Effect<Channel.Channel<OutElem, unknown, OutErr, unknown, OutDone, unknown, Env>, E, R>
): Channel.Channel<OutElem, unknown, OutErr | E, unknown, OutDone, unknown, Env | Exclude<R, Scope.Scope>> =>
  Channel.flatMap(
    Channel.fromEffect(Scope.make()),
    (scope) => Channel.ensuringWith(Channel.unwrap(Scope.extend(make(scope), scope)), (exit) => Scope.close(scope, exit))
  )

/**
 * Connection `attempt` and all after it, until one says stop or the budget is
 * spent. The next connection starts in a continuation, so reconnecting forever
 * grows nothing.
 */
const connections = <E, EH, RH>(
  run: Run<E, EH, RH>,
  attempt: number
): Channel.Channel<Chunk.Chunk<SseEvent>, unknown, SseClientError | E | EH, unknown, void, unknown, RH | HttpClient.HttpClient> =>
  Channel.flatMap(connection(run, attempt), (outcome) =>
    outcome._tag === "Stop"
      ? Channel.void
      : Channel.flatMap(
        Channel.fromEffect(afterConnection(run, outcome.ended, outcome.delivered)),
        (reconnect) => reconnect ? connections(run, attempt + 1) : Channel.void
      ))

/**
 * After a connection: whether another one follows. A stream started by an unsafe
 * method is never re-sent: a graceful close ends it, and any other end fails
 * with `SseStreamDropped` unless `resumeWith` and a resume point resume it.
 */
const afterConnection = <E, EH, RH>(
  run: Run<E, EH, RH>,
  ended: Reconnect,
  delivered: boolean
): Effect.Effect<boolean, SseRetriesExhausted | SseStreamDropped> =>
  Effect.gen(function*() {
    const tags = errorTags[ended.reason]
    if (tags !== undefined) connectionErrors.unsafeUpdate(1, tags)
    if (!run.resendable) {
      if (ended.reason === "closed") return false
      const lastEventId = Option.getOrUndefined(yield* run.tracker.lastEventId)
      if (run.resume === undefined || lastEventId === undefined) {
        const { reason, retryAfter, status } = ended
        const { method, url } = run.request
        return yield* new SseStreamDropped({ method, url, lastEventId, reason, status, retryAfter })
      }
    }
    yield* pauseBeforeReconnect(run, ended, delivered)
    return true
  })

/**
 * Spend the budget, report, then wait out the delay; a reconnect the caller
 * requested spends nothing and waits for nothing, and a request during the wait
 * cuts it short.
 */
const pauseBeforeReconnect = <E, EH, RH>(
  run: Run<E, EH, RH>,
  ended: Reconnect,
  delivered: boolean
): Effect.Effect<void, SseRetriesExhausted> =>
  Effect.gen(function*() {
    let delay = 0
    if (ended.reason === "requested") {
      run.budget.requested(delivered)
    } else {
      delay = reconnectDelay({
        scheduled: yield* run.budget.next(ended, delivered, yield* Clock.currentTimeMillis),
        serverRetry: run.serverRetry,
        retryAfter: ended.retryAfter,
        maxRetryAfter: run.maxRetryAfter
      })
    }
    reconnects.unsafeUpdate(1, noTags)
    const cause = causeText(ended)
    yield* run.onConnection(
      ended.status === undefined
        ? { state: "reconnecting", attempt: ended.attempt, reason: ended.reason, delayMillis: delay, cause }
        : { state: "reconnecting", attempt: ended.attempt, reason: ended.reason, delayMillis: delay, status: ended.status, cause }
    )
    yield* run.trigger.raceRequest(Effect.sleep(delay), Effect.void).pipe(
      Effect.withSpan("sse.reconnect", {
        attributes: { "sse.reason": ended.reason, "sse.delay_ms": delay, "sse.attempt": ended.attempt }
      })
    )
  })

class IdleTimeout extends Data.TaggedError("IdleTimeout") {}
class ReconnectRequested extends Data.TaggedError("ReconnectRequested") {}

/**
 * The request of one attempt: the original, or for a stream that must not be
 * re-sent, the resume request once there is a resume point.
 */
const requestFrom = <E, EH, RH>(run: Run<E, EH, RH>, resumeFrom: string | undefined) =>
  run.resume !== undefined && resumeFrom !== undefined ? run.resume : run.request

/**
 * One connection: request, answer, body. Its events go out as they are parsed
 * and recorded; its result says how it ended.
 */
const connection = <E, EH, RH>(
  run: Run<E, EH, RH>,
  attempt: number
): Channel.Channel<Chunk.Chunk<SseEvent>, unknown, SseClientError | E | EH, unknown, Outcome, unknown, RH | HttpClient.HttpClient> =>
  scopedChannel((scope) => Effect.gen(function*() {
    const ended = (reconnect: Omit<Reconnect, "attempt">, delivered = false): Outcome => ({
      _tag: "Ended",
      ended: { ...reconnect, attempt },
      delivered
    })
    yield* run.trigger.arm
    const requested = run.trigger.requested
    const resumeFrom = Option.getOrUndefined(yield* run.tracker.lastEventId)
    const request = yield* attemptRequest(requestFrom(run, resumeFrom), yield* run.headers, resumeFrom)
    yield* run.onConnection({ state: "connecting", attempt, lastEventId: resumeFrom })
    // Closing the request's scope aborts it: the connection's own, unless a reconnect can be
    // requested, whose listener (in the connection's scope) must not close the scope it runs in.
    const requestScope = run.trigger.listening ? yield* Scope.fork(scope, ExecutionStrategy.sequential) : scope
    const answer = yield* run.trigger.raceRequest(
      awaitResponse(run, request, requestScope),
      Effect.fail(new ReconnectRequested())
    ).pipe(
      Effect.tap(({ response }) => Effect.annotateCurrentSpan("sse.status", response.status)),
      Effect.withSpan("sse.connect", {
        attributes: { "sse.attempt": attempt, "sse.last_event_id": resumeFrom ?? "", "url.full": request.url }
      }),
      Effect.either
    )
    if (Either.isLeft(answer)) {
      const error = answer.left
      switch (error._tag) {
        case "SseRedirectError":
          return yield* error
        case "IdleTimeout":
          return Channel.succeed(ended({ reason: "idle" }))
        case "ReconnectRequested":
          return Channel.succeed(ended({ reason: "requested" }))
        default:
          // Transport and URL errors: a bad URL fails again, and the budget turns
          // that into a typed error.
          return Channel.succeed(ended({ reason: "transport", cause: error }))
      }
    }
    const { response, url } = answer.right
    const verdict = classify(response, { url, attempt, now: yield* Clock.currentTimeMillis })
    switch (verdict._tag) {
      case "Stop":
        return Channel.succeed(stopped)
      case "Fail":
        return yield* verdict.error
      case "Retry": {
        const { retryAfter, status } = verdict
        return Channel.succeed(ended(retryAfter === undefined ? { reason: "status", status } : { reason: "status", status, retryAfter }))
      }
      case "Read":
        run.budget.connect()
        yield* run.onConnection({ state: "connected", attempt, status: response.status })
        return Channel.map(
          yield* readBody(run, response, requestScope, requested, resumeFrom !== undefined),
          ({ delivered, ...end }) => ended(end, delivered)
        )
    }
  }))

/**
 * Sends `request` and waits for the answer, following redirects; each hop gets
 * `idleTimeout` of its own, and every hop's request lives in `requestScope`, so
 * the watchdog's abort reaches the one whose body is read.
 */
const awaitResponse = <E, EH, RH>(
  run: Run<E, EH, RH>,
  request: HttpClientRequest.HttpClientRequest,
  requestScope: Scope.Scope
): Effect.Effect<Followed, HttpClientError.HttpClientError | IdleTimeout | SseRedirectError> =>
  follow(request, {
    maxRedirects: run.maxRedirects,
    crossOrigin: run.crossOriginRedirects,
    execute: (request, hop) =>
      (hop.crossOrigin ? run.crossOriginClient : run.client).execute(request).pipe(
        // A server that accepts and then says nothing is as idle as a silent body.
        Effect.timeoutFail({ onTimeout: () => new IdleTimeout(), duration: run.idleTimeout })
      )
  }).pipe(Scope.extend(requestScope))

/** How a body ended, and whether it brought a new event. */
interface BodyEnd {
  readonly reason: "closed" | "transport" | "idle" | "requested"
  readonly cause?: unknown
  readonly delivered: boolean
}

/**
 * The body of an accepted response, decoded, parsed and recorded. Closing
 * `requestScope` aborts it: the idle watchdog does once a read has waited
 * `idleTimeout`, and so does a reconnect the caller `requested`.
 */
const readBody = <E, EH, RH>(
  run: Run<E, EH, RH>,
  response: HttpClientResponse.HttpClientResponse,
  requestScope: Scope.CloseableScope,
  requested: Effect.Effect<void>,
  resumed: boolean
) =>
  Effect.gen(function*() {
    const abort = Scope.close(requestScope, Exit.void)
    const watchdog = yield* IdleWatchdog.make(run.idleTimeout, abort)
    let wasRequested = false
    // A fiber per open stream only when reconnects can be requested: thousands of streams may be open.
    if (run.trigger.listening) {
      yield* Effect.forkScoped(Effect.zipRight(requested, Effect.suspend(() => {
        wasRequested = true
        return abort
      })))
    }
    const parser = new Parser({
      maxEventBytes: run.maxEventBytes,
      idOnlyBlocks: true,
      onRetry: (millis) => {
        run.serverRetry = millis
      }
    })
    // Read directly where the layer's body is one we know, unless it needs our decoder.
    const direct = mayBeEncoded(response) ? undefined : yield* directBody(response)
    let events: EventReader<E>
    if (direct !== undefined) {
      events = readEvents(run, parser, watchdog, direct, resumed)
    } else {
      const pulled = yield* pulledBody(decodedBody(response))
      events = Channel.ensuring(readEvents(run, parser, watchdog, pulled, resumed), pulled.release)
    }
    return events.pipe(
      // An abort surfaces as a transport error (or an end): it was what aborted.
      Channel.map((end): BodyEnd =>
        watchdog.fired
          ? { reason: "idle", delivered: end.delivered }
          : wasRequested
          ? { reason: "requested", delivered: end.delivered }
          : end
      )
    )
  })

const countBytes = (chunk: Chunk.Chunk<Uint8Array>) => {
  let bytes = 0
  for (let i = 0; i < chunk.length; i++) bytes += Chunk.unsafeGet(chunk, i).length
  bytesReceived.unsafeUpdate(bytes, noTags)
}

const keepWithoutId = { keepWithoutId: true } as const

/** The first event that is not an id-only block, if any. */
const firstEvent = (events: ReadonlyArray<SseEvent>): SseEvent | undefined => {
  for (const event of events) if (!isIdOnly(event)) return event
  return undefined
}

/** `event` as `SseServer`'s gap notice, if it is one: type "gap", data a JSON object with both ids as strings. */
const gapNotice = (event: SseEvent): SseResumeGap | undefined => {
  if (event.event !== "gap") return undefined
  let data: unknown
  try {
    data = JSON.parse(event.data)
  } catch {
    return undefined
  }
  if (typeof data !== "object" || data === null) return undefined
  const { firstAvailable, lastEventId } = data as Record<string, unknown>
  return typeof lastEventId === "string" && typeof firstAvailable === "string"
    ? new SseResumeGap({ lastEventId, firstAvailable })
    : undefined
}

/** New events out of a decoded body; its result is how the body ended. */
type EventReader<E> = Channel.Channel<
  Chunk.Chunk<SseEvent>,
  unknown,
  E | SseEventTooLarge | SseContentEncodingError | SseResumeGap,
  unknown,
  BodyEnd,
  unknown
>

/**
 * Bytes pulled from `body`, new events out, in one stage (each stage costs about a
 * microsecond per chunk, as much as parsing a small one): tells the idle
 * watchdog when a read starts and ends, parses, records in the tracker
 * (dropping replays, keeping id-less events in place), and ends with how the
 * body ended. Events completed before a transport failure are delivered before
 * it is reported.
 */
const readEvents = <E, EH, RH>(
  run: Run<E, EH, RH>,
  parser: Parser,
  watchdog: IdleWatchdog,
  body: BodySource<SseContentEncodingError>,
  resumed: boolean
): EventReader<E> => {
  type Reader = EventReader<E>
  let delivered = false
  /** Until the first event of a resumed response is seen: whether it is a gap notice. */
  let gapPossible = resumed
  const recorder = recorderOf(run.tracker)
  // Runs when downstream asks for more: only then does the next read start.
  const nextRead = (): Reader => {
    watchdog.reading()
    return read
  }
  const deliver = (kept: ReadonlyArray<SseEvent>, withIdOnly: ReadonlyArray<SseEvent> | undefined, next: () => Reader): Reader => {
    if (kept.length === 0 && withIdOnly === undefined) return next()
    if (kept.length > 0) delivered = true
    const chunk = Chunk.unsafeFromArray(kept)
    if (withIdOnly !== undefined) recordedAs.set(chunk, withIdOnly)
    return Channel.flatMap(Channel.write(chunk), next)
  }
  const emit = (events: Array<SseEvent>, next: () => Reader): Reader => {
    if (parser.error !== undefined) next = () => Channel.fail(parser.error!)
    if (events.length === 0) return next()
    if (gapPossible) {
      const first = firstEvent(events)
      if (first !== undefined) {
        gapPossible = false
        const gap = gapNotice(first)
        if (gap !== undefined && run.onGap === "fail") return Channel.fail(gap)
      }
    }
    eventsReceived.unsafeUpdate(events.length, noTags)
    if (recorder !== undefined && recorder.recordInPlace(events)) return deliver(events, recorder.withIdOnly, next)
    return Channel.flatMap(Channel.fromEffect(Effect.either(run.tracker.recordAll(events, keepWithoutId))), (result) => {
      if (Either.isLeft(result)) {
        // A callback failed partway: the events before it are recorded, so they go out first.
        const before = takeRecordedBeforeFailure(run.tracker)
        const failed = Channel.fail(result.left)
        return before.length === 0 ? failed : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(before)), failed)
      }
      // A tracker with callbacks ran them for the id-only blocks itself.
      return deliver(result.right, undefined, next)
    })
  }
  const closed = (): Reader => Channel.succeed<BodyEnd>({ reason: "closed", delivered })
  // A read that failed is a transport failure. A body we cannot decode would not
  // decode on the next attempt either, and a defect or an interruption is not
  // the server's doing: those fail the wait, and end the stream.
  const read: Reader = Channel.suspend((): Reader => {
    const bytes = body.take()
    if (bytes !== undefined) {
      watchdog.received()
      countBytes(bytes)
      return emit(parser.push(bytes), nextRead)
    }
    if (body.failure !== undefined) return Channel.succeed<BodyEnd>({ reason: "transport", cause: body.failure, delivered })
    if (body.ended) return emit(parser.end(), closed)
    return waitThenRead
  })
  const waitThenRead: Reader = Channel.flatMap(Channel.fromEffect(body.wait), () => read)
  return read
}

/**
 * Streams the events of `request`, reconnecting and resuming until the server
 * answers 204, a fatal error occurs or the retry budget runs out. A stream
 * started by an unsafe method (POST, …) also ends when the server closes it.
 */
export const stream = <E = never, EH = never, RH = never>(
  request: HttpClientRequest.HttpClientRequest,
  options: SseClient.Options<E, EH, RH> = {}
): Stream.Stream<SseEvent, SseClientError | E | EH, HttpClient.HttpClient | RH> => {
  const start = (trigger: ReconnectTrigger) => Effect.map(makeRun(request, options, trigger), (run) => connections(run, 1))
  // Only the listener of `reconnectNow` needs a scope as long as the stream: thousands of streams may be open.
  const requests = options.reconnectNow
  return Stream.fromChannel(
    requests === undefined
      ? Channel.unwrap(Effect.flatMap(ReconnectTrigger.never, start))
      : scopedChannel(() => Effect.flatMap(ReconnectTrigger.make(requests), start))
  )
}

