/**
 * A response body as the SSE reader pulls it: `take` what has arrived, or
 * `wait` until something has. The layers' own `response.stream` costs a channel
 * executor per body, and on Node a new latch wait per read, all on every chunk
 * (with one ~100 B event per socket read, more than parsing it): where the
 * response holds a body we know, it is read directly — undici's Node Readable
 * (`source.body`), node:http's IncomingMessage (`source`), fetch's web
 * ReadableStream (`source.body`). Anything else (a test client, a body we must
 * decode) is pulled from `response.stream`.
 *
 * Reads happen only when the reader asks: a Node Readable stays in paused mode,
 * so its socket is read as far as its buffer's high-water mark and no further,
 * and a web stream is read a chunk per `wait`.
 */
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

export interface BodySource<E> {
  /** The bytes that have arrived and were not taken yet; undefined when there are none. */
  take(): Chunk.Chunk<Uint8Array> | undefined
  /** Resumes once `take` may have bytes, or the body has ended or failed; fails only with what the body cannot recover from. */
  readonly wait: Effect.Effect<void, E>
  /** The body ended and every byte of it was taken. */
  readonly ended: boolean
  /** Why the body failed (a transport failure), once it has. */
  readonly failure: HttpClientError.ResponseError | undefined
}

/** The shape of a Node Readable we read in paused mode. */
interface NodeReadable {
  readonly readable: boolean
  readonly readableFlowing: boolean | null
  readonly readableEnded: boolean
  readonly errored: unknown
  read(): unknown
  on(event: string, listener: (...args: Array<any>) => void): unknown
  off(event: string, listener: (...args: Array<any>) => void): unknown
}

interface WebReadable {
  readonly locked: boolean
  getReader(): ReadableStreamDefaultReader<Uint8Array>
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

const isNodeReadable = (value: unknown): value is NodeReadable =>
  isObject(value) && typeof value.read === "function" && typeof value.on === "function" &&
  typeof value.off === "function" && typeof value.readable === "boolean" &&
  "readableFlowing" in value

const isWebReadable = (value: unknown): value is WebReadable =>
  isObject(value) && typeof value.getReader === "function" && typeof value.locked === "boolean"

/**
 * The object a layer's response wraps: undici's ResponseData, node:http's
 * IncomingMessage, fetch's Response. @effect/platform 0.97 has no accessor for
 * it, and every layer keeps it as `source`; it is read here only, so a change
 * there is one place to follow (an unknown shape reads as "not one we know").
 */
export const sourceOf = (response: HttpClientResponse.HttpClientResponse): unknown =>
  (response as unknown as { readonly source?: unknown }).source

/**
 * The body of `response` read directly, or undefined when it is not one we
 * know (or is already being read): the caller then pulls `response.stream`.
 * When `scope` closes, a read still waiting ends as a transport failure; the
 * socket is the request's, released by its abort in the same scope.
 */
export const directBody = (
  response: HttpClientResponse.HttpClientResponse
): Effect.Effect<BodySource<never> | undefined, never, Scope.Scope> =>
  Effect.suspend((): Effect.Effect<BodySource<never> | undefined, never, Scope.Scope> => {
    const source = sourceOf(response)
    if (!isObject(source)) return Effect.succeed(undefined)
    // undici's ResponseData and fetch's Response hold the body; node:http's IncomingMessage is it.
    const body = "body" in source ? source.body : source
    const failure = (cause: unknown) => new HttpClientError.ResponseError({ request: response.request, response, reason: "Decode", cause })
    if (isNodeReadable(body)) {
      if (body.readableFlowing === true) return Effect.succeed(undefined)
      return Effect.acquireRelease(Effect.sync(() => new NodeBody(body, failure)), (node) => Effect.sync(() => node.close()))
    }
    if (isWebReadable(body)) {
      if (body.locked) return Effect.succeed(undefined)
      // The request's abort in the same scope rejects a pending read: nothing to release here.
      return Effect.sync(() => new WebBody(body.getReader(), failure))
    }
    return Effect.succeed(undefined)
  })

/**
 * A Node Readable in paused mode: `take` drains its buffer with `read()`, and
 * `wait` sleeps until 'readable', 'end', 'error' or 'close'. Its listeners stay
 * for the body's life and wake the one waiting read, if any: no listener added
 * or removed per read.
 */
class NodeBody implements BodySource<never> {
  ended = false
  failure: HttpClientError.ResponseError | undefined = undefined
  /** Something happened while no read waited: the next wait returns at once. */
  private signalled = false
  private wake: ((effect: Effect.Effect<void>) => void) | undefined = undefined

  constructor(
    private readonly readable: NodeReadable,
    private readonly toFailure: (cause: unknown) => HttpClientError.ResponseError
  ) {
    if (!readable.readable) {
      // Ended, or destroyed before its end (with or without an error), before we looked.
      if (readable.readableEnded) this.ended = true
      else this.failure = toFailure(readable.errored ?? new Error("response body closed before its end"))
    }
    readable.on("readable", this.onReadable)
    readable.on("end", this.onEnd)
    readable.on("error", this.onError)
    readable.on("close", this.onClose)
  }

  readonly wait: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.signalled || this.ended || this.failure !== undefined) {
      this.signalled = false
      resume(Effect.void)
    } else {
      this.wake = resume
    }
  })

  take(): Chunk.Chunk<Uint8Array> | undefined {
    // Bytes that arrived before a failure are still the body's: Node keeps them after
    // destroy(error), and the events they complete go out before the failure does.
    if (this.ended) return undefined
    const first = this.readable.read() as Uint8Array | null
    if (first === null) return undefined
    let next = this.readable.read() as Uint8Array | null
    if (next === null) return Chunk.of(first)
    const pieces = [first]
    while (next !== null) {
      pieces.push(next)
      next = this.readable.read() as Uint8Array | null
    }
    return Chunk.unsafeFromArray(pieces)
  }

  /**
   * Releases the body. It may run while a read waits (the idle watchdog's
   * abort closes the scope the body lives in): that read then ends as a
   * transport failure.
   */
  close(): void {
    if (!this.ended) this.failure ??= this.toFailure(new Error("response body released before its end"))
    this.signal()
    this.readable.off("readable", this.onReadable)
    this.readable.off("end", this.onEnd)
    this.readable.off("error", this.onError)
    this.readable.off("close", this.onClose)
  }

  private signal(): void {
    const wake = this.wake
    if (wake === undefined) {
      this.signalled = true
    } else {
      this.wake = undefined
      wake(Effect.void)
    }
  }

  private readonly onReadable = () => this.signal()
  private readonly onEnd = () => {
    this.ended = true
    this.signal()
  }
  private readonly onError = (error: unknown) => {
    // After its end the body is complete: a late error (the socket's) changes nothing.
    if (!this.ended) this.failure ??= this.toFailure(error)
    this.signal()
  }
  /** A close before the end with no error (a destroy without a reason) is a transport failure too. */
  private readonly onClose = () => {
    if (!this.ended && this.failure === undefined && !this.readable.readableEnded) {
      this.failure = this.toFailure(new Error("response body closed before its end"))
    }
    this.signal()
  }
}

/** A web ReadableStream: each `wait` is one `reader.read()`. */
class WebBody implements BodySource<never> {
  ended = false
  failure: HttpClientError.ResponseError | undefined = undefined
  private chunk: Uint8Array | undefined = undefined

  constructor(
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    private readonly toFailure: (cause: unknown) => HttpClientError.ResponseError
  ) {}

  readonly wait: Effect.Effect<void> = Effect.async<void>((resume) => {
    this.reader.read().then((result) => {
      if (result.done) this.ended = true
      else this.chunk = result.value
      resume(Effect.void)
    }, (cause) => {
      this.failure = this.toFailure(cause)
      resume(Effect.void)
    })
  })

  take(): Chunk.Chunk<Uint8Array> | undefined {
    const chunk = this.chunk
    if (chunk === undefined) return undefined
    this.chunk = undefined
    return Chunk.of(chunk)
  }

}

/**
 * Any other body, pulled a chunk per `wait` from its Stream: a read error is
 * the body's failure, any other error (a body we cannot decode) fails the wait.
 * The Stream runs in a scope of its own, closed by `release` once the reader is
 * done: in the request's scope, the watchdog's abort would tear it down under a
 * waiting pull, which then never returned; apart, the abort fails the pull.
 */
export const pulledBody = <E>(
  stream: Stream.Stream<Uint8Array, HttpClientError.ResponseError | E>
): Effect.Effect<PulledBody<E>> =>
  Effect.flatMap(Scope.make(), (scope) =>
    Effect.map(Scope.extend(Stream.toPull(stream), scope), (pull) => new PulledBody(pull, Scope.close(scope, Exit.void))))

export class PulledBody<E> implements BodySource<E> {
  ended = false
  failure: HttpClientError.ResponseError | undefined = undefined
  private chunk: Chunk.Chunk<Uint8Array> | undefined = undefined
  readonly wait: Effect.Effect<void, E>

  constructor(
    pull: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<HttpClientError.ResponseError | E>>,
    /** Stops the Stream: run once the reader is done with it. */
    readonly release: Effect.Effect<void>
  ) {
    this.wait = Effect.matchCauseEffect(pull, {
      onSuccess: (chunk) => {
        this.chunk = chunk
        return Effect.void
      },
      onFailure: (cause) => {
        const failure = Cause.failureOrCause(cause)
        if (Either.isRight(failure)) return Effect.failCause(failure.right)
        if (Option.isNone(failure.left)) {
          this.ended = true
          return Effect.void
        }
        const error = failure.left.value
        if (HttpClientError.isHttpClientError(error) && error._tag === "ResponseError") {
          this.failure = error
          return Effect.void
        }
        return Effect.fail(error as E)
      }
    })
  }

  take(): Chunk.Chunk<Uint8Array> | undefined {
    const chunk = this.chunk
    this.chunk = undefined
    return chunk
  }
}
