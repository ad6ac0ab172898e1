/**
 * A durable `EventStore` for MCP servers (the `@modelcontextprotocol/sdk` ≥ 1.26
 * Streamable HTTP transport's resumability hook), kept in an `EventLog`: a server
 * restarted on the same log replays what its sessions' streams stored before.
 *
 * The SDK's interface carries no session id, so a store is made per MCP session
 * and every stream it is given lives in the log under `mcp/<session>/<stream>`
 * (both parts URI-encoded): two sessions' `_GET_stream` never meet. The event ids
 * it hands out are `<log id>.<stream>`; a replay reads that stream *of its own
 * session* after the log id, and the log refuses an id its stream never issued
 * (its generation is drawn once per stream name, log-wide), so an event id of
 * another session, a made-up or malformed one replays nothing.
 *
 * The SDK answers a resume the store does not recognise with 400 when
 * `getStreamIdForEventId` gives nothing (this store implements it, checking the id
 * against the log), and with 500 when `replayEventsAfter` rejects; never 404,
 * which clients read as "session gone". A replay is finite: it sends the events
 * stored after the id and returns; the SDK then sends live ones on that stream.
 *
 * For MCP protocol versions up to 2025-11-25 (later ones drop Last-Event-ID
 * resumption). The priming events the transport stores (an id, no message) are
 * kept as resume points and never replayed as messages.
 */
import { Cause, Data, Effect, Exit, Runtime } from "effect"
import { EventLog } from "./EventLog.js"

/** A JSON-RPC message as the SDK gives and takes it (kept structural: the SDK is not a dependency). */
export type JsonRpcMessage = Readonly<Record<string, unknown>>

/** The SDK's `EventStore`, structurally: an instance is assignable to it. */
export interface McpEventStore {
  /** Appends `message` to the session's stream `streamId`; the event id to send with it. */
  readonly storeEvent: (streamId: string, message: JsonRpcMessage) => Promise<string>
  /** The stream of an event id this session's store issued; nothing for any other id (the SDK answers 400). */
  readonly getStreamIdForEventId: (eventId: string) => Promise<string | undefined>
  /**
   * Sends the stored messages after `lastEventId`, in order, and returns its stream;
   * rejects with `UnknownMcpEventId` for an id not issued by this session's store.
   */
  readonly replayEventsAfter: (
    lastEventId: string,
    options: { readonly send: (eventId: string, message: JsonRpcMessage) => Promise<void> }
  ) => Promise<string>
}

/**
 * `eventId` was not issued by this session's store: not of its form, of another
 * session or stream, or trimmed from the log.
 */
export class UnknownMcpEventId extends Data.TaggedError("UnknownMcpEventId")<{
  readonly sessionId: string
  readonly eventId: string
  readonly reason: "malformed" | "not-in-session" | "trimmed"
}> {
  override get message() {
    return `event id "${this.eventId}" cannot be resumed in MCP session "${this.sessionId}" (${this.reason})`
  }
}

/** The log stream that holds `streamId` of `sessionId`. */
export const streamName = (sessionId: string, streamId: string): string =>
  `mcp/${encodeURIComponent(sessionId)}/${encodeURIComponent(streamId)}`

// --- Machinery ---

/** The SSE event type the priming events are kept under: resume points, never replayed as messages. */
const priming = "mcp-priming"

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

const fromRuntime = (runtime: Runtime.Runtime<EventLog>, sessionId: string): McpEventStore => {
  const log = Runtime.runSync(runtime)(EventLog)
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

/** The store of one MCP session, running on the `EventLog` (and the rest of the runtime) it is made in. */
export const make = (sessionId: string): Effect.Effect<McpEventStore, never, EventLog> =>
  Effect.map(Effect.runtime<EventLog>(), (runtime) => fromRuntime(runtime, sessionId))

/**
 * A function giving each MCP session its store, for the SDK's Promise-based code:
 * the SDK wants the store when it makes the transport, before it generates the
 * session id, so generate the id first:
 *
 *   const id = randomUUID()
 *   new StreamableHTTPServerTransport({ sessionIdGenerator: () => id, eventStore: storeFor(id) })
 */
export const forSessions: Effect.Effect<(sessionId: string) => McpEventStore, never, EventLog> = Effect.map(
  Effect.runtime<EventLog>(),
  (runtime) => (sessionId) => fromRuntime(runtime, sessionId)
)
