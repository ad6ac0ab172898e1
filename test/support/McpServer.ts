/**
 * The MCP TypeScript SDK's own server on loopback, as an MCP user would run it:
 * one `McpServer` and `StreamableHTTPServerTransport` per MCP session (session
 * ids, an event store for resumability), and a tool `count` that sends
 * `notifications` logging messages on its POST stream and then its result.
 *
 * What the tests count is what really happened: `toolRuns` (how often the tool
 * ran), `requests` (every HTTP request, with its JSON-RPC method and
 * `Last-Event-ID`). `cutAfter` destroys a connection's socket from the server
 * side once that many SSE blocks have reached it: the client sees a body that
 * stops without its end, as after a network drop.
 */
import type { EventId, EventStore, StreamId } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import { McpServer as SdkMcpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js"
import { Effect, type Scope } from "effect"
import { randomUUID } from "node:crypto"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

/**
 * Replays each stream's events in the order they were stored. The SDK's example
 * store (`InMemoryEventStore`) is not usable here: it orders by id text, which
 * for ids made in the same millisecond is random, and it reads the stream back
 * from the id text split at `_`, which gives nothing for the GET stream
 * (`_GET_stream`), so a resumed GET stream would get no event.
 */
export class OrderedEventStore implements EventStore {
  private readonly streams = new Map<StreamId, Array<{ readonly id: EventId; readonly message: JSONRPCMessage }>>()
  private readonly positions = new Map<EventId, { readonly streamId: StreamId; readonly index: number }>()

  async storeEvent(streamId: StreamId, message: JSONRPCMessage): Promise<EventId> {
    let events = this.streams.get(streamId)
    if (events === undefined) this.streams.set(streamId, events = [])
    const id = `${streamId}:${events.length + 1}`
    this.positions.set(id, { streamId, index: events.length })
    events.push({ id, message })
    return id
  }

  async replayEventsAfter(
    lastEventId: EventId,
    { send }: { send: (eventId: EventId, message: JSONRPCMessage) => Promise<void> }
  ): Promise<StreamId> {
    const position = this.positions.get(lastEventId)
    // The SDK answers 500 to a throw; an unknown id must not look like a resumed stream.
    if (position === undefined) throw new Error(`unknown event id ${lastEventId}`)
    const events = this.streams.get(position.streamId)!
    for (let i = position.index + 1; i < events.length; i++) await send(events[i]!.id, events[i]!.message)
    return position.streamId
  }
}

export interface RecordedRequest {
  readonly method: string
  readonly sessionId: string | undefined
  readonly lastEventId: string | undefined
  readonly contentType: string | undefined
  /** The JSON-RPC method of a POST body, if it parsed. */
  readonly rpcMethod: string | undefined
  readonly status: () => number
}

export interface Options {
  /** Notifications the tool `count` sends before its result. */
  readonly notifications: number
  /** Pause before each of the tool's notifications, so a cut and a resume can land while it runs. */
  readonly notificationIntervalMillis?: number
  /**
   * How many SSE blocks (events with a `data:` line; the priming event is one) a
   * connection gets before its socket is destroyed; `undefined`: never cut.
   */
  readonly cutAfter?: (request: RecordedRequest) => number | undefined
}

export interface McpServer {
  /** The MCP endpoint. */
  readonly url: string
  readonly requests: Array<RecordedRequest>
  /** How many times the tool `count` ran. */
  readonly toolRuns: () => number
  /** Sends `count` logging notifications on the session's GET stream, each stored before it is sent. */
  readonly broadcast: (sessionId: string, count: number, intervalMillis?: number) => Promise<void>
  /** Ends the MCP session as the server may at any time: later requests for it get the SDK's 404. */
  readonly endSession: (sessionId: string) => Promise<void>
  /** Connections cut so far. */
  readonly cuts: () => number
}

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

const readBody = (req: Http.IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk)).on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
      .on("error", reject)
  })

/** SSE blocks in a written chunk: the SDK writes one `data:` line per event. */
const blocksIn = (chunk: unknown): number => {
  const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8")
  return text.match(/(^|\n)data:/g)?.length ?? 0
}

/**
 * Counts the SSE blocks written to `res` and, after the `limit`-th has been
 * handed to the socket, destroys the socket: no end of the chunked body. The
 * connection gets exactly `limit` blocks: a write made before the destroy (its
 * callback comes late on a busy machine) is dropped, as the cut would lose it.
 */
const cutAfterBlocks = (res: Http.ServerResponse, limit: number, onCut: () => void) => {
  let blocks = 0
  const write = res.write.bind(res) as (chunk: unknown, callback?: (error?: Error | null) => void) => boolean
  res.write = ((chunk: unknown, ...rest: Array<unknown>) => {
    const callback = rest.find((arg) => typeof arg === "function") as ((error?: Error | null) => void) | undefined
    if (blocks >= limit) {
      if (callback !== undefined) process.nextTick(callback)
      return true
    }
    blocks += blocksIn(chunk)
    if (blocks < limit) return write(chunk, callback)
    return write(chunk, (error) => {
      if (!res.socket?.destroyed) {
        onCut()
        res.socket?.destroy()
      }
      callback?.(error)
    })
  }) as typeof res.write
}

export const make = (options: Options): Effect.Effect<McpServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: Http.Server; readonly mcp: McpServer; readonly close: () => Promise<void> }>(
      (resume) => {
        const requests: Array<RecordedRequest> = []
        const sessions = new Map<string, { readonly server: SdkMcpServer; readonly transport: StreamableHTTPServerTransport }>()
        let toolRuns = 0
        let cuts = 0

        const newSession = async () => {
          const server = new SdkMcpServer({ name: "counter", version: "1.0.0" }, { capabilities: { logging: {} } })
          server.registerTool("count", { description: "Sends numbered notifications, then its result" }, async (extra) => {
            toolRuns++
            for (let n = 1; n <= options.notifications; n++) {
              if (options.notificationIntervalMillis !== undefined) await sleep(options.notificationIntervalMillis)
              await extra.sendNotification({ method: "notifications/message", params: { level: "info", data: n } })
            }
            return { content: [{ type: "text", text: `counted to ${options.notifications}` }] }
          })
          const transport = new StreamableHTTPServerTransport({
            sessionIdGenerator: () => randomUUID(),
            eventStore: new OrderedEventStore(),
            onsessioninitialized: (id) => void sessions.set(id, { server, transport })
          })
          await server.connect(transport)
          return transport
        }

        const http = Http.createServer(async (req, res) => {
          const method = req.method ?? "GET"
          const text = method === "POST" ? await readBody(req) : ""
          let body: unknown
          try {
            body = text === "" ? undefined : JSON.parse(text)
          } catch {
            body = undefined
          }
          const sessionId = req.headers["mcp-session-id"] as string | undefined
          const recorded: RecordedRequest = {
            method,
            sessionId,
            lastEventId: req.headers["last-event-id"] as string | undefined,
            contentType: req.headers["content-type"],
            rpcMethod: (body as { method?: string } | undefined)?.method,
            status: () => res.statusCode
          }
          requests.push(recorded)
          const limit = options.cutAfter?.(recorded)
          if (limit !== undefined) cutAfterBlocks(res, limit, () => cuts++)

          const transport = sessionId === undefined
            ? await newSession()
            : sessions.get(sessionId)?.transport
          if (transport === undefined) {
            // What the spec asks of a server that does not know the session.
            res.writeHead(404, { "content-type": "application/json" })
              .end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32001, message: "Session not found" }, id: null }))
            return
          }
          // A body that is not JSON goes to the SDK unparsed, so it answers as it would (400 or 415).
          await transport.handleRequest(req, res, body)
        })

        const mcp: McpServer = {
          url: "",
          requests,
          toolRuns: () => toolRuns,
          cuts: () => cuts,
          broadcast: async (sessionId, count, intervalMillis) => {
            const session = sessions.get(sessionId)
            if (session === undefined) throw new Error(`no MCP session ${sessionId}`)
            for (let n = 1; n <= count; n++) {
              await session.server.sendLoggingMessage({ level: "info", data: n })
              if (intervalMillis !== undefined) await sleep(intervalMillis)
            }
          },
          endSession: async (sessionId) => {
            // Closed but kept: the SDK's transport itself answers 404 from now on.
            await sessions.get(sessionId)?.transport.close()
          }
        }
        http.listen(0, "127.0.0.1", () => {
          const { port } = http.address() as AddressInfo
          resume(Effect.succeed({
            server: http,
            mcp: { ...mcp, url: `http://127.0.0.1:${port}/mcp` },
            close: async () => {
              for (const { server } of sessions.values()) await server.close()
            }
          }))
        })
      }
    ),
    ({ close, server }) =>
      Effect.promise(async () => {
        await close()
        server.closeAllConnections()
        await new Promise<void>((resolve) => server.close(() => resolve()))
      })
  ).pipe(Effect.map(({ mcp }) => mcp))
