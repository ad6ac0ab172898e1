/**
 * Server-Sent Events on the wire: bytes to `SseEvent`s by the WHATWG parsing
 * rules, and `SseEvent`s back to text.
 *
 * Line splitting and field parsing are `eventsource-parser`'s; around it we add a
 * streaming UTF-8 decoder (which also drops the BOM), a byte limit that fails
 * typed, and the spec details the library leaves to its caller (default event
 * type, a CR ending the stream, ignoring unknown fields and bad `retry` values).
 */
import { Cause, Channel, Chunk, Data, Stream } from "effect"
import { createParser, type EventSourceMessage, type ParseError } from "eventsource-parser"
import { SseEvent } from "./SseEvent.js"

export class SseEventTooLarge extends Data.TaggedError("SseEventTooLarge")<{
  /** The limit the event's buffered text went past. */
  readonly maxEventBytes: number
  /** The id of the last event dispatched before the oversized one, if any. */
  readonly afterEventId: string | undefined
}> {
  override get message() {
    return `An SSE event grew past ${this.maxEventBytes} bytes`
  }
}

/** Everything `parse` itself can fail with. */
export type SseParseError = SseEventTooLarge

export const defaultMaxEventBytes = 10 * 1024 * 1024

export interface ParseOptions {
  /**
   * The largest event the parser buffers, default 10 MiB. Counted in decoded
   * UTF-16 code units, which never exceed the UTF-8 bytes they came from, so
   * ASCII events are measured exactly and memory stays bounded for any input.
   */
  readonly maxEventBytes?: number
  /**
   * Called as soon as a valid `retry:` line is read, even in a block that
   * dispatches nothing: per spec the reconnection time changes at the line.
   */
  readonly onRetry?: (millis: number) => void
}

const CR = 13
const streaming = { stream: true }

type Mutable = { -readonly [K in keyof SseEvent]: SseEvent[K] }

/**
 * One parser's state. `push` takes a chunk of bytes and returns the events it
 * completed; `end` returns what the end of the stream completes.
 */
class Parser {
  private readonly decoder = new TextDecoder("utf-8", { fatal: false })
  private readonly parser
  private events: Array<SseEvent> = []
  private pendingRetry: number | undefined = undefined
  private lastId: string | undefined = undefined
  private endsWithCR = false
  error: SseEventTooLarge | undefined = undefined

  constructor(readonly maxEventBytes: number, onRetry: ((millis: number) => void) | undefined) {
    this.parser = createParser({
      onEvent: (message) => this.dispatch(message),
      onRetry: (millis) => {
        this.pendingRetry = millis
        if (onRetry !== undefined) onRetry(millis)
      },
      // Unknown fields and non-digit `retry` values are ignored by the spec;
      // only the buffer limit is an error for us.
      onError: (error: ParseError) => {
        if (error.type === "max-buffer-size-exceeded") {
          this.error = new SseEventTooLarge({ maxEventBytes: this.maxEventBytes, afterEventId: this.lastId })
        }
      },
      maxBufferSize: maxEventBytes
    })
    // The library strips a BOM it recognises as the three Latin-1 characters
    // "ï»¿" in the first text fed. The decoder has already dropped the real BOM,
    // so an empty first feed keeps such text from being eaten.
    this.parser.feed("")
  }

  private dispatch(message: EventSourceMessage): void {
    // Built on the prototype, not through the constructor: measured, the
    // Schema.Class constructor costs ~2 µs per event even with validation off
    // (it copies, merges defaults and copies again), 20× the cost of this and
    // more than the parsing. Every field is set here as the constructor would,
    // so `instanceof` and `Equal` behave the same.
    const event: Mutable = Object.create(SseEvent.prototype)
    if (message.id !== undefined) {
      event.id = message.id
      this.lastId = message.id
    }
    event.event = message.event === undefined ? "message" : message.event
    event.data = message.data
    if (this.pendingRetry !== undefined) {
      event.retry = this.pendingRetry
      this.pendingRetry = undefined
    }
    this.events.push(event as SseEvent)
  }

  private feed(text: string): void {
    if (text.length === 0 || this.error !== undefined) return
    this.endsWithCR = text.charCodeAt(text.length - 1) === CR
    this.parser.feed(text)
  }

  private take(): Array<SseEvent> {
    const events = this.events
    this.events = []
    return events
  }

  push(chunk: Chunk.Chunk<Uint8Array>): Array<SseEvent> {
    const pieces = Chunk.toReadonlyArray(chunk)
    for (let i = 0; i < pieces.length && this.error === undefined; i++) {
      this.feed(this.decoder.decode(pieces[i], streaming))
    }
    return this.take()
  }

  end(): Array<SseEvent> {
    this.feed(this.decoder.decode())
    // A CR is a complete line end, but the library holds a trailing CR back in
    // case an LF follows; at the end of the stream none will, so we supply one
    // (CRLF counts as a single line end). Anything still pending after that is
    // an unterminated block, which the spec discards.
    if (this.endsWithCR) this.feed("\n")
    return this.take()
  }
}

const parserChannel = <E>(
  options: ParseOptions | undefined
): Channel.Channel<Chunk.Chunk<SseEvent>, Chunk.Chunk<Uint8Array>, E | SseParseError, E, unknown, unknown> => {
  type Out = Channel.Channel<Chunk.Chunk<SseEvent>, Chunk.Chunk<Uint8Array>, E | SseParseError, E, unknown, unknown>
  const parser = new Parser(options?.maxEventBytes ?? defaultMaxEventBytes, options?.onRetry)
  const emitThen = (events: Array<SseEvent>, next: Out): Out =>
    events.length === 0 ? next : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(events)), next)
  const loop: Out =
    Channel.readWithCause({
      onInput: (input: Chunk.Chunk<Uint8Array>) => {
        const events = parser.push(input)
        // Events completed before the oversized one are still delivered.
        return emitThen(events, parser.error === undefined ? loop : Channel.fail(parser.error))
      },
      onFailure: (cause: Cause.Cause<E>) => Channel.failCause(cause),
      onDone: () => emitThen(parser.end(), parser.error === undefined ? Channel.void : Channel.fail(parser.error))
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
