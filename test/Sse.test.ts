import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Stream } from "effect"
import * as fc from "fast-check"
import * as Sse from "../src/Sse.js"
import { SseEvent } from "../src/SseEvent.js"

const encoder = new TextEncoder()

type Plain = { id?: string; event: string; data: string; retry?: number }

const plain = (event: SseEvent): Plain => {
  const out: Plain = { event: event.event, data: event.data }
  if (event.id !== undefined) out.id = event.id
  if (event.retry !== undefined) out.retry = event.retry
  return out
}

const parseChunks = (chunks: ReadonlyArray<string | Uint8Array>, options?: Sse.ParseOptions) =>
  Stream.fromIterable(chunks.map((c) => typeof c === "string" ? encoder.encode(c) : c)).pipe(
    Sse.parse(options),
    Stream.runCollect,
    Effect.map((events) => Chunk.toReadonlyArray(events).map(plain))
  )

const parseSync = (chunks: ReadonlyArray<string | Uint8Array>) => Effect.runSync(parseChunks(chunks))

describe("Sse.parse (WHATWG rules)", () => {
  it("drops a leading BOM", () => {
    expect(parseSync([new Uint8Array([0xef, 0xbb, 0xbf]), "data: a\n\n"])).toEqual([{ event: "message", data: "a" }])
    // Only one BOM: a second one is part of the field name, so the line is an unknown field.
    expect(parseSync(["\uFEFF\uFEFFdata: a\n\ndata: b\n\n"])).toEqual([{ event: "message", data: "b" }])
  })

  it("keeps text that merely looks like a BOM in Latin-1", () => {
    expect(parseSync(["\u00ef\u00bb\u00bfx\n\ndata: a\n\n"])).toEqual([{ event: "message", data: "a" }])
    expect(parseSync(["data: \u00ef\u00bb\u00bf\n\n"])).toEqual([{ event: "message", data: "\u00ef\u00bb\u00bf" }])
  })

  it("ends lines with CRLF, LF or CR", () => {
    expect(parseSync(["data: a\r\ndata: b\rdata: c\n\r\n"])).toEqual([{ event: "message", data: "a\nb\nc" }])
    expect(parseSync(["data: a\r\rdata: b\n\n"])).toEqual([
      { event: "message", data: "a" },
      { event: "message", data: "b" }
    ])
  })

  it("treats a CR at a chunk's end and an LF in the next chunk as one line end", () => {
    expect(parseSync(["data: a\r", "\ndata: b\r", "\n\r", "\n"])).toEqual([{ event: "message", data: "a\nb" }])
  })

  it("treats a CR at the very end of the stream as a line end", () => {
    expect(parseSync(["data: a\r\r"])).toEqual([{ event: "message", data: "a" }])
  })

  it("ignores comment lines", () => {
    expect(parseSync([": keep-alive\ndata: a\n:another\n\n: only a comment\n\n"])).toEqual([
      { event: "message", data: "a" }
    ])
  })

  it("strips exactly one leading space after the colon", () => {
    expect(parseSync(["data:a\n\ndata:  b\n\nevent:  x\ndata\n\n"])).toEqual([
      { event: "message", data: "a" },
      { event: "message", data: " b" },
      { event: " x", data: "" }
    ])
  })

  it("joins data lines with LF", () => {
    expect(parseSync(["data: a\ndata:\ndata: c\n\n"])).toEqual([{ event: "message", data: "a\n\nc" }])
  })

  it("ignores unknown fields", () => {
    expect(parseSync(["foo: bar\nDATA: x\ndata : y\ndata: a\nfoo\n\n"])).toEqual([{ event: "message", data: "a" }])
  })

  it("sets id and event type per block, defaulting the type to message", () => {
    expect(parseSync(["id: 1\nevent: tick\ndata: a\n\nevent:\ndata: b\n\nid\ndata: c\n\n"])).toEqual([
      { id: "1", event: "tick", data: "a" },
      { event: "message", data: "b" },
      { id: "", event: "message", data: "c" }
    ])
  })

  it("ignores an id containing NUL", () => {
    expect(parseSync(["id: a\u0000b\ndata: x\n\n"])).toEqual([{ event: "message", data: "x" }])
  })

  it("accepts retry only when it is all ASCII digits", () => {
    const seen: Array<number> = []
    const events = Effect.runSync(parseChunks(
      ["retry: 1x\ndata: a\n\nretry: -5\ndata: b\n\nretry: ١٢\ndata: c\n\nretry:\ndata: d\n\nretry: 0250\ndata: e\n\n"],
      { onRetry: (ms) => seen.push(ms) }
    ))
    expect(events).toEqual([
      { event: "message", data: "a" },
      { event: "message", data: "b" },
      { event: "message", data: "c" },
      { event: "message", data: "d" },
      { event: "message", data: "e", retry: 250 }
    ])
    expect(seen).toEqual([250])
  })

  it("reports retry from a block that dispatches nothing", () => {
    const seen: Array<number> = []
    const events = Effect.runSync(parseChunks(["retry: 3000\n\n"], { onRetry: (ms) => seen.push(ms) }))
    expect(events).toEqual([])
    expect(seen).toEqual([3000])
  })

  it("dispatches nothing for a block without data", () => {
    expect(parseSync(["id: 1\nevent: x\n\n\n\ndata: a\n\n"])).toEqual([{ event: "message", data: "a" }])
  })

  it("discards an unterminated block at the end of the stream", () => {
    expect(parseSync(["data: a\n\ndata: b\n"])).toEqual([{ event: "message", data: "a" }])
    expect(parseSync(["data: a\n\ndata: b"])).toEqual([{ event: "message", data: "a" }])
  })

  it("turns invalid UTF-8 into U+FFFD, also across chunks", () => {
    expect(parseSync([new Uint8Array([0x64, 0x61, 0x74, 0x61, 0x3a, 0xff, 0x0a, 0x0a])])).toEqual([
      { event: "message", data: "\uFFFD" }
    ])
    // "é" split over two chunks decodes as one character.
    expect(parseSync(["data: ", new Uint8Array([0xc3]), new Uint8Array([0xa9, 0x0a, 0x0a])])).toEqual([
      { event: "message", data: "é" }
    ])
    // A truncated sequence at the very end becomes U+FFFD in a discarded block.
    expect(parseSync(["data: a\n\ndata: ", new Uint8Array([0xe2, 0x82])])).toEqual([{ event: "message", data: "a" }])
  })

  it.effect("fails with SseEventTooLarge past maxEventBytes, after the events before it", () =>
    Effect.gen(function*() {
      const big = "x".repeat(1000)
      const chunks = ["id: 1\ndata: ok\n\n"]
      for (let i = 0; i < 50; i++) chunks.push(`data: ${big}\n`)
      const seen: Array<Plain> = []
      const result = yield* Stream.fromIterable(chunks.map((c) => encoder.encode(c))).pipe(
        Sse.parse({ maxEventBytes: 10_000 }),
        Stream.runForEach((e) => Effect.sync(() => seen.push(plain(e)))),
        Effect.either
      )
      expect(seen).toEqual([{ id: "1", event: "message", data: "ok" }])
      expect(Either.isLeft(result) && result.left).toEqual(new Sse.SseEventTooLarge({ maxEventBytes: 10_000, afterEventId: "1" }))
    }))

  it.effect("bounds a single endless line too", () =>
    Effect.gen(function*() {
      const endless = Stream.make(encoder.encode("data: ")).pipe(
        Stream.concat(Stream.repeatValue(encoder.encode("y".repeat(4096))))
      )
      const result = yield* endless.pipe(Sse.parse({ maxEventBytes: 1 << 20 }), Stream.runDrain, Effect.either)
      expect(Either.isLeft(result) && result.left._tag).toBe("SseEventTooLarge")
    }))

  it.effect("emits one output chunk per input chunk", () =>
    Effect.gen(function*() {
      const chunks = yield* Stream.fromChunks(
        Chunk.of(encoder.encode("data: a\n\ndata: b\n\ndata: c")),
        Chunk.of(encoder.encode("\n\n"))
      ).pipe(
        Sse.parse(),
        Stream.chunks,
        Stream.runCollect
      )
      expect(Chunk.toReadonlyArray(chunks).map((c) => c.length)).toEqual([2, 1])
    }))
})

describe("Sse.encode", () => {
  it("refuses ids and event types that would inject fields", () => {
    expect(() => Sse.encode(new SseEvent({ id: "1\ndata: evil", data: "x" }))).toThrow()
    expect(() => Sse.encode(new SseEvent({ id: "a\u0000", data: "x" }))).toThrow()
    expect(() => Sse.encode(new SseEvent({ event: "a\rb", data: "x" }))).toThrow()
  })
})

// Values SSE can carry: ids without CR, LF or NUL; non-empty event types without
// CR or LF; data without CR (a lone CR is a line end and comes back as LF).
const noBreaks = fc.string({ unit: "binary" }).map((s) => s.replace(/[\r\n\u0000]/g, "_"))
const arbEvent = fc.record(
  {
    id: noBreaks,
    event: noBreaks.filter((s) => s.length > 0),
    data: fc.string({ unit: "binary" }).map((s) => s.replace(/\r/g, "\n")),
    retry: fc.nat()
  },
  { requiredKeys: ["data"] }
).map((props) => new SseEvent(props))

const splitAt = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let start = 0
  for (const p of points) {
    out.push(bytes.subarray(start, p))
    start = p
  }
  out.push(bytes.subarray(start))
  return out
}

describe("Sse properties", () => {
  it("parse(encode(e)) gives e back", () => {
    fc.assert(
      fc.property(fc.array(arbEvent, { maxLength: 20 }), (events) => {
        const text = events.map(Sse.encode).join("")
        expect(parseSync([text])).toEqual(events.map(plain))
      }),
      { numRuns: 300 }
    )
  })

  it("any split of the same bytes yields the same events", () => {
    const arbBytes = fc.oneof(
      // Valid streams, possibly with CRLF or CR line ends and comments.
      fc.tuple(fc.array(arbEvent, { maxLength: 10 }), fc.constantFrom("\n", "\r\n", "\r"), fc.boolean()).map(
        ([events, eol, bom]) =>
          encoder.encode(
            (bom ? "\uFEFF" : "") + events.map((e) => Sse.encode(e).replace(/\n/g, eol) + `: c${eol}`).join("")
          )
      ),
      // Arbitrary text from SSE's alphabet, including broken UTF-8.
      fc.array(fc.constantFrom(..."data:id: event:retry:12\r\n\n\nx\u0000é€😀".split("")), { maxLength: 200 }).map((parts) =>
        encoder.encode(parts.join(""))
      ),
      fc.uint8Array({ maxLength: 300 })
    )
    fc.assert(
      fc.property(arbBytes, fc.array(fc.nat(), { maxLength: 30 }), (bytes, cuts) => {
        expect(parseSync(splitAt(bytes, cuts))).toEqual(parseSync([bytes]))
      }),
      { numRuns: 500 }
    )
  })

  it("byte-at-a-time feeding equals whole feeding", () => {
    const text = "\uFEFFid: 1\r\ndata: é😀\r\rretry: 7\ndata: b\r\n\r\n: c\nid\ndata\n\n"
    const bytes = encoder.encode(text)
    const single = Array.from(bytes, (b) => new Uint8Array([b]))
    expect(parseSync(single)).toEqual(parseSync([bytes]))
    expect(parseSync([bytes])).toEqual([
      { id: "1", event: "message", data: "é😀" },
      { event: "message", data: "b", retry: 7 },
      { id: "", event: "message", data: "" }
    ])
  })
})
