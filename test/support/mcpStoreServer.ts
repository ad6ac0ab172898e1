/**
 * The MCP SDK's own server (`McpServer` + `StreamableHTTPServerTransport`, one per
 * MCP session) on loopback with a durable event store per session: the store the
 * McpEventStore tests put under it. A tool `count` sends `notifications` logging
 * messages on its POST stream, then its result.
 *
 * A request for a session the process does not hold is answered as an app that
 * keeps its sessions would after a restart, when `restoreSessions` is set: the
 * session is made again with the same id (the SDK has no way to take one back, so
 * the app sends the new transport an initialize itself), else with the spec's 404.
 * `cutAfter` destroys a connection's socket once that many SSE blocks reached it.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import { type EventStore, StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import type { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js"
import { randomUUID } from "node:crypto"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

export interface Options {
  readonly eventStoreFor: (sessionId: string) => EventStore
  readonly notifications: number
  readonly notificationIntervalMillis?: number
  readonly cutAfter?: (request: { readonly method: string; readonly rpcMethod: string | undefined }) => number | undefined
  readonly restoreSessions?: boolean
  readonly port?: number
}

export interface Recorded {
  readonly method: string
  readonly sessionId: string | undefined
  readonly lastEventId: string | undefined
  readonly rpcMethod: string | undefined
  readonly status: () => number
}

export interface Served {
  readonly url: string
  readonly port: number
  readonly requests: Array<Recorded>
  readonly toolRuns: () => number
  readonly cuts: () => number
  /** Sends `count` logging notifications on the session's GET stream (stored even with no reader). */
  readonly broadcast: (sessionId: string, count: number) => Promise<void>
  readonly close: () => Promise<void>
}

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

const readBody = (req: Http.IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk)).on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
      .on("error", reject)
  })

/** Lets `limit` SSE blocks (`data:` lines) through, then destroys the socket: a body cut without its end. */
const cutAfterBlocks = (res: Http.ServerResponse, limit: number, onCut: () => void) => {
  let blocks = 0
  const write = res.write.bind(res) as (chunk: unknown, callback?: (error?: Error | null) => void) => boolean
  res.write = ((chunk: unknown, ...rest: Array<unknown>) => {
    const callback = rest.find((arg) => typeof arg === "function") as ((error?: Error | null) => void) | undefined
    if (blocks >= limit) {
      if (callback !== undefined) process.nextTick(callback)
      return true
    }
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8")
    blocks += text.match(/(^|\n)data:/g)?.length ?? 0
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

export const start = (options: Options): Promise<Served> => {
  const requests: Array<Recorded> = []
  const sessions = new Map<string, { readonly server: McpServer; readonly transport: StreamableHTTPServerTransport }>()
  let toolRuns = 0
  let cuts = 0

  const newSession = async (sessionId: string) => {
    const server = new McpServer({ name: "counter", version: "1.0.0" }, { capabilities: { logging: {} } })
    server.registerTool("count", { description: "Sends numbered notifications, then its result" }, async (extra) => {
      toolRuns++
      for (let n = 1; n <= options.notifications; n++) {
        if (options.notificationIntervalMillis !== undefined) await sleep(options.notificationIntervalMillis)
        await extra.sendNotification({ method: "notifications/message", params: { level: "info", data: n } })
      }
      return { content: [{ type: "text", text: `counted to ${options.notifications}` }] }
    })
    // The store is wanted before the SDK generates the id: the id is made first.
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => sessionId,
      eventStore: options.eventStoreFor(sessionId),
      onsessioninitialized: (id) => void sessions.set(id, { server, transport })
    })
    await server.connect(transport)
    return transport
  }

  const restore = async (sessionId: string) => {
    const transport = await newSession(sessionId)
    const web = (transport as unknown as { _webStandardTransport: WebStandardStreamableHTTPServerTransport })
      ._webStandardTransport
    const response = await web.handleRequest(
      new Request("http://127.0.0.1/mcp", {
        method: "POST",
        headers: { accept: "application/json, text/event-stream", "content-type": "application/json" },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 0,
          method: "initialize",
          params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "restore", version: "1" } }
        })
      })
    )
    await response.text()
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
    const rpcMethod = (body as { method?: string } | undefined)?.method
    requests.push({
      method,
      sessionId,
      lastEventId: req.headers["last-event-id"] as string | undefined,
      rpcMethod,
      status: () => res.statusCode
    })
    const limit = options.cutAfter?.({ method, rpcMethod })
    if (limit !== undefined) cutAfterBlocks(res, limit, () => cuts++)

    const transport = sessionId === undefined
      ? await newSession(randomUUID())
      : sessions.get(sessionId)?.transport ?? (options.restoreSessions ? await restore(sessionId) : undefined)
    if (transport === undefined) {
      res.writeHead(404, { "content-type": "application/json" })
        .end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32001, message: "Session not found" }, id: null }))
      return
    }
    await transport.handleRequest(req, res, body)
  })

  return new Promise((resolve) => {
    http.listen(options.port ?? 0, "127.0.0.1", () => {
      const { port } = http.address() as AddressInfo
      resolve({
        url: `http://127.0.0.1:${port}/mcp`,
        port,
        requests,
        toolRuns: () => toolRuns,
        cuts: () => cuts,
        broadcast: async (sessionId, count) => {
          const session = sessions.get(sessionId)
          if (session === undefined) throw new Error(`no MCP session ${sessionId}`)
          for (let n = 1; n <= count; n++) await session.server.sendLoggingMessage({ level: "info", data: n })
        },
        close: async () => {
          for (const { server } of sessions.values()) await server.close()
          http.closeAllConnections()
          await new Promise<void>((done) => http.close(() => done()))
        }
      })
    })
  })
}
