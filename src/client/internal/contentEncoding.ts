/**
 * A response body decoded from its `Content-Encoding`, the same on every
 * HttpClient layer. Fetch decodes gzip, deflate and br by itself and keeps the
 * header; undici and node:http hand over the compressed bytes. So the header
 * alone cannot tell whether the body is still encoded; its first bytes can: an
 * SSE body is UTF-8 text, and compressed data is not. DecompressionStream rather
 * than node:zlib, so the package root still bundles for a browser.
 */
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { SseContentEncodingError } from "../SseClientError.js"


type Body = Stream.Stream<Uint8Array, HttpClientError.ResponseError | SseContentEncodingError>

/** Bytes looked at to tell text from compressed data. */
const sniffBytes = 64

/** The non-identity codings of a `Content-Encoding` header, or undefined for none. */
const codingsOf = (header: string | undefined): string | undefined => {
  if (header === undefined) return undefined
  const codings = header.split(",").map((c) => c.trim().toLowerCase()).filter((c) => c !== "" && c !== "identity")
  return codings.length === 0 ? undefined : codings.join(", ")
}

/**
 * Valid UTF-8. Compressed data breaks it within a few bytes (a zlib header's second
 * byte 9c/da is no UTF-8 continuation; a stored block's length complement is ff-ish;
 * raw deflate is near random), or holds a NUL. Other control characters say nothing: an already-decoded
 * body (fetch decodes and keeps the header) may carry ANSI colours in its data.
 */
const looksLikeText = (bytes: Uint8Array): boolean => {
  // NUL, though legal in data, does not open a real event stream; compressed data often has it.
  if (bytes.includes(0)) return false
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes, { stream: true })
    return true
  } catch {
    return false
  }
}

/** Whether `response` says its body may be encoded: only then must it pass through `decodedBody`. */
export const mayBeEncoded = (response: HttpClientResponse.HttpClientResponse): boolean =>
  codingsOf(response.headers["content-encoding"]) !== undefined

/** RFC 1950: deflate method, window ≤ 32 KiB, check bits, no preset dictionary. */
const isZlibHeader = (bytes: Uint8Array): boolean =>
  (bytes[0]! & 0x0f) === 8 && bytes[0]! >> 4 <= 7 && ((bytes[0]! << 8) | bytes[1]!) % 31 === 0 &&
  (bytes[1]! & 0x20) === 0

/** The decoder for a body that is not text, or undefined when we have none. */
const formatOf = (codings: string, head: Uint8Array): CompressionFormat | "corrupt" | undefined => {
  switch (codings) {
    case "gzip":
    case "x-gzip":
      return head[0] === 0x1f && head[1] === 0x8b ? "gzip" : "corrupt"
    case "deflate":
      // RFC 9110 says zlib, but fetch also takes raw deflate: so do we.
      return isZlibHeader(head) ? "deflate" : "deflate-raw"
    default:
      return undefined
  }
}

/** A failure of fetch's own decoder: the body's read error carries zlib's code (not so in a browser). */
const isDecoderFailure = (error: HttpClientError.ResponseError): boolean => {
  let cause: unknown = error.cause
  for (let depth = 0; depth < 3 && typeof cause === "object" && cause !== null; depth++) {
    const code = (cause as { code?: unknown }).code
    if (typeof code === "string" && code.startsWith("Z_")) return true
    cause = (cause as { cause?: unknown }).cause
  }
  return false
}

/**
 * The body of `response`, decoded when it is still gzip- or deflate-encoded,
 * as it arrives (each compressed chunk yields its text at once) and read only
 * as fast as it is consumed. Passed through when unencoded or already decoded
 * by fetch. Fails with `SseContentEncodingError` for an encoding we cannot
 * decode (br, zstd, unknown) on a body that is not text, or for corrupt data;
 * a compressed body cut short ends where its decodable data ends, as in fetch.
 */
export const decodedBody = (response: HttpClientResponse.HttpClientResponse): Body => {
  const codings = codingsOf(response.headers["content-encoding"])
  if (codings === undefined) return response.stream
  const url = response.request.url
  const corrupt = (cause: unknown) => new SseContentEncodingError({ encoding: codings, url, reason: "corrupt", cause })
  const bytes = Stream.mapError(response.stream, (error) => isDecoderFailure(error) ? corrupt(error) : error)
  return Stream.unwrapScoped(Effect.gen(function*() {
    const pull = yield* Stream.toPull(bytes)
    // Two bytes tell gzip and zlib apart from text; wait for them, or the end.
    const head: Array<Uint8Array> = []
    let size = 0
    let ended = false
    while (size < 2 && !ended) {
      // The pull fails with None at the end of the body.
      const chunk = yield* Effect.catchAll(
        Effect.asSome(pull),
        Option.match({ onNone: () => Effect.succeedNone, onSome: Effect.fail })
      )
      if (Option.isNone(chunk)) ended = true
      else {
        for (const piece of chunk.value) {
          head.push(piece)
          size += piece.length
        }
      }
    }
    const body: Body = Stream.fromIterable(head).pipe(
      Stream.concat(ended ? Stream.empty : Stream.repeatEffectChunkOption(pull))
    )
    const first = prefix(head, sniffBytes)
    // gzip's own magic first: 1f is also a control character an already-decoded body may hold.
    const gzipped = first[0] === 0x1f && first[1] === 0x8b
    if (size === 0 || (!gzipped && looksLikeText(first))) return body
    const format = formatOf(codings, first)
    if (format === undefined) return yield* new SseContentEncodingError({ encoding: codings, url, reason: "unsupported" })
    if (format === "corrupt") return yield* corrupt(new Error("no gzip header"))
    return yield* decompress(format, body, corrupt)
  }))
}

/** The first `length` bytes of `chunks`, copied. */
const prefix = (chunks: ReadonlyArray<Uint8Array>, length: number): Uint8Array => {
  const out = new Uint8Array(Math.min(length, chunks.reduce((n, c) => n + c.length, 0)))
  let at = 0
  for (const chunk of chunks) {
    if (at === out.length) break
    const piece = chunk.subarray(0, out.length - at)
    out.set(piece, at)
    at += piece.length
  }
  return out
}

/**
 * zlib's "unexpected end of file": the data stopped mid-stream. Node's fetch ends
 * the body there without error, so we do too (a browser's decoder gives no code:
 * there it stays "corrupt").
 */
const isTruncation = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && (cause as { code?: unknown }).code === "Z_BUF_ERROR"

/**
 * Pipes `body` through a DecompressionStream. The feeding fiber waits for each
 * write, which Node's stream accepts only while its input buffer (16 KiB) has
 * room, and zlib inflates only as its output is read: memory stays bounded by
 * those buffers whatever the compression ratio.
 */
const decompress = (
  format: CompressionFormat,
  body: Body,
  corrupt: (cause: unknown) => SseContentEncodingError
): Effect.Effect<Body, never, Scope.Scope> =>
  Effect.gen(function*() {
    const decoder = new DecompressionStream(format)
    const writer = decoder.writable.getWriter()
    let upstream: HttpClientError.ResponseError | SseContentEncodingError | undefined
    yield* body.pipe(
      // The cast: DOM's types want an ArrayBuffer-backed view; a body chunk is one.
      Stream.runForEach((chunk) => Effect.tryPromise(() => writer.write(chunk as Uint8Array<ArrayBuffer>))),
      Effect.zipRight(Effect.tryPromise(() => writer.close())),
      // A failed write or close shows up on the reading side. A failed body
      // (a cut connection) ends the input, so what it completed is still read.
      Effect.catchAll((error) =>
        Effect.sync(() => {
          if (error._tag === "UnknownException") return
          upstream = error
          writer.close().catch(() => undefined)
        })
      ),
      Effect.forkScoped
    )
    const reader = yield* Effect.acquireRelease(
      Effect.sync(() => decoder.readable.getReader()),
      (reader) => Effect.promise(() => reader.cancel().catch(() => undefined))
    )
    return Stream.repeatEffectOption(
      Effect.flatMap(
        Effect.tryPromise({
          try: () => reader.read(),
          catch: (cause) =>
            upstream !== undefined ? Option.some(upstream) : isTruncation(cause) ? Option.none() : Option.some(corrupt(cause))
        }),
        (result) => result.done ? Effect.fail(Option.fromNullable(upstream)) : Effect.succeed(result.value)
      )
    )
  })
