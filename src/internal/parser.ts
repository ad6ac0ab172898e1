/**
 * The SSE parser's state machine: bytes in, completed `SseEvent`s out. `Sse.parse`
 * wraps it in a Stream; the client uses it directly for id-only blocks.
 */
import { Chunk, Data } from "effect"
import { createParser, type EventSourceMessage, type ParseError } from "eventsource-parser"
import { SseEvent } from "../SseEvent.js"

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

export interface ParserOptions {
  /** The largest event buffered; past it `error` is set and parsing stops. */
  readonly maxEventBytes: number
  /** Called at every valid `retry:` line, even in a block that dispatches nothing. */
  readonly onRetry?: (millis: number) => void
  /** Emit a block that sets `id` but has no data as an event marked `[idOnly]`. */
  readonly idOnlyBlocks?: boolean
}

const CR = 13
const streaming = { stream: true }

type Mutable = { -readonly [K in keyof SseEvent]: SseEvent[K] }

/**
 * One parser's state. `push` takes a chunk of bytes and returns the events it
 * completed; `end` returns what the end of the stream completes.
 */
export class Parser {
  private readonly decoder = new TextDecoder("utf-8", { fatal: false })
  private readonly parser
  private events: Array<SseEvent> = []
  private pendingRetry: number | undefined = undefined
  private lastId: string | undefined = undefined
  private endsWithCR = false
  error: SseEventTooLarge | undefined = undefined

  private readonly maxEventBytes: number

  constructor(options: ParserOptions) {
    const { maxEventBytes, onRetry } = options
    this.maxEventBytes = maxEventBytes
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
