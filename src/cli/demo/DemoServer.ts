/**
 * A local SSE server to try the client against: numbered events, `Last-Event-ID`
 * honoured with a little replay overlap (as real servers often do), and
 * connections dropped now and then, mid-stream. Given the demo page's script it
 * serves the page too (GET /). Every answer allows any origin (CORS), so a page
 * served elsewhere can read the stream; `/old` redirects (307) to `/events`.
 */
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { Data, Effect, type Scope } from "effect"
import * as Sse from "../../wire/Sse.js"
import { SseEvent } from "../../wire/SseEvent.js"
import { pageHtml } from "./ui/html.js"

export class DemoServerError extends Data.TaggedError("DemoServerError")<{
  readonly port: number
  readonly cause: unknown
}> {
  override get message() {
    return `demo server could not listen on 127.0.0.1:${this.port}: ${String(this.cause)}`
  }
}

export interface Options {
  /** 0 picks a free port. */
  readonly port?: number
  /** Cut the connection after this many events (0: never); default 0. */
  readonly dropEvery?: number
  /** Events per second per connection; default 1,000. */
  readonly eventsPerSecond?: number
  /** Events before the requested `Last-Event-ID` sent again on resume; default 3. */
  readonly replayOverlap?: number
  /** Events in all; after the last one the server answers 204 (0: endless); default 0. */
  readonly totalEvents?: number
  /** `retry:` sent at the start of each response, in ms; default 250. */
  readonly retryMillis?: number
  /** The demo page's bundled script (`DemoPage.load`): GET / serves the page, GET /page.js this. Default: no page. */
  readonly pageScript?: string
}

/** One request as the server saw it. */
interface Seen {
  readonly method: string
  readonly path: string
  readonly lastEventId: string | undefined
  /** A CORS preflight's `Access-Control-Request-Headers`, lower case. */
  readonly requestHeaders: string | undefined
}

export interface DemoServer {
  readonly port: number
  /** The event stream: `http://127.0.0.1:PORT/events`. */
  readonly url: string
  /** `http://127.0.0.1:PORT`: the page, when served, is at `${origin}/`. */
  readonly origin: string
  /** Stream connections accepted so far (the newest 10,000), and the `Last-Event-ID` each one sent. */
  readonly requests: ReadonlyArray<string | undefined>
  /** Every request (the newest 10,000), the page's, preflights and redirects included. */
  readonly seen: ReadonlyArray<Seen>
}

/**
 * Any origin may read the stream. A reconnect's `Last-Event-ID` is not a
 * CORS-safelisted header, so the browser asks first; `Cache-Control` is allowed
 * too for callers that add it (the client itself sends none: fetch's
 * `cache: "no-store"` adds its own after the CORS check).
 */
const cors = { "access-control-allow-origin": "*" }
const preflightAnswer = {
  ...cors,
  "access-control-allow-methods": "GET",
  "access-control-allow-headers": "Last-Event-ID, Cache-Control"
}

/** Requests remembered in `requests` and `seen`: the newest, so a server left running does not grow. */
const remembered = 10_000
const remember = <A>(list: Array<A>, item: A) => {
  if (list.push(item) > remembered) list.shift()
}

/** The event numbered `n` (from 1), the same on every run. */
const eventNumber = (n: number): SseEvent =>
  new SseEvent({ id: String(n), event: "tick", data: JSON.stringify({ n }) }, true)

/** Starts the server in the current scope; closing the scope stops it. */
export const make = (options: Options = {}): Effect.Effect<DemoServer, DemoServerError, Scope.Scope> => {
  const dropEvery = options.dropEvery ?? 0
  const perTick = Math.max(1, Math.round((options.eventsPerSecond ?? 1_000) / 100))
  const overlap = options.replayOverlap ?? 3
  const total = options.totalEvents ?? 0
  const retry = options.retryMillis ?? 250
  const requests: Array<string | undefined> = []
  const seen: Array<Seen> = []
  const page = options.pageScript

  const handle = (req: Http.IncomingMessage, res: Http.ServerResponse) => {
    const lastEventId = req.headers["last-event-id"]
    const last = typeof lastEventId === "string" ? lastEventId : undefined
    const path = req.url ?? "/"
    const pathname = path.split("?")[0]
    const requestHeaders = req.headers["access-control-request-headers"]
    remember(seen, { method: req.method ?? "GET", path, lastEventId: last, requestHeaders })
    if (req.method === "OPTIONS") return res.writeHead(204, preflightAnswer).end()
    if (pathname === "/old") return res.writeHead(307, { ...cors, location: `/events${path.slice(4)}` }).end()
    // A browser asks for it unprompted: not a stream connection.
    if (pathname === "/favicon.ico") return res.writeHead(404).end()
    if (page !== undefined && pathname === "/") {
      return res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" }).end(pageHtml)
    }
    if (page !== undefined && pathname === "/page.js") {
      return res.writeHead(200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" }).end(page)
    }
    remember(requests, last)
    const resumeAfter = last !== undefined && /^\d+$/.test(last) ? Number(last) : 0
    let next = Math.max(1, resumeAfter + 1 - overlap)
    // Judged by the resume point, not `next`: with an overlap the replay alone would
    // otherwise be sent again, and the client reconnect, forever.
    if (total > 0 && resumeAfter >= total) {
      res.writeHead(204, cors).end()
      return
    }
    res.writeHead(200, { ...cors, "content-type": "text/event-stream", "cache-control": "no-store" })
    res.write(`retry: ${retry}\n: resuming after ${last ?? "(start)"}\n\n`)
    let sent = 0
    // A tick every 10 ms writes a batch, so high rates need no tighter timer.
    const timer = setInterval(() => {
      let batch = ""
      for (let i = 0; i < perTick; i++) {
        if (total > 0 && next > total) {
          clearInterval(timer)
          res.end(batch)
          return
        }
        batch += Sse.encode(eventNumber(next++))
        if (dropEvery > 0 && ++sent % dropEvery === 0) {
          // Cut mid-event: half of the next event goes out, then the socket dies.
          const partial = Sse.encode(eventNumber(next))
          clearInterval(timer)
          res.write(batch + partial.slice(0, partial.length >> 1), () => res.destroy())
          return
        }
      }
      res.write(batch)
    }, 10)
    res.on("close", () => clearInterval(timer))
  }

  return Effect.acquireRelease(
    Effect.async<Http.Server, DemoServerError>((resume) => {
      const server = Http.createServer(handle)
      server.once("error", (cause) => resume(Effect.fail(new DemoServerError({ port: options.port ?? 0, cause }))))
      server.listen(options.port ?? 0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map((server) => {
    const port = (server.address() as AddressInfo).port
    const origin = `http://127.0.0.1:${port}`
    return { port, url: `${origin}/events`, origin, requests, seen }
  }))
}
