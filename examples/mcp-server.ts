/**
 * An MCP server to try the README's MCP examples against (`sse-resume tail … /mcp`,
 * docs/MCP.md): the MCP TypeScript SDK's own `McpServer` over
 * `StreamableHTTPServerTransport`, stateful (session ids) and resumable (an event
 * store), with one tool, `count`, that sends numbered `notifications/message`
 * on its POST stream and then its result.
 *
 *   npx tsx examples/mcp-server.ts [--port 3000] [--notifications 5] [--cut-after N]
 *
 * It opens an MCP session on itself (`initialize`, as a client would) and prints
 * `export SID=…`, the session id the README's `tail` example sends. `--cut-after N`
 * destroys each `tools/call` POST stream's socket after N SSE blocks (the priming
 * event is one), as a network drop would: `tail --resume-with get` then resumes it
 * by GET with `Last-Event-ID`. Ctrl-C stops it.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import {
  type EventId,
  type EventStore,
  StreamableHTTPServerTransport,
  type StreamId
} from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js"
import { randomUUID } from "node:crypto"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { parseArgs } from "node:util"

const protocolVersion = "2025-11-25"

/**
 * Replays each stream's events in the order they were stored. The SDK's example
 * `InMemoryEventStore` orders by id text, random for ids made in the same
 * millisecond, and finds nothing for a resumed GET stream (`_GET_stream`).
 */
class OrderedEventStore implements EventStore {
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
    // The SDK answers 500 to a throw: an unknown id must not look like a resumed stream.
    if (position === undefined) throw new Error(`unknown event id ${lastEventId}`)
    const events = this.streams.get(position.streamId)!
    for (let i = position.index + 1; i < events.length; i++) await send(events[i]!.id, events[i]!.message)
    return position.streamId
  }
}

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

const readBody = (req: Http.IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
      .on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
      .on("error", reject)
  })

/** After `limit` SSE blocks (`data:` lines) have reached the socket, destroys it: a body cut without its end. */
const cutAfterBlocks = (res: Http.ServerResponse, limit: number) => {
  let blocks = 0
  const write = res.write.bind(res) as (chunk: unknown, callback?: (error?: Error | null) => void) => boolean
  res.write = ((chunk: unknown, ...rest: Array<unknown>) => {
    const callback = rest.find((arg) => typeof arg === "function") as ((error?: Error | null) => void) | undefined
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8")
    blocks += text.match(/(^|\n)data:/g)?.length ?? 0
    if (blocks < limit) return write(chunk, callback)
    return write(chunk, (error) => {
      res.socket?.destroy()
      callback?.(error)
    })
  }) as typeof res.write
}

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "3000" },
    notifications: { type: "string", default: "5" },
    "cut-after": { type: "string" }
  }
})
const notifications = Number(args.notifications)
const cutAfter = args["cut-after"] === undefined ? undefined : Number(args["cut-after"])

const sessions = new Map<string, StreamableHTTPServerTransport>()

/** One SDK server and transport per MCP session, as the SDK's own examples run it. */
const newSession = async () => {
  const server = new McpServer({ name: "counter", version: "1.0.0" }, { capabilities: { logging: {} } })
  server.registerTool("count", { description: "Sends numbered notifications, then its result" }, async (extra) => {
    for (let n = 1; n <= notifications; n++) {
      // Paced, so a reader sees it stream (and a cut lands while it runs).
      await sleep(100)
      await extra.sendNotification({ method: "notifications/message", params: { level: "info", data: n } })
    }
    return { content: [{ type: "text", text: `counted to ${notifications}` }] }
  })
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    eventStore: new OrderedEventStore(),
    onsessioninitialized: (id) => void sessions.set(id, transport)
  })
  await server.connect(transport)
  return transport
}

const http = Http.createServer(async (req, res) => {
  const text = req.method === "POST" ? await readBody(req) : ""
  let body: unknown
  try {
    body = text === "" ? undefined : JSON.parse(text)
  } catch {
    // Not JSON: the SDK answers it as it would (400 or 415).
    body = undefined
  }
  const sessionId = req.headers["mcp-session-id"]
  const transport = typeof sessionId === "string" ? sessions.get(sessionId) : await newSession()
  if (transport === undefined) {
    // What the spec asks of a server that does not know the session.
    res.writeHead(404, { "content-type": "application/json" })
      .end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32001, message: "Session not found" }, id: null }))
    return
  }
  if (cutAfter !== undefined && (body as { method?: string } | undefined)?.method === "tools/call") {
    cutAfterBlocks(res, cutAfter)
  }
  await transport.handleRequest(req, res, body)
})

/** `initialize` and `notifications/initialized`, as a client would: the session the printed SID names. */
const openSession = async (url: string): Promise<string> => {
  const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" }
  const initialize = await fetch(url, {
    method: "POST",
    headers,
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: { protocolVersion, capabilities: {}, clientInfo: { name: "mcp-server example", version: "1.0.0" } }
    })
  })
  const id = initialize.headers.get("mcp-session-id")
  await initialize.text()
  if (!initialize.ok || id === null) throw new Error(`initialize answered ${initialize.status} without a session id`)
  const initialized = await fetch(url, {
    method: "POST",
    headers: { ...headers, "mcp-session-id": id, "mcp-protocol-version": protocolVersion },
    body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })
  })
  await initialized.text()
  return id
}

http.listen(Number(args.port), "127.0.0.1", async () => {
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`
  console.log(`MCP server on ${url} (tool: count, ${notifications} notifications${
    cutAfter === undefined ? "" : `, tools/call streams cut after ${cutAfter} blocks`
  })`)
  console.log(`export SID=${await openSession(url)}`)
})
