import { Cause, Effect, Exit, Runtime } from "effect"
import * as EventLog from "../EventLog.js"
import type * as McpEventStore from "../McpEventStore.js"
import { UnknownMcpEventId } from "../McpEventStore.js"

/** The SSE event type the priming events are kept under: resume points, never replayed as messages. */
const priming = "mcp-priming"

export const streamName = (sessionId: string, streamId: string): string =>
  `mcp/${encodeURIComponent(sessionId)}/${encodeURIComponent(streamId)}`

// The log's ids hold no "." and URI-encoding keeps the stream's, so the first "." splits them.
const eventId = (logId: string, streamId: string) => `${logId}.${encodeURIComponent(streamId)}`

/** An id in errors is cut short: a hostile `Last-Event-ID` may be huge. */
const shown = (id: string) => id.length <= 64 ? id : `${id.slice(0, 64)}…`

const parse = (id: string): { readonly logId: string; readonly streamId: string } | undefined => {
  const dot = id.indexOf(".")
  if (dot < 1 || id.length > 1024) return undefined
  try {
    return { logId: id.slice(0, dot), streamId: decodeURIComponent(id.slice(dot + 1)) }
  } catch {
    return undefined
  }
}

const fromRuntime = (runtime: Runtime.Runtime<EventLog.EventLog>, sessionId: string): McpEventStore.McpEventStore => {
  const log = Runtime.runSync(runtime)(EventLog.EventLog)
  const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
    Runtime.runPromiseExit(runtime)(effect).then((exit) => {
      if (Exit.isSuccess(exit)) return exit.value
      throw Cause.squash(exit.cause)
    })

  const rejected = (id: string, reason: UnknownMcpEventId["reason"]) =>
    new UnknownMcpEventId({ sessionId, eventId: shown(id), reason })

  /** The stream and log id of `id`, checked against this session's log: a read after it succeeds. */
  const locate = (id: string) =>
    Effect.gen(function*() {
      const parsed = parse(id)
      if (parsed === undefined) return yield* rejected(id, "malformed")
      const stream = streamName(sessionId, parsed.streamId)
      yield* log.read(stream, { after: parsed.logId, limit: 1 }).pipe(
        Effect.catchTags({
          InvalidRequest: () => rejected(id, "malformed"),
          StreamNotFound: () => rejected(id, "not-in-session"),
          UnknownEventId: () => rejected(id, "not-in-session"),
          EventLogGap: () => rejected(id, "trimmed")
        })
      )
      return { ...parsed, stream }
    })

  return {
    storeEvent: (streamId, message) => {
      const isPriming = !("jsonrpc" in message)
      return run(
        log.append(streamName(sessionId, streamId), [
          isPriming ? { event: priming, data: "" } : { data: JSON.stringify(message) }
        ]).pipe(Effect.map((logged) => eventId(logged[0]!.id, streamId)))
      )
    },

    getStreamIdForEventId: (id) =>
      run(locate(id).pipe(
        Effect.map(({ streamId }): string | undefined => streamId),
        Effect.catchTag("UnknownMcpEventId", () => Effect.succeed(undefined))
      )),

    replayEventsAfter: (lastEventId, { send }) =>
      run(
        Effect.gen(function*() {
          const { logId, stream, streamId } = yield* locate(lastEventId)
          // Page by page up to what is stored now: finite, the SDK sends what comes later live.
          let after = logId
          for (;;) {
            const { events } = yield* log.read(stream, { after })
            if (events.length === 0) return streamId
            for (const event of events) {
              if (event.event === priming) continue
              yield* Effect.tryPromise(() => send(eventId(event.id, streamId), JSON.parse(event.data)))
            }
            after = events[events.length - 1]!.id
          }
        }).pipe(Effect.withSpan("McpEventStore.replayEventsAfter", { attributes: { "mcp.session": sessionId } }))
      )
  }
}

export const make = (sessionId: string): Effect.Effect<McpEventStore.McpEventStore, never, EventLog.EventLog> =>
  Effect.map(Effect.runtime<EventLog.EventLog>(), (runtime) => fromRuntime(runtime, sessionId))

export const forSessions: Effect.Effect<(sessionId: string) => McpEventStore.McpEventStore, never, EventLog.EventLog> =
  Effect.map(Effect.runtime<EventLog.EventLog>(), (runtime) => (sessionId) => fromRuntime(runtime, sessionId))
