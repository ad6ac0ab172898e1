/**
 * SseServer and StreamProducer over real HTTP on loopback (@effect/platform-node),
 * read by SseClient, the `eventsource` package and a plain node:http reader.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Duration, Effect, Either, Fiber, Metric, Option, Schedule, Stream } from "effect"
import { EventSource } from "eventsource"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as SseClient from "../src/client/SseClient.js"
import * as SqliteEventLog from "../src/engines/SqliteEventLog.js"
import * as EventLog from "../src/server/EventLog.js"
import * as SseServer from "../src/server/SseServer.js"
import * as StreamProducer from "../src/server/StreamProducer.js"
import { SettingsError } from "../src/Settings.js"
import { serve } from "./support/logServer.js"
import * as Reader from "./support/sseReader.js"

const token = "Bearer reader"
const auth = { authorization: token }

/** Reads `/streams/<name>`; `Bearer reader` may read, any other credential is refused with 403, none with 401. */
const authorize = (request: { readonly headers: Readonly<Record<string, string | undefined>> }) => {
  const given = request.headers["authorization"]
  if (given === undefined || given === "") return Effect.fail(new SseServer.SseAccessDenied({ status: 401, reason: "credentials required" }))
  return given === token
    ? Effect.void
    : Effect.fail(new SseServer.SseAccessDenied({ status: 403, reason: "not allowed to read this stream" }))
}

/** A router with the handler at `/streams/:name`; the URL of a stream. */
const setup = (options: Partial<SseServer.Options<HttpRouter.RouteContext>> = {}) =>
  Effect.gen(function*() {
    const app = yield* SseServer.make<HttpRouter.RouteContext>({
      stream: Effect.map(HttpRouter.params, (params) => params["name"]!),
      authorize,
      retry: Duration.millis(50),
      ...options
    })
    const served = yield* serve(HttpRouter.empty.pipe(HttpRouter.all("/streams/:name", app)))
    return (name: string, query = "") => `${served.origin}/streams/${name}${query}`
  })

const numbered = (from: number, to: number): Array<EventLog.EventInput> =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ data: String(from + i) }))

const append = (stream: string, events: ReadonlyArray<EventLog.EventInput>) =>
  Effect.flatMap(EventLog.EventLog, (log) => log.append(stream, events))

const info = (stream: string) => Effect.flatMap(EventLog.EventLog, (log) => log.info(stream))

/** A plain read with the reader's credentials; interrupting it closes the connection. */
const get = (url: string, options: Reader.ReadOptions = {}) =>
  Effect.promise((signal) => Reader.read(url, { ...options, headers: { ...auth, ...options.headers }, signal }))

/** The data of every event, as numbers; and whether the ids rose strictly (the log's order). */
const sequence = (events: ReadonlyArray<{ readonly id?: string | undefined; readonly data: string }>) => events.map((e) => Number(e.data))
/**
 * Events 1…total, `perTick` at a time every `tick`: a live source whose pace does not
 * hang on the timer's precision per event (a loaded machine stretches every sleep).
 */
const paced = (total: number, perTick: number, tick: Duration.DurationInput) =>
  Stream.range(1, total).pipe(
    Stream.map((n): EventLog.EventInput => ({ data: String(n) })),
    Stream.grouped(perTick),
    Stream.schedule(Schedule.spaced(tick)),
    Stream.flattenChunks
  )
const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

const memoryLog = EventLog.layerMemory()

// A full collection before each heap sample, so the figures are what is live, not what awaits collection.
setFlagsFromString("--expose_gc")
const gc = runInNewContext("gc") as () => void

describe("SseServer", () => {
  it.scopedLive("writes the log's ids and types, retry:, the headers that stop proxy buffering, and keep-alive comments", () =>
    Effect.gen(function*() {
      const url = yield* setup({ keepAliveInterval: Duration.millis(100) })
      const written = yield* append("headers", [{ data: "a" }, { event: "delta", data: "line 1\nline 2" }])
      const response = yield* get(url("headers"), { until: (r) => r.comments.length >= 1, timeoutMillis: 5_000 })
      expect(response.status).toBe(200)
      expect(response.headers["content-type"]).toBe("text/event-stream")
      expect(response.headers["cache-control"]).toBe("no-cache")
      expect(response.headers["x-accel-buffering"]).toBe("no")
      expect(response.retry).toBe(50)
      expect(response.events).toEqual([
        { id: written[0]!.id, event: undefined, data: "a" },
        { id: written[1]!.id, event: "delta", data: "line 1\nline 2" }
      ])
      expect(response.comments).toContain("keep-alive")
    }).pipe(Effect.provide(memoryLog)))

  it.scopedLive("Last-Event-ID, or the lastEventId query parameter, resumes right after it; the header wins over the parameter", () =>
    Effect.gen(function*() {
      const url = yield* setup()
      const ids = (yield* append("replay", numbered(1, 10))).map((e) => e.id)
      const upTo10 = (r: Reader.Response) => r.events.at(-1)?.data === "10"
      const fromHeader = yield* get(url("replay"), { headers: { "last-event-id": ids[2]! }, until: upTo10 })
      expect(sequence(fromHeader.events)).toEqual([4, 5, 6, 7, 8, 9, 10])
      const fromQuery = yield* get(url("replay", `?lastEventId=${encodeURIComponent(ids[2]!)}`), { until: upTo10 })
      expect(sequence(fromQuery.events)).toEqual([4, 5, 6, 7, 8, 9, 10])
      // An EventSource opened at ?lastEventId=<stored> sends its own newer id as the header when it reconnects.
      const both = yield* get(url("replay", `?lastEventId=${encodeURIComponent(ids[2]!)}`), {
        headers: { "last-event-id": ids[6]! },
        until: upTo10
      })
      expect(sequence(both.events)).toEqual([8, 9, 10])
      const fresh = yield* get(url("replay"), { until: upTo10 })
      expect(sequence(fresh.events)).toEqual(oneToN(10))
      expect(fresh.events.map((e) => e.id)).toEqual(ids)
    }).pipe(Effect.provide(memoryLog)))

  it.scopedLive("a completed stream: the response ends after the last event; a request at its end gets 204", () =>
    Effect.gen(function*() {
      const url = yield* setup()
      const ids = (yield* append("done", numbered(1, 3))).map((e) => e.id)
      yield* Effect.flatMap(EventLog.EventLog, (log) => log.complete("done"))
      const all = yield* get(url("done"), { timeoutMillis: 5_000 })
      expect(all.cut).toBe(false)
      expect(sequence(all.events)).toEqual([1, 2, 3])
      const rest = yield* get(url("done"), { headers: { "last-event-id": ids[0]! }, timeoutMillis: 5_000 })
      expect([rest.cut, sequence(rest.events)]).toEqual([false, [2, 3]])
      const atEnd = yield* get(url("done"), { headers: { "last-event-id": ids[2]! }, timeoutMillis: 5_000 })
      expect(atEnd.status).toBe(204)
    }).pipe(Effect.provide(memoryLog)))

  it.scopedLive("a failed stream: what is left, then the reason as an event of the error type, then the end", () =>
    Effect.gen(function*() {
      const url = yield* setup({ errorEvent: "failure" })
      const ids = (yield* append("broken", numbered(1, 2))).map((e) => e.id)
      yield* Effect.flatMap(EventLog.EventLog, (log) => log.fail("broken", "upstream answered 500"))
      const all = yield* get(url("broken"), { timeoutMillis: 5_000 })
      expect(all.cut).toBe(false)
      expect(all.events.map(({ data, event, id }) => ({ data, event, id }))).toEqual([
        { id: ids[0], event: undefined, data: "1" },
        { id: ids[1], event: undefined, data: "2" },
        { id: undefined, event: "failure", data: "upstream answered 500" }
      ])
      // Past the last event the reason comes again: the reader stops there, it is not told 204.
      const atEnd = yield* get(url("broken"), { headers: { "last-event-id": ids[1]! }, timeoutMillis: 5_000 })
      expect(atEnd.status).toBe(200)
      expect(atEnd.events.map((e) => [e.event, e.data])).toEqual([["failure", "upstream answered 500"]])
    }).pipe(Effect.provide(memoryLog)))

  it.scopedLive("a reader behind retention gets a gap event naming what it asked for and the first kept id, then the rest", () =>
    Effect.gen(function*() {
      const url = yield* setup()
      const log = yield* EventLog.EventLog
      yield* log.create("trimmed", { retention: { maxEvents: 3 } })
      const ids = (yield* append("trimmed", numbered(1, 10))).map((e) => e.id)
      yield* log.trim("trimmed")
      const response = yield* get(url("trimmed"), {
        headers: { "last-event-id": ids[1]! },
        until: (r) => r.events.at(-1)?.data === "10",
        timeoutMillis: 5_000
      })
      expect(response.status).toBe(200)
      const [gap, ...rest] = response.events
      expect(gap!.event).toBe("gap")
      expect(gap!.id).toBeUndefined()
      expect(JSON.parse(gap!.data)).toEqual({ lastEventId: ids[1], firstAvailable: ids[7] })
      expect(rest.map((e) => e.id)).toEqual(ids.slice(7))
      // A reader that is not behind gets no gap event.
      const current = yield* get(url("trimmed"), { headers: { "last-event-id": ids[7]! }, until: (r) => r.events.length >= 2 })
      expect(sequence(current.events)).toEqual([9, 10])
    }).pipe(Effect.provide(memoryLog)))

  describe("refusals: a status and one line, before any byte of a stream, and nothing written to the log", () => {
    const refused = (response: Reader.Response, status: number, line: RegExp) => {
      expect(response.status).toBe(status)
      expect(response.headers["content-type"]).toMatch(/^text\/plain/)
      expect(response.text).toMatch(/^[^\n]+\n$/)
      expect(response.text).toMatch(line)
    }

    it.scopedLive("401, 403, 400 (too long, malformed, another stream's, ahead), 404, 405", () =>
      Effect.gen(function*() {
        const url = yield* setup()
        const ids = (yield* append("kept", numbered(1, 3))).map((e) => e.id)
        const other = (yield* append("other", numbered(1, 1)))[0]!.id
        const before = yield* info("kept")
        const [generation, seq] = ids[2]!.split("-").map(Number) as [number, number]
        const cases: Array<[string, Reader.ReadOptions, number, RegExp]> = [
          ["no credentials", { headers: { authorization: "" } }, 401, /^credentials required$/m],
          ["wrong credentials", { headers: { authorization: "Bearer intruder" } }, 403, /^not allowed/],
          ["8 KiB + 1", { headers: { "last-event-id": "1".repeat(8 * 1024 + 1) } }, 400, /longer than 8192 bytes/],
          ["8 KiB, not an id", { headers: { "last-event-id": "1".repeat(8 * 1024) } }, 400, /never issued.*not an id/],
          ["malformed", { headers: { "last-event-id": "garbage" } }, 400, /never issued.*not an id/],
          ["another stream's", { headers: { "last-event-id": other } }, 400, /never issued.*another stream/],
          ["ahead", { headers: { "last-event-id": `${generation}-${seq + 5}` } }, 400, /never issued.*ahead/],
          ["malformed, as the query parameter", {}, 400, /never issued.*not an id/],
          ["POST", { method: "POST" }, 405, /GET/]
        ]
        for (const [name, options, status, line] of cases) {
          const query = name.endsWith("query parameter") ? "?lastEventId=garbage" : ""
          const response = yield* get(url("kept", query), { ...options, timeoutMillis: 5_000 })
          refused(response, status, line)
          expect(response.events, name).toEqual([])
        }
        expect(yield* info("kept")).toEqual(before)
        // Authorization comes first: without credentials a reader cannot even learn whether a stream exists.
        refused(yield* get(url("nobody"), { headers: { authorization: "" } }), 401, /credentials required/)
        const unknown = yield* get(url("nobody"), { timeoutMillis: 5_000 })
        refused(unknown, 404, /^no stream "nobody"$/m)
        expect(yield* info("nobody")).toEqual(Option.none())
      }).pipe(Effect.provide(memoryLog)))

    it.scopedLive("one reader more than maxReaders: 503 with Retry-After; a reader's place is freed when it leaves", () =>
      Effect.gen(function*() {
        const url = yield* setup({ maxReaders: 2, retryAfter: Duration.seconds(7) })
        yield* append("busy", numbered(1, 1))
        let holding = 0
        const hold = get(url("busy"), {
          until: (r) => {
            if (r.events.length === 1) holding++
            return false
          }
        })
        const first = yield* Effect.fork(hold)
        const second = yield* Effect.fork(hold)
        // Both readers got their event: both places are taken.
        yield* Effect.suspend(() => holding === 2 ? Effect.void : Effect.fail("not yet")).pipe(
          Effect.retry(Schedule.spaced(Duration.millis(10)))
        )
        const third = yield* get(url("busy"), { timeoutMillis: 5_000 })
        refused(third, 503, /too many readers/)
        expect(third.headers["retry-after"]).toBe("7")
        yield* Fiber.interrupt(first)
        yield* Fiber.interrupt(second)
        const after = yield* get(url("busy"), { until: (r) => r.events.length >= 1, timeoutMillis: 5_000 })
        expect(after.status).toBe(200)
      }).pipe(Effect.provide(memoryLog)))

    it.effect("settings the handler cannot run with are a typed error", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(SseServer.make({ stream: "s", authorize: () => Effect.void, maxReaders: 0 }))
        expect(error).toBeInstanceOf(SettingsError)
        expect(error).toMatchObject({ _tag: "SettingsError", module: "SseServer", setting: "maxReaders" })
        const gap = yield* Effect.flip(SseServer.make({ stream: "s", authorize: () => Effect.void, gapEvent: "a\nb" }))
        expect(gap).toBeInstanceOf(SettingsError)
        expect(gap).toMatchObject({ _tag: "SettingsError", module: "SseServer", setting: "gapEvent" })
      }))
  })

  it.scopedLive("CORS: the preflight allows Last-Event-ID; an allowed origin is named, another gets no CORS header", () =>
    Effect.gen(function*() {
      const url = yield* setup({ cors: { allowOrigins: ["http://app.test"], allowHeaders: ["authorization"] } })
      yield* append("shared", numbered(1, 1))
      const preflight = yield* get(url("shared"), {
        method: "OPTIONS",
        headers: {
          origin: "http://app.test",
          "access-control-request-method": "GET",
          "access-control-request-headers": "last-event-id"
        }
      })
      expect(preflight.status).toBe(204)
      expect(preflight.headers["access-control-allow-origin"]).toBe("http://app.test")
      expect(preflight.headers["access-control-allow-headers"]).toBe("last-event-id, authorization")
      expect(preflight.headers["access-control-allow-methods"]).toContain("GET")
      const allowed = yield* get(url("shared"), { headers: { origin: "http://app.test" }, until: (r) => r.events.length >= 1 })
      expect(allowed.headers["access-control-allow-origin"]).toBe("http://app.test")
      expect(allowed.headers["vary"]).toMatch(/origin/i)
      const other = yield* get(url("shared"), { headers: { origin: "http://evil.test" }, until: (r) => r.events.length >= 1 })
      expect(other.headers["access-control-allow-origin"]).toBeUndefined()
      // A refusal carries the CORS headers too, so a page can read its status.
      const denied = yield* get(url("shared"), { headers: { origin: "http://app.test", authorization: "Bearer x" } })
      expect([denied.status, denied.headers["access-control-allow-origin"]]).toEqual([403, "http://app.test"])
    }).pipe(Effect.provide(memoryLog)))

  it.scopedLive("real readers while a producer writes live: SseClient and the eventsource package with forced reconnects, each event once, in order", () =>
    Effect.gen(function*() {
      const url = yield* setup()
      const producers = yield* StreamProducer.StreamProducer
      const total = 600
      const source = paced(total, 10, Duration.millis(10))
      const running = yield* producers.start("live", source, { epoch: 1 })
      const viaClient = SseClient.stream(HttpClientRequest.get(url("live"), { headers: auth }), {
        initialDelay: Duration.millis(10),
        // Reconnects forced every 70 ms: each resumes with Last-Event-ID.
        reconnectNow: Stream.tick(Duration.millis(70)).pipe(Stream.drop(1)),
        maxAttempts: 1_000
      }).pipe(Stream.map((e) => e.data), Stream.runCollect, Effect.map(Chunk.toReadonlyArray), Effect.provide(FetchHttpClient.layer))
      const viaEventSource = Effect.async<ReadonlyArray<string>>((resume) => {
        const seen: Array<string> = []
        const source = new EventSource(url("live"), {
          fetch: (input, init) => fetch(input, { ...init, headers: { ...init?.headers, ...auth } })
        })
        source.onmessage = (event) => seen.push(event.data)
        // The stream completes, the response ends, the reconnect gets 204: the EventSource closes.
        source.onerror = () => {
          if (source.readyState === EventSource.CLOSED) resume(Effect.succeed(seen))
        }
        return Effect.sync(() => source.close())
      })
      const viaCuts = Effect.promise(async () => {
        const seen: Array<string> = []
        let last: string | undefined
        for (;;) {
          const response = await Reader.read(url("live"), {
            headers: { ...auth, ...(last === undefined ? {} : { "last-event-id": last }) },
            cutAfter: 1 + Math.floor(Math.random() * 80)
          })
          if (response.status === 204) return seen
          for (const event of response.events) seen.push(event.data)
          last = response.events.at(-1)?.id ?? last
        }
      })
      const [client, eventSource, cuts] = yield* Effect.all([viaClient, viaEventSource, viaCuts], { concurrency: "unbounded" })
      for (const received of [client, eventSource, cuts]) expect(received.map(Number)).toEqual(oneToN(total))
      expect(yield* running.await).toEqual({ _tag: "Completed", events: total })
    }).pipe(Effect.provide(StreamProducer.layer), Effect.provide(memoryLog)))
})

describe("StreamProducer", () => {
  const numbers = (to: number) => Stream.range(1, to).pipe(Stream.map((n): EventLog.EventInput => ({ data: String(n) })))
  /** Every kept event's data, read page by page (a read returns at most `maxReadLimit`), and the end. */
  const dataOf = (stream: string) =>
    Effect.gen(function*() {
      const log = yield* EventLog.EventLog
      const data: Array<number> = []
      let after: string | undefined
      for (;;) {
        const page = yield* log.read(stream, { after })
        for (const event of page.events) data.push(Number(event.data))
        if (page.events.length === 0 || page.end._tag === "Some") return { data, end: page.end }
        after = page.events.at(-1)!.id
      }
    })

  it.scopedLive("a reader leaving does not stop it: the stream is written to the end and completed", () =>
    Effect.gen(function*() {
      const url = yield* setup()
      const producers = yield* StreamProducer.StreamProducer
      const running = yield* producers.start("kept-going", paced(300, 10, Duration.millis(10)), { epoch: 1 })
      const early = yield* get(url("kept-going"), { cutAfter: 5 })
      expect(early.cut).toBe(true)
      expect(sequence(early.events).slice(0, 5)).toEqual([1, 2, 3, 4, 5])
      expect(early.count).toBeLessThan(300)
      expect(yield* running.await).toEqual({ _tag: "Completed", events: 300 })
      expect(yield* dataOf("kept-going")).toEqual({ data: oneToN(300), end: Option.some({ _tag: "Completed" }) })
    }).pipe(Effect.provide(StreamProducer.layer), Effect.provide(memoryLog)))

  it.scopedLive("cancel, as another instance does it through the log: the source is stopped, readers get the reason", () =>
    Effect.gen(function*() {
      const url = yield* setup()
      const producers = yield* StreamProducer.StreamProducer
      for (const [name, source] of [
        ["busy-source", Stream.repeatValue<EventLog.EventInput>({ data: "tick" }).pipe(Stream.schedule(Schedule.spaced("5 millis")))],
        ["silent-source", Stream.concat(numbers(2), Stream.never)]
      ] as const) {
        const stoppedSource = yield* Deferred.make<void>()
        const running = yield* producers.start(name, source.pipe(Stream.ensuring(Deferred.succeed(stoppedSource, undefined))), {
          epoch: 1,
          cancelPollInterval: Duration.millis(50)
        })
        const reader = yield* Effect.fork(get(url(name), { timeoutMillis: 10_000 }))
        yield* Effect.sleep(Duration.millis(100))
        // No StreamProducer service here: what an instance that does not run the producer calls.
        yield* StreamProducer.cancel(name)
        const outcome = yield* running.await
        expect(outcome).toMatchObject({ _tag: "Ended", end: { _tag: "Failed", reason: "cancelled" } })
        yield* Deferred.await(stoppedSource)
        const response = yield* Fiber.join(reader)
        expect(response.cut).toBe(false)
        expect(response.events.at(-1)).toMatchObject({ event: "error", data: "cancelled" })
        // Cancelling again, or an ended stream, is a no-op.
        yield* StreamProducer.cancel(name)
      }
    }).pipe(Effect.provide(StreamProducer.layer), Effect.provide(memoryLog)))

  it.scopedLive("a newer epoch fences the older producer: its next append writes nothing and it stops", () =>
    Effect.gen(function*() {
      const producers = yield* StreamProducer.StreamProducer
      const old = yield* producers.start(
        "taken-over",
        Stream.repeatValue<EventLog.EventInput>({ data: "old" }).pipe(Stream.schedule(Schedule.spaced("5 millis"))),
        { epoch: 1 }
      )
      yield* Effect.sleep(Duration.millis(60))
      const newer = yield* producers.start("taken-over", Stream.make<Array<EventLog.EventInput>>({ data: "new" }), { epoch: 2 })
      expect(yield* newer.await).toEqual({ _tag: "Completed", events: 1 })
      const outcome = yield* old.await
      expect(outcome).toMatchObject({ _tag: "Fenced", current: 2 })
      const { data, end } = yield* Effect.flatMap(EventLog.EventLog, (log) => log.read("taken-over")).pipe(
        Effect.map((r) => ({ data: r.events.map((e) => e.data), end: r.end }))
      )
      // Everything the old one wrote came before the newer one's event; nothing after it.
      expect(data.at(-1)).toBe("new")
      expect(data.slice(0, -1).every((d) => d === "old")).toBe(true)
      expect(end).toEqual(Option.some({ _tag: "Completed" }))
    }).pipe(Effect.provide(StreamProducer.layer), Effect.provide(memoryLog)))

  it.scopedLive("the source failing fails the stream with its reason, after the events it gave", () =>
    Effect.gen(function*() {
      const producers = yield* StreamProducer.StreamProducer
      const source = Stream.concat(numbers(3), Stream.fail(new Error("upstream reset\nby peer")))
      const running = yield* producers.start("upstream-failed", source, { epoch: 1 })
      expect(yield* running.await).toEqual({ _tag: "Failed", reason: "upstream reset by peer", events: 3 })
      expect(yield* dataOf("upstream-failed")).toEqual({
        data: [1, 2, 3],
        end: Option.some({ _tag: "Failed", reason: "upstream reset by peer" })
      })
    }).pipe(Effect.provide(StreamProducer.layer), Effect.provide(memoryLog)))

  it.scopedLive("appends are batched: what the source gives during an append goes in the next one", () =>
    Effect.gen(function*() {
      const producers = yield* StreamProducer.StreamProducer
      const before = (yield* Metric.value(StreamProducer.batchSize)).count
      const running = yield* producers.start("batched", numbers(5_000), { epoch: 1, maxBatch: 256 })
      expect(yield* running.await).toEqual({ _tag: "Completed", events: 5_000 })
      const appends = (yield* Metric.value(StreamProducer.batchSize)).count - before
      console.log(`producer: 5000 events in ${appends} appends (maxBatch 256)`)
      expect(appends).toBeGreaterThanOrEqual(Math.ceil(5_000 / 256))
      expect(appends).toBeLessThanOrEqual(Math.ceil(5_000 / 256) * 2)
      expect((yield* dataOf("batched")).data).toEqual(oneToN(5_000))
    }).pipe(Effect.provide(StreamProducer.layer), Effect.provide(memoryLog)))

  it.scopedLive("interrupted (its service shutting down): the stream is failed, so readers are not left waiting", () =>
    Effect.gen(function*() {
      const producers = yield* StreamProducer.StreamProducer
      const running = yield* producers.start("interrupted", Stream.concat(numbers(2), Stream.never), { epoch: 1 })
      yield* Effect.sleep(Duration.millis(50))
      yield* running.interrupt
      expect(yield* running.await).toEqual({ _tag: "Interrupted" })
      expect(yield* dataOf("interrupted")).toEqual({
        data: [1, 2],
        end: Option.some({ _tag: "Failed", reason: StreamProducer.interruptedReason })
      })
    }).pipe(Effect.provide(StreamProducer.layer), Effect.provide(memoryLog)))

  it.scoped("an epoch below 1 is a typed error, and nothing starts", () =>
    Effect.gen(function*() {
      const producers = yield* StreamProducer.StreamProducer
      const result = yield* Effect.either(producers.start("never", numbers(1), { epoch: 0 }))
      expect(Either.isLeft(result) && result.left).toBeInstanceOf(SettingsError)
      expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "SettingsError", module: "StreamProducer", setting: "epoch" })
      expect(yield* info("never")).toEqual(Option.none())
    }).pipe(Effect.provide(StreamProducer.layer), Effect.provide(memoryLog)))
})

describe("load, on a SQLite file log", () => {
  const sqliteLog = (dir: string) =>
    SqliteEventLog.layer(join(dir, "log.db"))
  const withDir = <A, E, R>(use: (dir: string) => Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "sse-server-load-"))),
      use,
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )

  /** Reads to the end (204), cutting each response after `cutAfter()` events and resuming from its last id. */
  const readToEnd = (url: string, cutAfter: () => number | undefined, onEvent: (data: string) => void) =>
    Effect.promise(async () => {
      let last: string | undefined
      let requests = 0
      for (;;) {
        requests++
        const response = await Reader.read(url, {
          headers: { ...auth, ...(last === undefined ? {} : { "last-event-id": last }) },
          cutAfter: cutAfter(),
          onEvent: (event) => onEvent(event.data)
        })
        if (response.status === 204) return requests
        if (response.status !== 200) throw new Error(`status ${response.status}: ${response.text}`)
        last = response.lastId ?? last
      }
    })

  it.scopedLive("1,000 readers with random disconnects and reconnects: each sees the whole sequence once, in order", () =>
    withDir((dir) =>
      Effect.gen(function*() {
        const url = yield* setup()
        const producers = yield* StreamProducer.StreamProducer
        const total = 50
        const readers = 1_000
        // Slow enough that readers join while it is written, and follow it live.
        const source = paced(total, 1, Duration.millis(100))
        const started = performance.now()
        const running = yield* producers.start("crowd", source, { epoch: 1 })
        const broken: Array<string> = []
        const requests = yield* Effect.forEach(
          Array.from({ length: readers }, (_, i) => i),
          (reader) => {
            let expected = 1
            return Effect.sleep(Duration.millis(Math.random() * 1_000)).pipe(
              Effect.zipRight(readToEnd(url("crowd"), () => 5 + Math.floor(Math.random() * 20), (data) => {
                if (Number(data) !== expected && broken.length < 10) broken.push(`reader ${reader}: ${data} for ${expected}`)
                expected++
              })),
              Effect.tap(() => {
                if (expected !== total + 1 && broken.length < 10) broken.push(`reader ${reader} ended at ${expected - 1}`)
              })
            )
          },
          { concurrency: "unbounded" }
        )
        const seconds = (performance.now() - started) / 1000
        const reconnects = requests.reduce((sum, n) => sum + n, 0) - readers
        console.log(
          `1000 readers × ${total} events: ${reconnects} reconnects (${(reconnects / readers).toFixed(1)} per reader), ${seconds.toFixed(1)} s`
        )
        expect(broken).toEqual([])
        // Cuts after 5 to 24 events: every reader was cut at least twice in 50 events, and came back each time.
        expect(reconnects).toBeGreaterThanOrEqual(2 * readers)
        expect(yield* running.await).toEqual({ _tag: "Completed", events: total })
      }).pipe(Effect.provide(StreamProducer.layer), Effect.provide(sqliteLog(dir)))
    ), 240_000)

  it.scopedLive("a reader held to a tenth of the others' pace delays none of them, and the server's heap stays bounded", () =>
    withDir((dir) => {
      // Small log buffers, so the bound the log promises is far below the slow reader's backlog.
      const logSettings = { readerBuffer: 64, maxReadLimit: 100 }
      return Effect.gen(function*() {
        const url = yield* setup()
        const producers = yield* StreamProducer.StreamProducer
        // A backlog (~70 MB) well above what the process holds anyway (readers, parsers, batch: 6-19 MB measured).
        const total = 20_000
        const fastReaders = 3
        const payload = "x".repeat(4_000)
        const eventBytes = payload.length + 30
        const source = Stream.range(1, total).pipe(Stream.map((n): EventLog.EventInput => ({ data: `${n} ${payload}` })))
        // The JS heap and the ArrayBuffers outside it: an encoded response chunk is a Uint8Array.
        const used = () => {
          gc()
          const memory = process.memoryUsage()
          return memory.heapUsed + memory.arrayBuffers
        }
        const baseline = used()
        let peak = 0
        const sampler = yield* Effect.fork(Effect.repeat(
          Effect.sync(() => {
            peak = Math.max(peak, used() - baseline)
          }),
          Schedule.spaced(Duration.millis(200))
        ))
        const started = performance.now()
        const running = yield* producers.start("fast-and-slow", source, { epoch: 1 })
        const progress = Array.from({ length: fastReaders }, () => 0)
        let slowSeen = 0
        let slowInOrder = true
        // Held to a tenth of the slowest fast reader's count, whatever pace this machine gives them.
        const slow = yield* Effect.fork(Effect.promise((signal) =>
          Reader.read(url("fast-and-slow"), {
            headers: auth,
            signal,
            allowed: () => Math.min(...progress) / 10,
            onEvent: (event) => {
              if (Number(event.data.slice(0, event.data.indexOf(" "))) !== ++slowSeen) slowInOrder = false
            }
          })
        ))
        const fast = yield* Effect.forEach(progress, (_, i) =>
          readToEnd(url("fast-and-slow"), () => undefined, (data) => {
            if (Number(data.slice(0, data.indexOf(" "))) === progress[i]! + 1) progress[i]!++
          }).pipe(Effect.map(() => progress[i]!)), { concurrency: "unbounded" })
        const fastDone = (performance.now() - started) / 1000
        const slowAtFastDone = slowSeen
        const produced = yield* running.await
        yield* Fiber.interrupt(sampler)
        yield* Fiber.interrupt(slow)
        const backlogBytes = (total - slowAtFastDone) * eventBytes
        // Holding the slow reader's backlog would cost at least the backlog itself (an unbounded
        // response buffer measured +149 MB); the readers, their parsers and the producer's batch
        // share this process, and the peak varied 6–19 MB with the machine's load, so the bound
        // is half the backlog: far from what holding it would cost.
        const bound = backlogBytes / 2
        console.log(
          `slow reader: the fast readers read ${total} events of ${eventBytes} bytes in ${fastDone.toFixed(1)} s; ` +
            `the slow one had ${slowAtFastDone} then (backlog ${(backlogBytes / 1e6).toFixed(1)} MB); ` +
            `heap and buffers peak +${(peak / 1e6).toFixed(1)} MB over ${(baseline / 1e6).toFixed(1)} MB (bound ${(bound / 1e6).toFixed(1)} MB)`
        )
        expect(produced).toEqual({ _tag: "Completed", events: total })
        expect(fast).toEqual(Array.from({ length: fastReaders }, () => total))
        expect(slowInOrder).toBe(true)
        // The others finished while the slow one was still near a tenth of the way: they did not wait for it.
        expect(slowAtFastDone).toBeLessThan(total / 2)
        // Its backlog is not held in the server's heap: the log bounds what a follower holds and
        // the socket's backpressure stops the response; the rest stays in the SQLite file.
        expect(backlogBytes).toBeGreaterThan(20e6)
        expect(peak).toBeLessThan(bound)
      }).pipe(Effect.provide(StreamProducer.layer), Effect.provide(SqliteEventLog.layer(join(dir, "log.db"), logSettings)))
    }), 240_000)
})
