/**
 * A scripted server for client tests that need no socket, in the style of
 * @effect/platform's own HttpClient tests: an `HttpClient.make` whose requests are
 * recorded (with their TestClock time) and answered by the test's handler with a
 * web `Response`. Bodies are delivered one read per chunk, then closed, cut (the
 * read fails, as a reset connection does) or left hanging until the request is
 * aborted.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Clock, Effect, Layer } from "effect"

export interface RecordedRequest {
  readonly request: HttpClientRequest.HttpClientRequest
  readonly headers: Readonly<Record<string, string | undefined>>
  /** Virtual time when it was sent. */
  readonly at: number
  readonly signal: AbortSignal
}

export type Handler = (request: RecordedRequest, n: number) => Response | Effect.Effect<Response>

export interface ScriptedServer {
  readonly requests: Array<RecordedRequest>
  readonly layer: Layer.Layer<HttpClient.HttpClient>
}

export const make = (handler: Handler): ScriptedServer => {
  const requests: Array<RecordedRequest> = []
  const client = HttpClient.make((request, _url, signal) =>
    Effect.flatMap(Clock.currentTimeMillis, (at) => {
      const recorded: RecordedRequest = { request, headers: request.headers, at, signal }
      requests.push(recorded)
      const reply = handler(recorded, requests.length)
      return Effect.map(Effect.isEffect(reply) ? reply : Effect.succeed(reply), (response) =>
        HttpClientResponse.fromWeb(request, response))
    })
  )
  return { requests, layer: Layer.succeed(HttpClient.HttpClient, client) }
}

/** How a body ends after its chunks. */
export type End = "close" | "cut" | "hang"

const encoder = new TextEncoder()

/** A body that hands out one chunk per read, then ends as `end` says. */
export const body = (
  chunks: ReadonlyArray<string | Uint8Array>,
  end: End,
  signal: AbortSignal
): ReadableStream<Uint8Array> => {
  let next = 0
  return new ReadableStream<Uint8Array>({
    // Reads are served from `pull`, not queued up front: erroring a stream drops
    // what is queued, and a cut must come after the bytes before it.
    pull(controller) {
      // An aborted request reads nothing more, as a closed socket would.
      if (signal.aborted) return controller.error(new DOMException("aborted", "AbortError"))
      if (next < chunks.length) {
        const chunk = chunks[next++]!
        return controller.enqueue(typeof chunk === "string" ? encoder.encode(chunk) : chunk)
      }
      if (end === "close") return controller.close()
      if (end === "cut") return controller.error(new TypeError("terminated: other side closed"))
      return new Promise<void>((resolve) => {
        signal.addEventListener("abort", () => {
          controller.error(new DOMException("aborted", "AbortError"))
          resolve()
        }, { once: true })
      })
    }
  }, { highWaterMark: 0 })
}

export const sseHeaders = { "content-type": "text/event-stream" }

/** A 200 event stream of `chunks`, each one read. */
export const events = (
  request: RecordedRequest,
  chunks: ReadonlyArray<string | Uint8Array>,
  end: End = "close"
): Response => new Response(body(chunks, end, request.signal), { status: 200, headers: sseHeaders })

/** A response without a body. */
export const status = (code: number, headers?: Record<string, string>): Response =>
  new Response(null, { status: code, headers })
