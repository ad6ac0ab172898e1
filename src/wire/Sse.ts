/**
 * Server-Sent Events on the wire: bytes to `SseEvent`s by the WHATWG parsing
 * rules, and `SseEvent`s back to text.
 *
 * The parser itself (`Parser`, its machinery in `internal/parser.ts`) reads bytes, not decoded text: see
 * there why. This module is its Stream wrapper, the limit's default and `encode`.
 */
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Stream from "effect/Stream"
import { Parser, type SseEventTooLarge } from "./internal/parser.js"
import type { SseEvent } from "./SseEvent.js"

export { SseEventTooLarge } from "./internal/parser.js"

/** Everything `parse` itself can fail with. */
export type SseParseError = SseEventTooLarge

export const defaultMaxEventBytes = 10 * 1024 * 1024

export interface ParseOptions {
  /**
   * The largest event the parser buffers, default 10 MiB: the UTF-8 bytes of its
   * data (with the LFs joining data lines), id and event type values, counted
   * exactly whatever the chunking. A bigger event fails the stream with
   * `SseEventTooLarge`. Comments and fields that can never reach an event are
   * skipped unbuffered, whatever their length.
   */
  readonly maxEventBytes?: number
  /**
   * Called as soon as a valid `retry:` line is read, even in a block that
   * dispatches nothing: per spec the reconnection time changes at the line.
   */
  readonly onRetry?: (millis: number) => void
}

const parserChannel = <E>(
  options: ParseOptions | undefined
): Channel.Channel<Chunk.Chunk<SseEvent>, Chunk.Chunk<Uint8Array>, E | SseParseError, E, unknown, unknown> => {
  type Out = Channel.Channel<Chunk.Chunk<SseEvent>, Chunk.Chunk<Uint8Array>, E | SseParseError, E, unknown, unknown>
  const parser = new Parser({ maxEventBytes: options?.maxEventBytes ?? defaultMaxEventBytes, onRetry: options?.onRetry })
  // `flatMap` with one continuation made once, not `zipRight`: this runs per
  // chunk, and `zipRight` tests its arguments to tell its two call forms apart.
  const emitThen = (events: Array<SseEvent>, next: () => Out): Out =>
    events.length === 0 ? next() : Channel.flatMap(Channel.write(Chunk.unsafeFromArray(events)), next)
  const toLoop = (): Out => loop
  const loop: Out =
    Channel.readWithCause({
      onInput: (input: Chunk.Chunk<Uint8Array>) => {
        const events = parser.push(input)
        // Events completed before the oversized one are still delivered.
        return emitThen(events, parser.error === undefined ? toLoop : () => Channel.fail(parser.error!))
      },
      onFailure: (cause: Cause.Cause<E>) => Channel.failCause(cause),
      onDone: () => emitThen(parser.end(), () => parser.error === undefined ? Channel.void : Channel.fail(parser.error))
    })
  return loop
}

/**
 * Parses a byte stream into events. Each input chunk becomes at most one output
 * chunk, so downstream work is paid per chunk, not per event.
 */
export const parse = (options?: ParseOptions) =>
<E, R>(bytes: Stream.Stream<Uint8Array, E, R>): Stream.Stream<SseEvent, E | SseParseError, R> =>
  Stream.pipeThroughChannel(bytes, Channel.suspend(() => parserChannel<E>(options)))

const lineBreak = /\r\n|\r|\n/
const hasLineBreak = /[\r\n]/

/**
 * Encodes one event as an SSE block. `data` may span lines (a lone CR comes back
 * as LF, the only line end the parser's result uses). An `id` or `event` that
 * would break out of its line, or an `id` with NUL, throws: SSE cannot carry them
 * and writing them would let a value inject fields.
 */
export const encode = (event: SseEvent): string => {
  let out = ""
  if (event.id !== undefined) {
    if (hasLineBreak.test(event.id) || event.id.includes("\0")) {
      throw new Cause.IllegalArgumentException(`SSE id cannot contain CR, LF or NUL: ${JSON.stringify(event.id)}`)
    }
    out += `id: ${event.id}\n`
  }
  if (event.event !== "message") {
    if (hasLineBreak.test(event.event)) {
      throw new Cause.IllegalArgumentException(`SSE event type cannot contain CR or LF: ${JSON.stringify(event.event)}`)
    }
    out += `event: ${event.event}\n`
  }
  if (event.retry !== undefined) out += `retry: ${event.retry}\n`
  const lines = event.data.split(lineBreak)
  for (let i = 0; i < lines.length; i++) out += `data: ${lines[i]}\n`
  return out + "\n"
}
