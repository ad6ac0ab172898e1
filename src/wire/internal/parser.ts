/**
 * The SSE parser's state machine, on bytes: the WHATWG "event stream
 * interpretation" rules applied to a UTF-8 byte stream. `Sse.parse` wraps it in a
 * Stream; the client drives it directly to see id-only blocks.
 *
 * It works on bytes rather than decoded text so that:
 * - a line ends at its CR at once (only an LF right after it, maybe in the next
 *   chunk, is swallowed), so no event waits for the next byte;
 * - the size limit counts UTF-8 bytes exactly, whatever the chunking;
 * - lines that can never reach an event (comments, unknown fields, bad `retry`
 *   and NUL-bearing `id` values) are dropped as they stream past, never buffered;
 * - each value is decoded on its own into a fresh string: a slice of a decoded
 *   64 KiB chunk would keep the whole chunk alive for as long as the id lives
 *   (the tracker keeps 10,000 of them).
 * Splitting at ASCII bytes never changes what a UTF-8 decoder produces, so
 * decoding value by value equals decoding the stream, U+FFFD included.
 * Where a stretch of bytes decodes to one UTF-16 unit per byte (ASCII, or
 * lone bad bytes as U+FFFD), its text stands for the bytes: line ends are
 * searched and values sliced there.
 */
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import { idOnly } from "./idOnly.js"
import { SseEvent } from "../SseEvent.js"

export class SseEventTooLarge extends Data.TaggedError("SseEventTooLarge")<{
  /** The limit the event's buffered bytes went past. */
  readonly maxEventBytes: number
  /** The id of the last event dispatched before the oversized one, if any. */
  readonly afterEventId: string | undefined
}> {
  override get message() {
    return `An SSE event grew past ${this.maxEventBytes} bytes`
  }
}

export interface ParserOptions {
  /**
   * The most bytes one event may hold: the UTF-8 bytes of its data (with the LFs
   * joining data lines), id and event type values, as they stand at any line of
   * its block. Past it `error` is set and parsing stops. Also bounds one `retry`
   * value's digits.
   */
  readonly maxEventBytes: number
  /** Called at every valid `retry:` line, even in a block that dispatches nothing. */
  readonly onRetry?: (millis: number) => void
  /**
   * Emit a block that sets `id` but has no data (spec: no event, but the
   * last-event-id buffer is set) as an event marked `[idOnly]`, with empty data.
   */
  readonly idOnlyBlocks?: boolean
}

const LF = 10
const CR = 13
const SPACE = 32
const COLON = 58
const BOM = [0xef, 0xbb, 0xbf]

// What a line is, decided by its field name.
const IGNORED = 0
const DATA = 1
const EVENT = 2
const ID = 3
const RETRY = 4
/** An unfinished line whose name so far could still become a known one. */
const UNDECIDED = 5

const names = [[DATA, "data"], [EVENT, "event"], [ID, "id"], [RETRY, "retry"]].map(
  ([field, name]) => ({ field: field as number, bytes: new TextEncoder().encode(name as string) })
)
/** Bytes that decide an unfinished line: the longest name, its colon and one space. */
const HEAD = 7

// Where the line being read stands between chunks.
const AT_START = 0
const BUFFERING = 1
const SKIPPING = 2

/** V8 copies a slice shorter than this; a longer one keeps its whole parent string alive. */
const SLICE_MIN = 13
/**
 * Values are sliced from text decoded this many bytes at a time (to a line end):
 * a data string then keeps at most its own line and about this much around it
 * alive, never its whole network chunk.
 */
const SEGMENT_BYTES = 1024

/** A line buffer past this is dropped once its line is done, not kept for the next. */
const KEEP_LINE_BUFFER = 256 * 1024
const empty = new Uint8Array(0)

/**
 * Node's Buffer indexOf, a native memchr, which also takes a plain Uint8Array
 * (what fetch gives): a typed array's own indexOf is ~25x slower per byte
 * (Node 20, a 64 KiB scan: 0.6 vs 15 µs). Browsers have only the latter.
 */
const nativeIndexOf: ((this: Uint8Array, byte: number, from: number) => number) | undefined =
  typeof Buffer === "function" ? Buffer.prototype.indexOf : undefined

type Mutable = { -readonly [K in keyof SseEvent]: SseEvent[K] } & { [idOnly]?: true }

/** Whether `buf` holds the first `length` bytes of `name` at `start`. */
const sameBytes = (buf: Uint8Array, start: number, length: number, name: Uint8Array): boolean => {
  for (let i = 0; i < length; i++) if (buf[start + i] !== name[i]) return false
  return true
}

const isNamePrefix = (buf: Uint8Array, start: number, length: number): boolean => {
  for (const { bytes } of names) {
    if (length <= bytes.length && sameBytes(buf, start, length, bytes)) return true
  }
  return false
}

/**
 * Whether the bytes are the ASCII text `text`. A byte of 0x80 or more never
 * matches, so text with other characters (or U+FFFD) is never taken for bytes
 * that would decode differently.
 */
const sameAscii = (buf: Uint8Array, start: number, end: number, text: string): boolean => {
  if (end - start !== text.length) return false
  for (let i = start; i < end; i++) {
    const byte = buf[i]!
    if (byte >= 0x80 || byte !== text.charCodeAt(i - start)) return false
  }
  return true
}

/**
 * Where a value stops being usable: the first NUL of an `id` (which the spec
 * ignores), the first non-digit of a `retry`; -1 if nowhere in [from, end).
 */
const firstInvalid = (field: number, buf: Uint8Array, from: number, end: number): number => {
  if (field === ID) {
    for (let i = from; i < end; i++) if (buf[i] === 0) return i
  } else if (field === RETRY) {
    for (let i = from; i < end; i++) if (buf[i] < 48 || buf[i] > 57) return i
  }
  return -1
}

/**
 * Events are made by these, on SseEvent's prototype, not by its constructor,
 * which checks its argument and copies it into a second object (when SseEvent
 * was a Schema.Class that cost ~2 µs per event, more than the parsing; the
 * fields here are the parser's own and need no check). A constructor per shape
 * rather than `Object.create` and fields added one by one: V8 lays the fields out in the
 * object itself (parsing 100 B events in 64 KiB chunks: 132 → 123 ns each,
 * interleaved A/B). The fields and their order are the constructor's, so
 * `instanceof` and `Equal` behave the same.
 */
const EventWithId = function(this: Mutable, id: string, event: string, data: string) {
  this.id = id
  this.event = event
  this.data = data
} as unknown as new(id: string, event: string, data: string) => Mutable
EventWithId.prototype = SseEvent.prototype
const EventWithoutId = function(this: Mutable, event: string, data: string) {
  this.event = event
  this.data = data
} as unknown as new(event: string, data: string) => Mutable
EventWithoutId.prototype = SseEvent.prototype

export class Parser {
  private readonly maxEventBytes: number
  private readonly onRetry: ((millis: number) => void) | undefined
  private readonly idOnlyBlocks: boolean
  // Non-fatal: invalid UTF-8 becomes U+FFFD; ignoreBOM: a value may start with U+FEFF.
  private readonly decoder = new TextDecoder("utf-8", { ignoreBOM: true })
  private events: Array<SseEvent> = []
  error: SseEventTooLarge | undefined = undefined

  // --- Between bytes: the unfinished line ---
  private bomSeen = 0
  private afterCR = false
  private lineState = AT_START
  private line = empty
  private lineLength = 0
  /** Set by `fieldOf`: where the value of the line it read starts. */
  private valueStart = 0

  // --- Within one chunk: the decoded segment values are sliced from ---
  private segmentStart = 0
  private segmentEnd = -1
  private segmentText: string | undefined = undefined
  /** Whether the segment's text has fewer units than bytes (multi-byte characters). */
  private segmentMapped = false
  /**
   * In a mapped segment, a point after a line end (or the segment's start)
   * as a byte position and as an index in the text: line ends are ASCII, so
   * the n-th one in the bytes is the n-th one in the text.
   */
  private syncByte = 0
  private syncText = 0

  // --- The block being read ---
  private data = ""
  private dataLines = 0
  private dataBytes = 0
  private id: string | undefined = undefined
  private idBytes = 0
  private type: string | undefined = undefined
  /** The last event type read: a stream mostly repeats a few, so the string is reused, not decoded again. */
  private lastType = ""
  private typeBytes = 0
  private retry: number | undefined = undefined
  private lastId: string | undefined = undefined

  constructor(options: ParserOptions) {
    this.maxEventBytes = options.maxEventBytes
    this.onRetry = options.onRetry
    this.idOnlyBlocks = options.idOnlyBlocks === true
  }

  push(chunk: Chunk.Chunk<Uint8Array>): Array<SseEvent> {
    // A network read is one piece: no array made for it (each allocation per
    // chunk shows on small chunks, where the stream's own garbage is large).
    if (chunk.length === 1) {
      this.segmentEnd = -1
      this.feed(Chunk.unsafeGet(chunk, 0))
    } else {
      const pieces = Chunk.toReadonlyArray(chunk)
      for (let i = 0; i < pieces.length && this.error === undefined; i++) {
        this.segmentEnd = -1
        this.feed(pieces[i]!)
      }
    }
    this.segmentText = undefined
    return this.take()
  }

  /** The end of the body: an unfinished line or block is discarded, as the spec says. */
  end(): Array<SseEvent> {
    this.lineState = AT_START
    this.line = empty
    this.lineLength = 0
    return this.take()
  }

  /** Bytes held for the unfinished line: what the parser's memory grows with. */
  get bufferedBytes(): number {
    return this.line.length
  }

  private take(): Array<SseEvent> {
    const events = this.events
    this.events = []
    return events
  }

  private feed(bytes: Uint8Array): void {
    const length = bytes.length
    if (length === 0) return
    let pos = 0
    if (this.afterCR) {
      this.afterCR = false
      if (bytes[0] === LF) pos = 1
    }
    if (this.bomSeen < BOM.length) pos = this.skipBom(bytes, pos)
    // Where the next LF and CR are, each searched once per stretch of the
    // chunk: a value found may be the end of the stretch searched instead
    // (no such byte before it), which the check on its byte tells apart.
    let lf = -1
    let cr = -1
    while (this.error === undefined && pos < length) {
      // An empty line (every block's end) needs no search.
      if (lf < pos) lf = bytes[pos] === LF ? pos : this.search(bytes, "\n", pos)
      if (cr < pos) cr = this.search(bytes, "\r", pos)
      const end = cr < lf ? cr : lf
      if (end === length) return this.keepPartial(bytes, pos, length)
      const byte = bytes[end]
      if (byte !== LF && byte !== CR) {
        // The line goes on past the decoded segment: search a segment from
        // its start, or the bytes if it started the segment already.
        if (this.segmentStart < pos) {
          this.decodeSegment(bytes, pos, pos)
          lf = cr = -1
        } else {
          if (lf === end) lf = this.searchBytes(bytes, LF, end)
          if (cr === end) cr = this.searchBytes(bytes, CR, end)
        }
        continue
      }
      this.endLine(bytes, pos, end)
      pos = end + 1
      if (byte === LF) {
        // The empty line after it (a block's end, mostly): no turn of the loop.
        if (bytes[pos] === LF && this.error === undefined) {
          this.dispatch()
          pos++
        }
      } else if (pos === length) this.afterCR = true
      else if (bytes[pos] === LF) pos++
    }
  }

  /**
   * Where the next `char` (LF or CR) is from `pos`, or where the search
   * stopped: the end of the decoded segment, or of the chunk. A line that
   * starts in this chunk is searched in its segment's text when that decoded
   * byte for byte: a string search is fast everywhere, and the segment is
   * decoded for the values anyway. A line begun in an earlier chunk (its
   * bytes go to the line buffer, not to strings) is searched in the bytes
   * where that is fast.
   */
  private search(bytes: Uint8Array, char: string, pos: number): number {
    if (pos >= this.segmentEnd) {
      if (this.lineState !== AT_START && nativeIndexOf !== undefined) return this.searchBytes(bytes, char.charCodeAt(0), pos)
      this.decodeSegment(bytes, pos, pos)
    }
    if (this.segmentMapped) return this.searchBytes(bytes, char.charCodeAt(0), pos)
    const i = this.segmentText!.indexOf(char, pos - this.segmentStart)
    return i === -1 ? this.segmentEnd : i + this.segmentStart
  }

  private searchBytes(bytes: Uint8Array, byte: number, pos: number): number {
    const i = nativeIndexOf !== undefined ? nativeIndexOf.call(bytes, byte, pos) : bytes.indexOf(byte, pos)
    return i === -1 ? bytes.length : i
  }

  /** Drops a UTF-8 BOM at the very start of the stream, even split across chunks. */
  private skipBom(bytes: Uint8Array, pos: number): number {
    while (pos < bytes.length && this.bomSeen < BOM.length) {
      if (bytes[pos] !== BOM[this.bomSeen]) {
        // Part of a BOM then something else: the line starts with bytes no field name has.
        if (this.bomSeen > 0) this.lineState = SKIPPING
        this.bomSeen = BOM.length
        return pos
      }
      pos++
      this.bomSeen++
    }
    return pos
  }

  private endLine(bytes: Uint8Array, pos: number, end: number): void {
    if (this.lineState === AT_START) return this.processLine(bytes, pos, end)
    if (this.lineState === BUFFERING) {
      this.append(bytes, pos, end)
      this.processLine(this.line, 0, this.lineLength)
    }
    this.clearLine()
  }

  private clearLine(): void {
    this.lineState = AT_START
    this.lineLength = 0
    if (this.line.length > KEEP_LINE_BUFFER) this.line = empty
  }

  /**
   * Keeps the unfinished end of a chunk, unless it can never matter. The same
   * checks as `processLine`, on the prefix seen so far: each only grows with
   * the prefix, so the outcome does not depend on where the chunks were cut.
   */
  private keepPartial(bytes: Uint8Array, pos: number, length: number): void {
    if (pos === length || this.lineState === SKIPPING) return
    const before = this.lineLength
    const head = Math.min(length, pos + Math.max(0, HEAD - before))
    this.append(bytes, pos, head)
    this.lineState = BUFFERING
    const field = this.fieldOf(this.line, 0, this.lineLength)
    if (field === UNDECIDED) return
    if (field === IGNORED) return this.skipLine()
    const start = this.valueStart
    let invalid = firstInvalid(field, this.line, Math.max(start, before), this.lineLength)
    let valueEnd = invalid
    if (invalid === -1) {
      invalid = firstInvalid(field, bytes, head, length)
      valueEnd = this.lineLength + (invalid === -1 ? length : invalid) - head
    }
    if (this.exceeds(field, valueEnd - start)) return this.fail()
    if (invalid !== -1) return this.skipLine()
    this.append(bytes, head, length)
  }

  private skipLine(): void {
    this.clearLine()
    this.lineState = SKIPPING
  }

  private append(bytes: Uint8Array, from: number, to: number): void {
    const length = this.lineLength + to - from
    if (length > this.line.length) {
      const grown = new Uint8Array(Math.max(length, this.line.length * 2, 256))
      grown.set(this.line.subarray(0, this.lineLength))
      this.line = grown
    }
    this.line.set(bytes.subarray(from, to), this.lineLength)
    this.lineLength = length
  }

  /**
   * Which field an unfinished line (its first bytes) sets, UNDECIDED if it
   * depends on bytes to come, and (in `valueStart`) where its value begins. A
   * known name is at most 5 bytes, so its colon is within the first 6.
   */
  private fieldOf(buf: Uint8Array, start: number, end: number): number {
    const stop = Math.min(end, start + 6)
    let colon = start
    while (colon < stop && buf[colon] !== COLON) colon++
    if (colon === stop && colon !== end) return IGNORED
    if (colon === end) return isNamePrefix(buf, start, end - start) ? UNDECIDED : IGNORED
    let value = colon + 1
    if (value < end && buf[value] === SPACE) value++
    this.valueStart = value
    switch (colon - start) {
      case 2:
        return buf[start] === 105 && buf[start + 1] === 100 ? ID : IGNORED
      case 4:
        return sameBytes(buf, start, 4, names[0]!.bytes) ? DATA : IGNORED
      case 5:
        return sameBytes(buf, start, 5, names[1]!.bytes) ? EVENT : sameBytes(buf, start, 5, names[3]!.bytes) ? RETRY : IGNORED
      default:
        return IGNORED
    }
  }

  /**
   * `fieldOf` for a whole line: its first byte names the only field it can
   * be, so one comparison run decides, with no search for the colon.
   */
  private fieldOfLine(buf: Uint8Array, start: number, end: number): number {
    const length = end - start
    let field = IGNORED
    let colon = start
    switch (buf[start]) {
      case 100: // data
        if (length >= 4 && buf[start + 1] === 97 && buf[start + 2] === 116 && buf[start + 3] === 97) {
          field = DATA
          colon = start + 4
        }
        break
      case 101: // event
        if (
          length >= 5 && buf[start + 1] === 118 && buf[start + 2] === 101 && buf[start + 3] === 110 &&
          buf[start + 4] === 116
        ) {
          field = EVENT
          colon = start + 5
        }
        break
      case 105: // id
        if (length >= 2 && buf[start + 1] === 100) {
          field = ID
          colon = start + 2
        }
        break
      case 114: // retry
        if (
          length >= 5 && buf[start + 1] === 101 && buf[start + 2] === 116 && buf[start + 3] === 114 &&
          buf[start + 4] === 121
        ) {
          field = RETRY
          colon = start + 5
        }
        break
    }
    if (field === IGNORED) return IGNORED
    // A name alone on its line sets the field to ""; a longer name is another field.
    if (colon === end) this.valueStart = end
    else if (buf[colon] !== COLON) return IGNORED
    else this.valueStart = colon + 1 < end && buf[colon + 1] === SPACE ? colon + 2 : colon + 1
    return field
  }

  /** Whether a value of this length for `field` would take the block past the limit. */
  private exceeds(field: number, valueLength: number): boolean {
    switch (field) {
      case DATA:
        return this.dataBytes + (this.dataLines > 0 ? 1 : 0) + valueLength + this.idBytes + this.typeBytes >
          this.maxEventBytes
      case EVENT:
        return this.dataBytes + this.idBytes + valueLength > this.maxEventBytes
      case ID:
        return this.dataBytes + valueLength + this.typeBytes > this.maxEventBytes
      default:
        return valueLength > this.maxEventBytes
    }
  }

  private fail(): void {
    this.error = new SseEventTooLarge({ maxEventBytes: this.maxEventBytes, afterEventId: this.lastId })
  }

  private processLine(buf: Uint8Array, start: number, end: number): void {
    if (start === end) return this.dispatch()
    const field = this.fieldOfLine(buf, start, end)
    if (field === IGNORED) return
    const value = this.valueStart
    const invalid = firstInvalid(field, buf, value, end)
    if (this.exceeds(field, (invalid === -1 ? end : invalid) - value)) return this.fail()
    if (invalid !== -1) return
    if (field === DATA) {
      const text = this.text(buf, start, value, end, false)
      this.data = this.dataLines === 0 ? text : this.data + "\n" + text
      this.dataBytes += (this.dataLines > 0 ? 1 : 0) + end - value
      this.dataLines++
    } else if (field === EVENT) {
      this.type = sameAscii(buf, value, end, this.lastType) ? this.lastType : this.text(buf, start, value, end, false)
      this.lastType = this.type
      this.typeBytes = end - value
    } else if (field === ID) {
      this.id = this.text(buf, start, value, end, true)
      this.idBytes = end - value
    } else if (value < end) {
      let millis = 0
      for (let i = value; i < end; i++) millis = millis * 10 + buf[i]! - 48
      // Beyond 2^53 the digits no longer name an exact integer; the client caps delays anyway.
      this.retry = Math.min(millis, Number.MAX_SAFE_INTEGER)
      if (this.onRetry !== undefined) this.onRetry(this.retry)
    }
  }

  /**
   * The string of a value at [start, end) on the line from `lineStart`. Values
   * in the line buffer and long ids are decoded on their own, fresh. The rest
   * are slices of the decoded segment around them: one decode per segment
   * instead of one per value (measured: a decode call costs ~200 ns, as much
   * as parsing the rest of a small event). Ids are kept (10,000 of them in the
   * tracker), so they never share memory: V8 copies slices under 13 characters.
   */
  private text(buf: Uint8Array, lineStart: number, start: number, end: number, fresh: boolean): string {
    if (start === end) return ""
    if (buf === this.line || (fresh && end - start >= SLICE_MIN)) return this.decoder.decode(buf.subarray(start, end))
    if (end > this.segmentEnd) this.decodeSegment(buf, start, end)
    return this.segmentMapped
      ? this.mappedSlice(buf, lineStart, start, end)
      : this.segmentText!.slice(start - this.segmentStart, end - this.segmentStart)
  }

  /** `text`'s slice of a segment with multi-byte characters, where byte and text positions part. */
  private mappedSlice(buf: Uint8Array, lineStart: number, start: number, end: number): string {
    const text = this.segmentText!
    // Where the value's line starts in the text: past as many line ends as
    // the bytes have before it. Its field name, colon and space are ASCII.
    // (A CR LF is two line ends here, on both sides alike.)
    while (this.syncByte < lineStart) {
      let b = this.syncByte
      while (b < lineStart - 1 && buf[b] !== LF && buf[b] !== CR) b++
      this.syncText = text.indexOf(buf[b] === LF ? "\n" : "\r", this.syncText) + 1
      this.syncByte = b + 1
    }
    const from = this.syncText + start - this.syncByte
    // Its line end is the first of its kind in the text too (unless the
    // segment stopped right before it).
    const to = end === this.segmentEnd ? text.length : text.indexOf(buf[end] === LF ? "\n" : "\r", from)
    this.syncByte = end + 1
    this.syncText = to + 1
    return text.slice(from, to)
  }

  /**
   * Decodes from `start` about SEGMENT_BYTES (at least to `end`), stopping
   * before an ASCII byte or at the chunk's end. Only values ending at or
   * before the stop are sliced from it, and each is followed by its line end,
   * so the decoder reads their bytes as it would in the whole stream; stopping
   * before an ASCII byte keeps a character whole, so that a cut one does not
   * fail the byte-for-byte check of an ASCII segment. A
   * view, not `subarray`: on a Node Buffer that builds a Buffer through its
   * species constructor.
   */
  private decodeSegment(buf: Uint8Array, start: number, end: number): void {
    const length = buf.length
    let stop = Math.min(Math.max(end, start + SEGMENT_BYTES), length)
    while (stop < length && buf[stop]! >= 0x80) stop++
    const text = this.decoder.decode(new Uint8Array(buf.buffer, buf.byteOffset + start, stop - start))
    this.segmentStart = start
    this.segmentEnd = stop
    this.segmentText = text
    // As many UTF-16 units as bytes only if every byte became one unit in place
    // (a multi-byte character or a multi-byte U+FFFD would make fewer).
    this.segmentMapped = text.length !== stop - start
    this.syncByte = start
    this.syncText = 0
  }

  private dispatch(): void {
    if (this.dataLines > 0) this.emit(false)
    else if (this.idOnlyBlocks && this.id !== undefined) this.emit(true)
    this.data = ""
    this.dataLines = 0
    this.dataBytes = 0
    this.id = undefined
    this.idBytes = 0
    this.type = undefined
    this.typeBytes = 0
    this.retry = undefined
  }

  private emit(marker: boolean): void {
    const type = marker || this.type === undefined || this.type === "" ? "message" : this.type
    const data = marker ? "" : this.data
    let event: Mutable
    if (this.id !== undefined) {
      event = new EventWithId(this.id, type, data)
      this.lastId = this.id
    } else {
      event = new EventWithoutId(type, data)
    }
    if (marker) event[idOnly] = true
    else if (this.retry !== undefined) event.retry = this.retry
    this.events.push(event as SseEvent)
  }
}
