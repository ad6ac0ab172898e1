/**
 * The example of docs/MCP.md ("Consuming an MCP server"), type-checked by `npx tsc --noEmit`
 * and run by test/Mcp.test.ts against the MCP SDK's own server. In docs/MCP.md the
 * import below reads `from "effect-sse-resume"`; test/ReadmeExamples.test.ts checks the
 * two are otherwise the same.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Chunk, Data, Effect, Stream } from "effect"
import { CursorStore, EventTracker, SessionManager, SseClient, type SseEvent } from "../../src/index.js"

const protocolVersion = "2025-11-25"

/** An MCP session: where it lives and the headers every request after `initialize` carries. */
export interface McpSession {
  readonly url: string
  readonly id: string
  readonly headers: { readonly "mcp-session-id": string; readonly "mcp-protocol-version": string }
}

/** A JSON-RPC message: a notification, or the response to request `id`. */
export interface JsonRpcMessage {
  readonly id?: number | string
  readonly method?: string
  readonly params?: unknown
  readonly result?: unknown
  readonly error?: unknown
}

export class McpSessionMissing extends Data.TaggedError("McpSessionMissing")<{ readonly url: string }> {}

/** MCP servers answer 406 unless a POST accepts both. */
const accept = { accept: "application/json, text/event-stream" }

const post = (url: string, headers: object, message: object) =>
  HttpClientRequest.post(url).pipe(
    HttpClientRequest.setHeaders({ ...accept, ...headers }),
    HttpClientRequest.bodyUnsafeJson({ jsonrpc: "2.0", ...message })
  )

/** `initialize`: the answer's `mcp-session-id` header names the session. */
export const initialize = (url: string) =>
  Effect.gen(function*() {
    const client = HttpClient.filterStatusOk(yield* HttpClient.HttpClient)
    const response = yield* client.execute(post(url, {}, {
      id: 0,
      method: "initialize",
      params: { protocolVersion, capabilities: {}, clientInfo: { name: "my-client", version: "1.0.0" } }
    }))
    const id = response.headers["mcp-session-id"]
    if (id === undefined) return yield* new McpSessionMissing({ url })
    yield* response.text // the initialize result
    const headers = { "mcp-session-id": id, "mcp-protocol-version": protocolVersion }
    yield* client.execute(post(url, headers, { method: "notifications/initialized" }))
    return { url, id, headers } satisfies McpSession
  }).pipe(Effect.scoped)

/**
 * The messages among `events`. MCP servers open a POST stream with a priming
 * event (an id and empty data) so that a cut before the first message can be
 * resumed: the resume point moves to it; it is no message.
 */
export const messagesOf = (events: Chunk.Chunk<SseEvent>): Array<JsonRpcMessage> =>
  Chunk.toArray(events).flatMap((event) => event.data === "" ? [] : [JSON.parse(event.data) as JsonRpcMessage])

/**
 * The session's GET stream (server notifications), from its durable cursor.
 * MCP event ids belong to one stream, so each MCP stream has its own cursor.
 */
export const followNotifications = <E, R>(
  session: McpSession,
  handle: (message: JsonRpcMessage) => Effect.Effect<void, E, R>
) =>
  Effect.gen(function*() {
    const cursor = yield* (yield* SessionManager.SessionManager).hold(`${session.id}/get`)
    const request = HttpClientRequest.get(session.url).pipe(HttpClientRequest.setHeaders({ ...accept, ...session.headers }))
    yield* SseClient.stream(request, { tracker: yield* EventTracker.copy(cursor.tracker) }).pipe(
      // A chunk moves the cursor once its messages are handled.
      Stream.runForEachChunk((events) =>
        Effect.zipRight(Effect.forEach(messagesOf(events), handle, { discard: true }), cursor.tracker.recordAll(events))
      )
    )
  }).pipe(Effect.scoped)

/**
 * `tools/call`: the POST is sent once. A cut resumes with a GET and
 * `Last-Event-ID` (what MCP servers expect); after a restart, the stored cursor
 * says the POST was sent, and the client starts with that GET. Returns the
 * notifications and the result.
 */
export const callTool = (session: McpSession, requestId: number, name: string, args: object) =>
  Effect.gen(function*() {
    const key = `${session.id}/${requestId}`
    const cursor = yield* (yield* SessionManager.SessionManager).hold(key)
    const request = post(session.url, session.headers, { id: requestId, method: "tools/call", params: { name, arguments: args } })
    const messages = yield* SseClient.stream(request, { tracker: cursor.tracker, resumeWith: "get" }).pipe(
      Stream.mapChunks((events) => Chunk.unsafeFromArray(messagesOf(events))),
      // A resumed stream may stay open after the result: the result ends the call.
      Stream.takeUntil((message) => message.id === requestId),
      Stream.runCollect
    )
    // The call is over: its cursor will never be resumed.
    yield* (yield* SessionManager.SessionManager).close(key)
    yield* (yield* CursorStore.CursorStore).remove(key)
    return Chunk.toArray(messages)
  }).pipe(Effect.scoped)

/**
 * A 404 means the server ended the MCP session: its streams cannot be resumed.
 * Forget their cursors, then `initialize` a new session.
 */
export const forgetSession = (session: McpSession, requestIds: Iterable<number>) =>
  Effect.gen(function*() {
    const sessions = yield* SessionManager.SessionManager
    const store = yield* CursorStore.CursorStore
    for (const key of [`${session.id}/get`, ...Array.from(requestIds, (id) => `${session.id}/${id}`)]) {
      yield* sessions.close(key)
      yield* store.remove(key)
    }
  })

/**
 * Notifications across MCP sessions: when the server ends one, the GET stream
 * fails with `SseHttpError` 404; its cursor is dropped and a new session starts.
 */
export const followAcrossSessions = <E, R>(url: string, handle: (message: JsonRpcMessage) => Effect.Effect<void, E, R>) =>
  Effect.gen(function*() {
    const session = yield* initialize(url)
    return yield* followNotifications(session, handle).pipe(
      Effect.as("ended" as const),
      Effect.catchIf(
        (error) => error instanceof SseClient.SseHttpError && error.status === 404,
        () => Effect.as(forgetSession(session, []), "session gone" as const)
      )
    )
  }).pipe(Effect.repeat({ while: (outcome) => outcome === "session gone" }))
