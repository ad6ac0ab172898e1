/**
 * A real HTTP server on loopback for client tests: each request is recorded and
 * handed to the test's handler with its 1-based number.
 */
import { Effect, type Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

export interface RecordedRequest {
  readonly method: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
  /** `performance.now()` when the request arrived. */
  readonly at: number
  /** Set when the client's connection closed. */
  closedAt: number | undefined
}

export type Handler = (
  request: RecordedRequest,
  response: Http.ServerResponse,
  n: number
) => void | Promise<void>

export interface SseServer {
  readonly url: string
  readonly requests: Array<RecordedRequest>
}

export const sseHeaders = { "content-type": "text/event-stream", "cache-control": "no-store" }

export const make = (handler: Handler): Effect.Effect<SseServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ server: Http.Server; state: SseServer }>((resume) => {
      const requests: Array<RecordedRequest> = []
      const server = Http.createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (chunk: Buffer) => chunks.push(chunk))
        req.on("end", () => {
          const recorded: RecordedRequest = {
            method: req.method ?? "GET",
            headers: req.headers,
            body: Buffer.concat(chunks).toString("utf8"),
            at: performance.now(),
            closedAt: undefined
          }
          res.on("close", () => {
            recorded.closedAt = performance.now()
          })
          requests.push(recorded)
          void handler(recorded, res, requests.length)
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({ server, state: { url: `http://127.0.0.1:${port}/events`, requests } }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ state }) => state))

/** Writes and waits until the socket accepted the bytes, so a following cut lands after them. */
export const write = (response: Http.ServerResponse, text: string | Uint8Array): Promise<void> =>
  new Promise((resolve) => {
    if (response.destroyed) return resolve()
    response.write(text, () => resolve())
  })

/** Cuts the connection without a proper end of body. */
export const cut = (response: Http.ServerResponse): void => {
  response.socket?.destroy()
}
