/**
 * A plain reader of one SSE response over node:http (its own socket, no agent),
 * parsed with eventsource-parser: what a test needs to see a status, headers,
 * the exact events and comments, to cut the connection after some events, or to
 * read slowly.
 */
import { createParser, type EventSourceMessage } from "eventsource-parser"
import * as Http from "node:http"

export interface Response {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  /** The body as text, for a refusal's one line (left empty for event streams). */
  readonly text: string
  /** The events, unless `onEvent` took them. */
  readonly events: Array<EventSourceMessage>
  /** How many events came. */
  readonly count: number
  /** The last event's id. */
  readonly lastId: string | undefined
  readonly comments: Array<string>
  readonly retry: number | undefined
  /** Whether the reader cut the connection (`cutAfter`, `until`) rather than the server ending it. */
  readonly cut: boolean
}

export interface ReadOptions {
  readonly method?: string
  readonly headers?: Record<string, string>
  /** Takes each event instead of keeping it (a long stream's events need not stay in memory). */
  readonly onEvent?: (event: EventSourceMessage) => void
  /** Cuts the connection once this many events came: events after them, even in the same read, are not taken. */
  readonly cutAfter?: number
  /** Cuts the connection when this says so, after each parsed chunk. */
  readonly until?: (response: Response) => boolean
  /** Events per second this reader takes at most (it pauses the socket between). */
  readonly eventsPerSecond?: number
  /** The most events this reader may have taken by now; it pauses the socket and looks again every 20 ms. */
  readonly allowed?: () => number
  /** Cuts the connection when aborted. */
  readonly signal?: AbortSignal
  /** Gives up (cuts) after this long. */
  readonly timeoutMillis?: number
}

export const read = (url: string, options: ReadOptions = {}): Promise<Response> =>
  new Promise((resolve, reject) => {
    const request = Http.request(url, { method: options.method ?? "GET", headers: options.headers, agent: false }, (res) => {
      const events: Array<EventSourceMessage> = []
      let count = 0
      let lastId: string | undefined
      const comments: Array<string> = []
      let retry: number | undefined
      let text = ""
      const result = (cut: boolean): Response => ({
        status: res.statusCode ?? 0,
        headers: res.headers,
        text,
        events,
        count,
        lastId,
        comments,
        retry,
        cut
      })
      let done = false
      const finish = (cut: boolean) => {
        if (done) return
        done = true
        clearTimeout(timer)
        if (cut) res.destroy()
        resolve(result(cut))
      }
      const timer = options.timeoutMillis === undefined ? undefined : setTimeout(() => finish(true), options.timeoutMillis)
      const streaming = (res.headers["content-type"] ?? "").startsWith("text/event-stream")
      const parser = createParser({
        onEvent: (event) => {
          if (options.cutAfter !== undefined && count >= options.cutAfter) return
          count++
          if (event.id !== undefined) lastId = event.id
          if (options.onEvent === undefined) events.push(event)
          else options.onEvent(event)
        },
        onComment: (comment) => comments.push(comment),
        onRetry: (millis) => (retry = millis)
      })
      const started = performance.now()
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        // Data already read from the socket can still come after a cut: it is not this read's.
        if (done) return
        if (!streaming) {
          text += chunk
          return
        }
        parser.feed(chunk)
        if (options.cutAfter !== undefined && count >= options.cutAfter) return finish(true)
        if (options.until?.(result(true)) === true) return finish(true)
        if (options.allowed !== undefined && count > options.allowed()) {
          res.pause()
          const wait = () => count > options.allowed!() && !done ? void setTimeout(wait, 20) : res.resume()
          setTimeout(wait, 20)
        }
        if (options.eventsPerSecond !== undefined) {
          const ahead = count / options.eventsPerSecond * 1000 - (performance.now() - started)
          if (ahead > 0) {
            res.pause()
            setTimeout(() => res.resume(), ahead)
          }
        }
      })
      options.signal?.addEventListener("abort", () => finish(true))
      res.on("end", () => finish(false))
      res.on("error", () => finish(true))
      res.on("close", () => finish(!res.complete))
    })
    request.on("error", (error) => options.signal?.aborted === true ? undefined : reject(error))
    options.signal?.addEventListener("abort", () => request.destroy())
    request.end()
  })
