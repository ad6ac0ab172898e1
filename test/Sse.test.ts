import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Equal, Hash, Schema, Stream } from "effect"
import * as fc from "fast-check"
import { execFileSync } from "node:child_process"
import { isIdOnly } from "../src/wire/internal/idOnly.js"
import { Parser } from "../src/wire/internal/parser.js"
import * as Sse from "../src/wire/Sse.js"
import { SseEvent } from "../src/wire/SseEvent.js"
import * as SseEventSchema from "../src/wire/SseEventSchema.js"

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

const parseSync = (chunks: ReadonlyArray<string | Uint8Array>, options?: Sse.ParseOptions) =>
  Effect.runSync(parseChunks(chunks, options))

const bytesOf = (chunk: string | Uint8Array) => typeof chunk === "string" ? encoder.encode(chunk) : chunk

/** The `Parser` directly: what each push returns, so tests can see when an event comes out. */
const pushes = (chunks: ReadonlyArray<string | Uint8Array>, options?: Partial<ConstructorParameters<typeof Parser>[0]>) => {
  const parser = new Parser({ maxEventBytes: 1 << 20, ...options })
  const out = chunks.map((chunk) => parser.push(Chunk.of(bytesOf(chunk))).map(plain))
  return { pushes: out, end: parser.end().map(plain), error: parser.error }
}

describe("Sse.parse (WHATWG rules)", () => {
  it("makes events indistinguishable from SseEvent's constructor's: class, equality, fields and their order", () => {
    const parser = new Parser({ maxEventBytes: 1 << 20 })
    const parsed = parser.push(Chunk.of(encoder.encode(
      "id: 1\ndata: x\n\ndata: y\nevent: t\nretry: 5\n\nid: 2\nevent: e\ndata: z\nretry: 7\n\n"
    )))
    const made = [
      new SseEvent({ id: "1", data: "x" }),
      new SseEvent({ data: "y", event: "t", retry: 5 }),
      new SseEvent({ id: "2", event: "e", data: "z", retry: 7 })
    ]
    expect(parsed.length).toBe(made.length)
    parsed.forEach((event, i) => {
      expect(event).toBeInstanceOf(SseEvent)
      expect(Equal.equals(event, made[i])).toBe(true)
      expect(JSON.stringify(event)).toBe(JSON.stringify(made[i]))
    })
  })

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

describe("SseEvent (a plain class since issue 18, as the Schema.Class behaved)", () => {
  it("defaults event to \"message\" and data to \"\", keeps id and retry only when given", () => {
    const made = new SseEvent()
    expect([made.event, made.data, Object.keys(made)]).toEqual(["message", "", ["event", "data"]])
    expect(Object.keys(new SseEvent({ retry: 0, data: "x", id: "1", event: "t" }))).toEqual(["id", "event", "data", "retry"])
    // An id given as undefined stays a key, as the Schema.Class kept it (equality counts keys).
    expect(Object.keys(new SseEvent({ id: undefined }))).toEqual(["id", "event", "data"])
  })

  it("refuses a field of the wrong type or a retry that is not a non-negative integer, unless told not to check", () => {
    for (const props of [{ retry: -1 }, { retry: 1.5 }, { retry: Number.NaN }, { retry: 2 ** 53 }, { retry: "5" }, { data: 5 }, { event: null }, { id: 1 }]) {
      expect(() => new SseEvent(props as never)).toThrow(/SseEvent's (retry|data|event|id) must be/)
      expect(new SseEvent(props as never, true)).toBeInstanceOf(SseEvent)
      expect(new SseEvent(props as never, { disableValidation: true })).toBeInstanceOf(SseEvent)
    }
    expect(new SseEvent({ retry: 0 }).retry).toBe(0)
  })

  it("is equal and hashes alike by its fields, whatever the argument's key order", () => {
    const a = new SseEvent({ id: "1", event: "t", data: "x", retry: 5 })
    const b = new SseEvent({ retry: 5, data: "x", event: "t", id: "1" })
    expect(Equal.equals(a, b)).toBe(true)
    expect(Hash.hash(a)).toBe(Hash.hash(b))
    expect(Equal.equals(a, new SseEvent({ id: "1", event: "t", data: "y", retry: 5 }))).toBe(false)
    expect(Equal.equals(new SseEvent({ data: "x" }), new SseEvent({ id: "", data: "x" }))).toBe(false)
    // The Schema.Class's own hash of these fields (issue 18: hashes kept in a HashSet stay valid).
    expect(Hash.hash(new SseEvent({ id: "1", data: "x" }))).toBe(1013004490)
  })

  it("prints as the Schema.Class did", () => {
    expect(String(new SseEvent({ id: "1", data: "x" }))).toBe(
      "SseEvent({ \"id\": \"1\", \"event\": \"message\", \"data\": \"x\", \"retry\": undefined })"
    )
    expect(JSON.stringify(new SseEvent({ data: "x", retry: 3 }))).toBe("{\"event\":\"message\",\"data\":\"x\",\"retry\":3}")
  })
})

describe("SseEventSchema (issue 18: SseEvent's schema, off the root)", () => {
  it("decodes SseEvents from JSON with the defaults, and encodes them back", () => {
    const json = Schema.parseJson(SseEventSchema.SseEvent)
    const decoded = Schema.decodeUnknownSync(json)("{\"id\":\"1\",\"retry\":3}")
    expect(decoded).toBeInstanceOf(SseEvent)
    expect(Equal.equals(decoded, new SseEvent({ id: "1", retry: 3 }))).toBe(true)
    expect(Schema.encodeSync(json)(decoded)).toBe("{\"id\":\"1\",\"event\":\"message\",\"data\":\"\",\"retry\":3}")
    expect(Schema.is(SseEventSchema.SseEvent)(decoded)).toBe(true)
    expect(Schema.is(SseEventSchema.SseEvent)({ event: "message", data: "" })).toBe(false)
  })

  it("fails to decode what the class refuses, as a ParseError", () => {
    for (const input of [{ retry: -1 }, { retry: 1.5 }, { data: 5 }, { id: null }, "x"]) {
      const result = Schema.decodeUnknownEither(SseEventSchema.SseEvent)(input)
      expect(Either.isLeft(result) && result.left._tag).toBe("ParseError")
    }
  })
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

describe("Sse.parse line ends (issue 9, 1)", () => {
  it("dispatches a CR-terminated event in the push that completes it, without waiting for the next byte", () => {
    expect(pushes(["id: 1\rdata: a\r\r"]).pushes).toEqual([[{ id: "1", event: "message", data: "a" }]])
    expect(pushes(["data: a\r", "\r"]).pushes).toEqual([[], [{ event: "message", data: "a" }]])
  })

  it("swallows only the LF right after a CR, also in the next chunk", () => {
    expect(parseSync(["data: a\r", "\ndata: b\n", "\n"])).toEqual([{ event: "message", data: "a\nb" }])
    // The flag is cleared by the next byte whatever it is: a later LF is a line end again.
    expect(parseSync(["data: a\r", "data: b\n", "\n"])).toEqual([{ event: "message", data: "a\nb" }])
    // Empty chunks in between keep it.
    expect(parseSync(["data: a\r", "", "\n", "\n"])).toEqual([{ event: "message", data: "a" }])
  })

  it("reads CR CR as two line ends and CRLF split anywhere as one", () => {
    expect(parseSync(["data: a\r\rdata: b\r\r"])).toEqual([
      { event: "message", data: "a" },
      { event: "message", data: "b" }
    ])
    const text = "id: 1\r\ndata: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"
    for (let cut = 0; cut <= text.length; cut++) {
      expect(parseSync([text.slice(0, cut), text.slice(cut)])).toEqual([
        { id: "1", event: "message", data: "a\nb" },
        { event: "message", data: "c" }
      ])
    }
  })

  it("dispatches at a CR that is the body's last byte", () => {
    expect(pushes(["data: a\r", "\r"]).end).toEqual([])
    expect(parseSync(["data: a\r\r"])).toEqual([{ event: "message", data: "a" }])
    expect(parseSync(["data: a\r"])).toEqual([])
  })
})

describe("Sse.parse BOM", () => {
  it("drops a real BOM at the start even split across chunks, and only there", () => {
    expect(parseSync([new Uint8Array([0xef]), new Uint8Array([0xbb]), new Uint8Array([0xbf]), "data: a\n\n"])).toEqual([
      { event: "message", data: "a" }
    ])
    // Not at the start: the BOM is part of the field name, an unknown field.
    expect(parseSync(["data: a\n\n", "\uFEFFdata: b\n\ndata: c\n\n"])).toEqual([
      { event: "message", data: "a" },
      { event: "message", data: "c" }
    ])
    // Half a BOM then text: the line is an unknown field, not eaten into the next.
    expect(parseSync([new Uint8Array([0xef, 0xbb]), "data: a\n\ndata: b\n\n"])).toEqual([{ event: "message", data: "b" }])
  })

  it("never eats text that looks like a BOM in Latin-1, nor a U+FEFF inside a value", () => {
    // "ï»¿" as the first text of the stream, on its own chunk and then with a field after it.
    expect(parseSync(["\u00ef\u00bb\u00bf", "data: a\n\n"])).toEqual([])
    expect(parseSync(["\u00ef\u00bb\u00bfdata: a\n\ndata: b\n\n"])).toEqual([{ event: "message", data: "b" }])
    expect(parseSync(["data: \u00ef\u00bb\u00bf\n\n"])).toEqual([{ event: "message", data: "\u00ef\u00bb\u00bf" }])
    expect(parseSync(["data: \uFEFFa\n\n"])).toEqual([{ event: "message", data: "\uFEFFa" }])
    expect(parseSync(["data: a\n\ndata: \uFEFF", "b\n\n"])).toEqual([
      { event: "message", data: "a" },
      { event: "message", data: "\uFEFFb" }
    ])
  })
})

describe("Sse.parse UTF-8", () => {
  it("decodes split and invalid sequences as the whole stream would, in either decoding path", () => {
    const bytes = encoder.encode("data: é€😀 ascii-tail-longer-than-13\nid: é-long-id-é-long-id\n\n")
    const bad = new Uint8Array([...encoder.encode("data: a"), 0xe2, 0x82, 0x41, 0xff, 0x80, 0x0a, 0x0a])
    for (const input of [bytes, bad]) {
      const whole = new TextDecoder().decode(input)
      for (let cut = 0; cut <= input.length; cut++) {
        const events = parseSync([input.subarray(0, cut), input.subarray(cut)])
        expect(events.length).toBe(1)
        expect(whole).toContain(events[0]!.data)
      }
    }
    expect(parseSync([bad])).toEqual([{ event: "message", data: "a\uFFFDA\uFFFD\uFFFD" }])
  })
})

describe("Sse.parse maxEventBytes (issue 9, 7)", () => {
  const tooLarge = (afterEventId?: string) => (result: Either.Either<unknown, Sse.SseParseError>) =>
    expect(Either.isLeft(result) && result.left).toEqual(new Sse.SseEventTooLarge({ maxEventBytes: 1024, afterEventId }))

  it("fails an event that arrives whole within one read", () => {
    const result = Effect.runSync(
      parseChunks(["id: 0\ndata: ok\n\n" + `data: ${"x".repeat(64 * 1024)}\n\n`], { maxEventBytes: 1024 }).pipe(Effect.either)
    )
    tooLarge("0")(result)
  })

  it("counts id and event type as well as data", () => {
    const run = (text: string) => Effect.runSync(parseChunks([text], { maxEventBytes: 1024 }).pipe(Effect.either))
    tooLarge()(run(`id: ${"i".repeat(1025)}\n\n`))
    tooLarge()(run(`event: ${"e".repeat(600)}\ndata: ${"d".repeat(425)}\n\n`))
    tooLarge()(run(`data: ${"d".repeat(512)}\ndata: ${"d".repeat(512)}\n\n`)) // the joining LF counts
    expect(Either.isRight(run(`data: ${"d".repeat(512)}\ndata: ${"d".repeat(511)}\n\n`))).toBe(true)
    // UTF-8 bytes, not UTF-16 units: 342 × "€" is 1026 bytes in 342 units.
    tooLarge()(run(`data: ${"€".repeat(342)}\n\n`))
  })

  it("takes an event of exactly the limit and fails one byte more, whatever the chunking", () => {
    const arb = fc.record({
      id: fc.option(noBreaks, { nil: undefined }),
      event: fc.option(noBreaks.filter((s) => s.length > 0 && s !== "message"), { nil: undefined }),
      data: fc.string({ unit: "binary", minLength: 1 }).map((s) => s.replace(/\r/g, "\n"))
    })
    fc.assert(
      fc.property(arb, fc.array(fc.nat(), { maxLength: 20 }), (props, cuts) => {
        const event = new SseEvent(props)
        const size = [props.id ?? "", props.event ?? "", props.data].reduce((n, s) => n + encoder.encode(s).length, 0)
        const chunks = splitAt(encoder.encode(Sse.encode(event)), cuts)
        expect(parseSync(chunks, { maxEventBytes: size })).toEqual([plain(event)])
        const over = Effect.runSync(parseChunks(chunks, { maxEventBytes: size - 1 }).pipe(Effect.either))
        expect(Either.isLeft(over) && over.left._tag).toBe("SseEventTooLarge")
      }),
      { numRuns: 400 }
    )
  })

  it("skips comments, unknown fields and bad id or retry lines of any length without buffering them", () => {
    const comment = encoder.encode(":" + "c".repeat(64 * 1024 - 1))
    const parser = new Parser({ maxEventBytes: 1024 })
    let largest = 0
    const step = (chunk: Uint8Array) => {
      expect(parser.push(Chunk.of(chunk))).toEqual([])
      largest = Math.max(largest, parser.bufferedBytes)
    }
    // A 50 MB comment, then the same for each kind of line that can never reach an event.
    for (const head of [":", "x-unknown: ", "data : ", "retry: 12x", "id: a\u0000"]) {
      step(encoder.encode(head))
      for (let i = 0; i < 800; i++) step(head === ":" ? comment : comment.subarray(1))
      step(encoder.encode("\n"))
    }
    expect(parser.error).toBeUndefined()
    expect(largest).toBeLessThanOrEqual(1024)
    expect(parser.push(Chunk.of(encoder.encode("data: ok\n\n"))).map(plain)).toEqual([{ event: "message", data: "ok" }])
  })
})

describe("Parser id-only blocks (issue 9, 8)", () => {
  it("emits a block with an id and no data as a marked event, in stream order", () => {
    const parser = new Parser({ maxEventBytes: 1 << 20, idOnlyBlocks: true })
    const events = parser.push(Chunk.of(encoder.encode("id: 5\n\ndata: a\n\nid:\n\nevent: x\nid: 7\nretry: 10\n\nid: 8\ndata: b\n\n")))
    expect(events.map(plain)).toEqual([
      { id: "5", event: "message", data: "" },
      { event: "message", data: "a" },
      { id: "", event: "message", data: "" },
      { id: "7", event: "message", data: "" },
      { id: "8", event: "message", data: "b" }
    ])
    expect(events.map(isIdOnly)).toEqual([true, false, true, true, false])
    expect(events[0]).toBeInstanceOf(SseEvent)
  })

  it("emits nothing for them without the option, nor for a block without an id", () => {
    expect(parseSync(["id: 5\n\nid:\n\ndata: a\n\n"])).toEqual([{ event: "message", data: "a" }])
    expect(pushes(["event: x\n\nretry: 5\n\n: c\n\nid: a\u0000b\n\n"], { idOnlyBlocks: true }).pushes).toEqual([[]])
  })
})

describe("Sse.parse retry (issue 9, 9)", () => {
  it("sets an event's retry only from its own block; onRetry still fires at the line", () => {
    const seen: Array<number> = []
    const events = parseSync(["retry: 3000\n\ndata: a\n\nretry: 5\ndata: b\n\ndata: c\n\n"], { onRetry: (ms) => seen.push(ms) })
    expect(events).toEqual([
      { event: "message", data: "a" },
      { event: "message", data: "b", retry: 5 },
      { event: "message", data: "c" }
    ])
    expect(seen).toEqual([3000, 5])
  })

  it("keeps a huge retry a safe integer", () => {
    const seen: Array<number> = []
    expect(parseSync(["retry: " + "9".repeat(400) + "\ndata: a\n\n"], { onRetry: (ms) => seen.push(ms) })).toEqual([
      { event: "message", data: "a", retry: Number.MAX_SAFE_INTEGER }
    ])
    expect(seen).toEqual([Number.MAX_SAFE_INTEGER])
  })
})

/**
 * The spec's "interpret an event stream" on the whole decoded text, written as
 * plainly as possible: an oracle for the byte-level parser's fast paths (field
 * names picked by their first byte, reused event types, segments decoded once
 * for many values).
 */
const reference = (bytes: Uint8Array): Array<Plain> => {
  const lines = new TextDecoder().decode(bytes).split(/\r\n|\r|\n/)
  lines.pop() // the unterminated rest, which the end of the stream discards
  const out: Array<Plain> = []
  let data: Array<string> = []
  let id: string | undefined
  let type = ""
  let retry: number | undefined
  for (const line of lines) {
    if (line === "") {
      if (data.length > 0) {
        const event: Plain = { event: type === "" ? "message" : type, data: data.join("\n") }
        if (id !== undefined) event.id = id
        if (retry !== undefined) event.retry = retry
        out.push(event)
      }
      data = []
      id = undefined
      type = ""
      retry = undefined
      continue
    }
    const colon = line.indexOf(":")
    const field = colon === -1 ? line : line.slice(0, colon)
    const raw = colon === -1 ? "" : line.slice(colon + 1)
    const value = raw.startsWith(" ") ? raw.slice(1) : raw
    if (field === "data") data.push(value)
    else if (field === "event") type = value
    else if (field === "id" && !value.includes("\0")) id = value
    else if (field === "retry" && /^\d+$/.test(value)) retry = Number(value)
  }
  return out
}

const fragments: ReadonlyArray<string | Uint8Array> = [
  "data", "dat", "d", "ata", "event", "even", "e", "vent", "id", "i", "retry", "retr", "r", "etry", ":", " ", "x",
  "5", "\n", "\n", "\n", "\r", "\r\n", "tick", "é", "€", "😀", "\u0000", "\uFEFF",
  new Uint8Array([0xe9]), new Uint8Array([0xc3]), new Uint8Array([0xa9]), new Uint8Array([0xf0, 0x9f]),
  new Uint8Array([0xef, 0xbb, 0xbf])
]

const concatBytes = (parts: ReadonlyArray<string | Uint8Array>): Uint8Array => {
  const pieces = parts.map(bytesOf)
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const piece of pieces) {
    out.set(piece, at)
    at += piece.length
  }
  return out
}

describe("Sse.parse against the spec's text-level reading", () => {
  it("any soup of field-name pieces, separators, line ends and (broken) UTF-8, cut anywhere, reads as the spec says", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...fragments), { maxLength: 120 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (parts, cuts) => {
          const bytes = concatBytes(parts)
          const expected = reference(bytes)
          expect(parseSync([bytes])).toEqual(expected)
          expect(parseSync(splitAt(bytes, cuts))).toEqual(expected)
        }
      ),
      { numRuns: 1000 }
    )
  })

  it("reads names alone on their line, and names one byte longer or shorter, as the spec says", () => {
    const names = ["data", "event", "id", "retry"]
    // Each name, one byte shorter, longer, or with any one byte changed.
    const changed = (name: string) => Array.from(name, (_, i) => name.slice(0, i) + "x" + name.slice(i + 1))
    const variants = names.flatMap((name) => [name, name.slice(0, -1), name + "x", name + " ", "x" + name, ...changed(name)])
    for (const name of variants) {
      for (const rest of ["", ":", ": 7", ":7", ":  7"]) {
        const bytes = encoder.encode(`${name}${rest}\ndata: z\n\n${name}${rest}\r\n\r\n`)
        expect(parseSync([bytes])).toEqual(reference(bytes))
      }
    }
    expect(parseSync(["data\nid\nevent\n\n"])).toEqual([{ id: "", event: "message", data: "" }])
  })

  it("reuses a repeated event type only for the same ASCII bytes", () => {
    const bytes = concatBytes([
      "event: tick\ndata: 1\n\nevent: tick\ndata: 2\n\nevent: tock\ndata: 3\n\n",
      // "é" is C3 A9; a lone E9 byte (é's code point, invalid UTF-8) must not be taken for it.
      "event: é\ndata: 4\n\nevent: ", new Uint8Array([0xe9]), "\ndata: 5\n\nevent: é\ndata: 6\n\n",
      "event:\ndata: 7\n\nevent: tic\ndata: 8\n\nevent: ticks\ndata: 9\n\n"
    ])
    expect(parseSync([bytes]).map((e) => e.event)).toEqual(
      ["tick", "tick", "tock", "é", "\uFFFD", "é", "message", "tic", "ticks"]
    )
    expect(parseSync([bytes])).toEqual(reference(bytes))
  })

  it("slices values from segments correctly around non-ASCII text, long lines and chunk ends", () => {
    // Values of every length around the segment size (1 KiB), with multi-byte and
    // invalid bytes near their ends, in one big chunk and cut at every 97 bytes.
    const parts: Array<string | Uint8Array> = []
    for (let n = 0; n < 60; n++) {
      const filler = "x".repeat(990 + n)
      parts.push(`id: ${n}\nevent: t${n % 3}\ndata: ${filler}`, n % 4 === 0 ? "é" : n % 4 === 1 ? new Uint8Array([0xc3]) : "a",
        "\ndata: ", n % 2 === 0 ? "😀" : "b", "\n\n")
    }
    const bytes = concatBytes(parts)
    const expected = reference(bytes)
    expect(expected.length).toBe(60)
    expect(parseSync([bytes])).toEqual(expected)
    const cuts: Array<Uint8Array> = []
    for (let i = 0; i < bytes.length; i += 97) cuts.push(bytes.subarray(i, i + 97))
    expect(parseSync(cuts)).toEqual(expected)
  })

  it("finds line ends in decoded segments as in the bytes: across segment edges, past them, at chunk edges", () => {
    // Runs around the segment size (1 KiB) between the fragments, so that lines end just
    // before, at and after a segment's end, span several segments, and CR LF straddles an
    // edge; chunks as Node Buffers and as plain Uint8Arrays (what fetch gives).
    const runs = [
      ...[1, 1017, 1018, 1023, 1024, 1025, 2100].map((n) => "x".repeat(n)),
      ...[1, 511, 512, 1100].map((n) => "é".repeat(n)),
      "€".repeat(341)
    ]
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constantFrom(...fragments), fc.constantFrom(...runs)), { maxLength: 60 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.boolean(),
        (parts, cuts, plainArrays) => {
          const bytes = concatBytes(parts)
          const expected = reference(bytes)
          const asInput = (chunk: Uint8Array) =>
            plainArrays ? new Uint8Array(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length)
          expect(parseSync([asInput(bytes)])).toEqual(expected)
          expect(parseSync(splitAt(bytes, cuts).map(asInput))).toEqual(expected)
        }
      ),
      { numRuns: 400 }
    )
  })

  it("reads the same without Node's Buffer, as in a browser: lines searched in the typed arrays themselves", () => {
    const parts: Array<string | Uint8Array> = []
    for (let n = 0; n < 40; n++) {
      const eol = ["\r", "\n", "\r\n"][n % 3]!
      parts.push(`id: ${n}${eol}data: ${"x".repeat(1000 + n)}`, n % 2 === 0 ? "é" : "a", `${eol}data: b${eol}${eol}`)
    }
    const bytes = concatBytes(parts)
    // Its own process: the parser picks its search when loaded, and vitest itself needs Buffer.
    const script = `
      globalThis.Buffer = undefined
      const { Chunk } = await import("effect")
      const { Parser } = await import("./src/wire/internal/parser.ts")
      const bytes = Uint8Array.from(atob(${JSON.stringify(btoa(String.fromCharCode(...bytes)))}), (c) => c.charCodeAt(0))
      const parser = new Parser({ maxEventBytes: 1 << 20 })
      const events = []
      for (let i = 0; i < bytes.length; i += 700) events.push(...parser.push(Chunk.of(bytes.subarray(i, i + 700))))
      console.log(JSON.stringify(events.map(({ id, event, data }) => ({ id, event, data }))))
    `
    const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8" })
    const expected = reference(bytes)
    expect(expected.length).toBe(40)
    expect(JSON.parse(out)).toEqual(expected)
  })

  it("ends a line at a CR, LF or CR LF at every position around a segment's end", () => {
    for (let n = 1010; n <= 1030; n++) {
      for (const eol of ["\n", "\r", "\r\n"]) {
        const text = `data: ${"x".repeat(n)}${eol}id: 7${eol}data: y${eol}${eol}event: e${eol}data: ${"é".repeat(n % 7)}${eol}${eol}`
        const bytes = encoder.encode(`id: 1${eol}${text}`)
        const expected = reference(bytes)
        expect(expected.length).toBe(2)
        expect(parseSync([bytes])).toEqual(expected)
        expect(parseSync([bytes.subarray(0, n), bytes.subarray(n)])).toEqual(expected)
      }
    }
  })

  it("slices values of multi-byte text from their segment, past comments, unknown fields and CR LF, across 64 KiB chunks", () => {
    const parts: Array<string> = []
    for (let n = 0; n < 2000; n++) {
      const eol = ["\n", "\r", "\r\n"][n % 3]!
      parts.push(
        `: né ${n}${eol}id: é${n}${eol}x-é: ${"€".repeat(n % 5)}${eol}event: ${n % 4 === 0 ? "tick" : "tické"}${eol}`,
        `data: ${"é".repeat(n % 50)}😀${n}${eol}data:${"€".repeat(n % 7)}${eol}${eol}`
      )
    }
    const bytes = encoder.encode(parts.join(""))
    const expected = reference(bytes)
    expect(expected.length).toBe(2000)
    expect(parseSync([bytes])).toEqual(expected)
    const chunks: Array<Uint8Array> = []
    for (let i = 0; i < bytes.length; i += 64 * 1024) chunks.push(bytes.subarray(i, i + 64 * 1024))
    expect(parseSync(chunks)).toEqual(expected)
  })

  it("delivers nothing of a block whose data line is too large, not even at the empty line right after it", () => {
    const chunk = `id: 1\ndata: ok\n\nid: 2\ndata: a\ndata: ${"x".repeat(2000)}\n\ndata: after\n\n`
    const result = pushes([chunk], { maxEventBytes: 1024 })
    expect(result.pushes).toEqual([[{ id: "1", event: "message", data: "ok" }]])
    expect(result.error).toEqual(new Sse.SseEventTooLarge({ maxEventBytes: 1024, afterEventId: "1" }))
  })

  it("keeps the events before a chunk that ends inside a character, and that character", () => {
    const head = encoder.encode("data: a\n\ndata: b")
    const chunk1 = concatBytes([head, new Uint8Array([0xc3])])
    const chunk2 = concatBytes([new Uint8Array([0xa9]), "\n\n"])
    expect(pushes([chunk1, chunk2]).pushes).toEqual([[{ event: "message", data: "a" }], [{ event: "message", data: "bé" }]])
    const lone = concatBytes([head, new Uint8Array([0xc3])])
    expect(pushes([lone, "\n\n"]).pushes).toEqual([[{ event: "message", data: "a" }], [{ event: "message", data: "b\uFFFD" }]])
  })
})
