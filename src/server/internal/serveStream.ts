/**
 * The SSE handler's machinery: the request's position, the decision (refuse, 204,
 * or stream) made before any byte, and the body written from `EventLog.follow`.
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Chunk, Duration, Effect, Either, Metric, Schedule, type Scope, Stream } from "effect"
import * as Sse from "../../wire/Sse.js"
import { EventLog, type EventLogGap, type LoggedEvent, type UnknownEventId } from "../EventLog.js"
import type * as SseServer from "../SseServer.js"

export const readersOpen = Metric.gauge("sse_server_readers_open", {
  description: "Readers of an event stream being served now"
})

export const eventsWritten = Metric.counter("sse_server_events_written", {
  description: "Events written to readers",
  incremental: true
})

export const responses = Metric.counter("sse_server_responses", {
  description: "Responses of the event stream handler, by status",
  incremental: true
})

// --- The request's position ---

const utf8 = new TextEncoder()

/** UTF-8 length without encoding when the answer is plain (a UTF-16 unit is at most 3 bytes). */
const fitsBytes = (value: string, max: number): boolean =>
  value.length * 3 <= max || (value.length <= max && utf8.encode(value).length <= max)

/**
 * The id to resume after: the header, else the query parameter; an empty one is
 * none (the spec's EventSource sends no header while its last event id is empty).
 */
const lastEventIdOf = (
  request: HttpServerRequest.HttpServerRequest,
  maxBytes: number
): Either.Either<string | undefined, string> => {
  const header = request.headers["last-event-id"]
  let value = header === undefined || header === "" ? undefined : header
  if (value === undefined) {
    const query = request.url.indexOf("?")
    const param = query === -1 ? null : new URLSearchParams(request.url.slice(query + 1)).get("lastEventId")
    value = param === null || param === "" ? undefined : param
  }
  if (value !== undefined && !fitsBytes(value, maxBytes)) {
    return Either.left(`Last-Event-ID is longer than ${maxBytes} bytes`)
  }
  return Either.right(value)
}

const neverIssued: Record<UnknownEventId["reason"], string> = {
  malformed: "not an id of this log",
  "other-stream": "an id of another stream, or of an earlier stream of this name",
  ahead: "ahead of the stream's last id"
}

// --- Responses ---

type Headers = Record<string, string>

/** One line of text: the reason of a refusal. */
const refusal = (status: number, reason: string, headers: Headers) =>
  HttpServerResponse.text(`${reason.replace(/[\r\n]+/g, " ")}\n`, {
    status,
    headers: { "cache-control": "no-store", ...headers },
    contentType: "text/plain; charset=utf-8"
  })

const respond = (response: HttpServerResponse.HttpServerResponse) =>
  Metric.increment(Metric.tagged(responses, "status", String(response.status))).pipe(
    Effect.zipRight(Effect.annotateCurrentSpan("http.status", response.status)),
    Effect.as(response)
  )

/** The CORS headers of a request from `origin`: none without `cors` or for an origin not allowed. */
const corsHeaders = (cors: SseServer.Cors | undefined, origin: string | undefined): Headers => {
  if (cors === undefined || origin === undefined) return {}
  const any = cors.allowOrigins === "*"
  if (!any && !cors.allowOrigins.includes(origin)) return {}
  const credentials = cors.allowCredentials === true
  // "*" cannot go with credentials (Fetch standard), and an echoed origin must vary the cache by Origin.
  if (any && !credentials) return { "access-control-allow-origin": "*" }
  return {
    "access-control-allow-origin": origin,
    vary: "origin",
    ...(credentials ? { "access-control-allow-credentials": "true" } : {})
  }
}

const preflight = (cors: SseServer.Cors | undefined, allowed: Headers) =>
  cors === undefined || allowed["access-control-allow-origin"] === undefined
    ? HttpServerResponse.empty({ status: 204, headers: { allow: "GET, HEAD, OPTIONS" } })
    : HttpServerResponse.empty({
      status: 204,
      headers: {
        ...allowed,
        "access-control-allow-methods": "GET, HEAD",
        "access-control-allow-headers": ["last-event-id", ...(cors.allowHeaders ?? [])].join(", "),
        "access-control-max-age": String(Math.floor(Duration.toSeconds(cors.maxAge ?? Duration.minutes(10))))
      }
    })

// --- The body ---

const block = (event: string, data: string): string => Sse.encode({ event, data } as Parameters<typeof Sse.encode>[0])

/**
 * A chunk of the log as one write: the socket is written once per chunk, not per
 * event. `encode` cannot throw here: the log's ids are its own and it refuses an
 * event type with a line break at `append` (`InvalidRequest`).
 */
const encodeChunk = (events: Chunk.Chunk<LoggedEvent>): Effect.Effect<Chunk.Chunk<Uint8Array>> => {
  let text = ""
  for (const event of events) text += Sse.encode(event as Parameters<typeof Sse.encode>[0])
  return Effect.as(Metric.incrementBy(eventsWritten, events.length), Chunk.of(utf8.encode(text)))
}

const body = (settings: SseServer.Settings, stream: string, after: string | undefined) =>
  Effect.map(EventLog, (log) => {
    const bytes = (text: string) => Stream.succeed(utf8.encode(text))
    const written = (from: string | undefined) => Stream.mapChunksEffect(log.follow(stream, { after: from }), encodeChunk)
    const gap = (error: EventLogGap) =>
      bytes(block(settings.gapEvent, JSON.stringify({ lastEventId: error.requested, firstAvailable: error.firstAvailable })))
    // A gap is found before any event; from the first kept event on, the rest is the same.
    const events = written(after).pipe(
      Stream.catchTag("EventLogGap", (error) => Stream.concat(gap(error), written(undefined))),
      Stream.catchAll((error) => {
        switch (error._tag) {
          case "StreamEnded":
            return error.end._tag === "Failed" ? bytes(block(settings.errorEvent, error.end.reason)) : Stream.empty
          default:
            // The log failed or the stream went away: end the response; the reader
            // reconnects and its next request says what is wrong.
            return Stream.drain(Stream.fromEffect(Effect.logWarning("sse.serve: reading the log failed", error)))
        }
      })
    )
    const keepAlive = Stream.fromSchedule(Schedule.spaced(settings.keepAliveInterval)).pipe(
      Stream.as(utf8.encode(": keep-alive\n\n"))
    )
    return bytes(`retry: ${Math.round(Duration.toMillis(settings.retry))}\n\n`).pipe(
      Stream.concat(events),
      Stream.merge(keepAlive, { haltStrategy: "left" }),
      Stream.withSpan("sse.serve.body", { attributes: { "sse.stream": stream, "sse.last_event_id": after ?? "" } })
    )
  })

// --- The handler ---

export const make = <R>(
  settings: SseServer.Settings,
  options: SseServer.Options<R>
): HttpApp.Default<never, R | EventLog | Scope.Scope> => {
  let readers = 0
  const retryAfter = String(Math.ceil(Duration.toSeconds(settings.retryAfter)))
  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const cors = corsHeaders(options.cors, request.headers["origin"])
    if (request.method === "OPTIONS") return yield* respond(preflight(options.cors, cors))
    if (request.method !== "GET" && request.method !== "HEAD") {
      return yield* respond(refusal(405, "an event stream is read with GET", { allow: "GET, HEAD, OPTIONS", ...cors }))
    }
    const stream = typeof options.stream === "string" ? options.stream : yield* options.stream
    yield* Effect.annotateCurrentSpan("sse.stream", stream)
    const access = yield* Effect.either(options.authorize(request, stream))
    if (Either.isLeft(access)) return yield* respond(refusal(access.left.status, access.left.reason, cors))
    const position = lastEventIdOf(request, settings.maxLastEventIdBytes)
    if (Either.isLeft(position)) return yield* respond(refusal(400, position.left, cors))
    const after = position.right

    // A reader's place, freed when the request's scope closes: after the body, however it ends.
    if (readers >= settings.maxReaders) {
      return yield* respond(refusal(503, "too many readers", { "retry-after": retryAfter, ...cors }))
    }
    readers++
    yield* Metric.increment(readersOpen)
    yield* Effect.addFinalizer(() => Effect.suspend(() => (readers--, Metric.incrementBy(readersOpen, -1))))

    // The position is checked by a read of one event, so that a refusal comes with its status.
    const log = yield* EventLog
    const probe = yield* Effect.either(log.read(stream, { after, limit: 1 }))
    if (Either.isLeft(probe)) {
      const error = probe.left
      switch (error._tag) {
        case "StreamNotFound":
          return yield* respond(refusal(404, `no stream ${JSON.stringify(stream)}`, cors))
        case "UnknownEventId":
          return yield* respond(refusal(400, `Last-Event-ID was never issued by this stream: ${neverIssued[error.reason]}`, cors))
        case "EventLogError":
          yield* Effect.logWarning("sse.serve: the event log failed", error)
          return yield* respond(refusal(503, "the event log is unavailable", { "retry-after": retryAfter, ...cors }))
        case "InvalidRequest":
          return yield* respond(refusal(400, error.reason, cors))
        case "EventLogGap":
          break
      }
    } else if (probe.right.events.length === 0 && probe.right.end._tag === "Some" && probe.right.end.value._tag === "Completed") {
      // Nothing after this position, ever: 204 is how SSE tells a client not to reconnect.
      return yield* respond(HttpServerResponse.empty({ status: 204, headers: cors }))
    }
    const events = yield* body(settings, stream, after)
    return yield* respond(HttpServerResponse.stream(events, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no", ...cors }
    }))
  }).pipe(Effect.withSpan("sse.serve"))
}
