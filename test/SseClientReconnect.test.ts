/**
 * The client's reconnect logic against scripted servers under TestClock: resume
 * headers, de-duplication, the retry budget, server-asked delays and statuses,
 * in milliseconds of wall time and independent of it.
 */
import type * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Duration, Effect, Exit, Option, Schedule, Stream } from "effect"
import * as Zlib from "node:zlib"
import * as EventTracker from "../src/client/EventTracker.js"
import * as SseClient from "../src/client/SseClient.js"
import type { SseEvent } from "../src/wire/SseEvent.js"
import * as Scripted from "./support/ScriptedServer.js"
import { runToEnd } from "./support/settle.js"

const url = "http://sse.test/events"
const fast = { initialDelay: "5 millis", maxDelay: "20 millis" } as const

/** Runs a stream of `url` against `server` to its end under TestClock; the events it emitted and its exit. */
const run = <E = never>(
  server: Scripted.ScriptedServer,
  options: SseClient.Options<E> = {},
  request: HttpClientRequest.HttpClientRequest = HttpClientRequest.get(url),
  limit: Duration.DurationInput = "1 hour"
) =>
  Effect.gen(function*() {
    const events: Array<SseEvent> = []
    const exit = yield* runToEnd(
      SseClient.stream(request, { ...fast, ...options }).pipe(
        Stream.runForEach((event) => Effect.sync(() => events.push(event))),
        Effect.provide(server.layer)
      ),
      { limit }
    )
    return { events, ids: events.map((e) => e.id), exit }
  })

const failureOf = <E>(exit: Exit.Exit<unknown, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const lastEventIds = (server: Scripted.ScriptedServer) => server.requests.map((r) => r.headers["last-event-id"])
const gaps = (server: Scripted.ScriptedServer) => server.requests.slice(1).map((r, i) => r.at - server.requests[i]!.at)

describe("SseClient resume point", () => {
  it.effect("a tracker derived from one (Object.create) has its own recordAll run, not the fast path (found in review)", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) =>
        n === 1 ? Scripted.events(request, ["id: 1\ndata: a\n\nid: 2\ndata: b\n\n"]) : Scripted.status(204)
      )
      const base = yield* EventTracker.make<never>({ maxTracked: 100 })
      const seen: Array<string | undefined> = []
      const tracker: EventTracker.EventTracker<never> = Object.create(base, {
        recordAll: {
          value: (events: Iterable<SseEvent>, options?: EventTracker.RecordAllOptions) => {
            for (const event of events) seen.push(event.id)
            return base.recordAll(events, options)
          }
        }
      })
      const { ids } = yield* run(server, { tracker })
      expect(ids).toEqual(["1", "2"])
      expect(seen).toEqual(["1", "2"])
    }))

  it.effect("sends Last-Event-ID after a cut; events completed before the cut are delivered", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) => {
        if (n === 1) return Scripted.events(request, ["id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: cut-mi"], "cut")
        // A lone CR ends a line at once: the event completed by the chunk's last
        // byte is delivered before the cut, not held back for an LF.
        if (n === 2) return Scripted.events(request, ["id: 2\rdata: b\r\rid: 3\rdata: c\r\r"], "cut")
        if (n === 3) return Scripted.events(request, ["id: 3\ndata: c\n\nid: 4\ndata: d\n\n"])
        return Scripted.status(204)
      })
      const { exit, ids } = yield* run(server)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(ids).toEqual(["1", "2", "3", "4"])
      expect(lastEventIds(server)).toEqual([undefined, "2", "3", "4"])
      expect(server.requests[0]!.headers.accept).toBe("text/event-stream")
    }))

  it.effect("never walks back: a server replaying its last 100 events, cut mid-replay again and again", () =>
    Effect.gen(function*() {
      const total = 600
      const block = (n: number) => `id: ${n}\ndata: event ${n}\n\n`
      const server = Scripted.make((request, n) => {
        const header = request.headers["last-event-id"]
        const last = header === undefined ? 0 : Number(header)
        if (last >= total) return Scripted.status(204)
        // Replays the 100 events up to the requested one, then new ones.
        const from = Math.max(1, last - 99)
        const chunks: Array<string> = []
        for (let id = from; id <= total; id++) chunks.push(block(id))
        // Two of every three connections are cut in the middle of the replay;
        // the third gets 150 events further.
        const replayed = last - from + 1
        const cutAt = n % 3 === 0 ? replayed + 150 : Math.floor(replayed / 2)
        return Scripted.events(request, chunks.slice(0, cutAt), "cut")
      })
      // The window covers one replay, not the walk back of several.
      const tracker = yield* EventTracker.make({ maxTracked: 100 })
      const { exit, events } = yield* run(server, { tracker, maxAttempts: 5 })
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(events.map((e) => e.data)).toEqual(Array.from({ length: total }, (_, i) => `event ${i + 1}`))
      const sent = lastEventIds(server).map((id) => id === undefined ? 0 : Number(id))
      for (let i = 1; i < sent.length; i++) expect(sent[i]).toBeGreaterThanOrEqual(sent[i - 1]!)
      // The run really cut replays: several requests repeat the same resume point.
      expect(sent.length).toBeGreaterThan(8)
    }))

  it.effect("an id-only block sets the resume point, `id:` alone clears it, and neither reaches the consumer", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) => {
        // MCP servers open every stream with a priming block.
        if (n === 1) return Scripted.events(request, ["id: 5\n\n"], "cut")
        if (n === 2) return Scripted.events(request, ["id: 6\ndata: a\n\n", "id:\n\n"])
        if (n === 3) return Scripted.events(request, ["id: 9\n\n"])
        return Scripted.status(204)
      })
      const { events, exit } = yield* run(server)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(events.map((e) => [e.id, e.data])).toEqual([["6", "a"]])
      expect(lastEventIds(server)).toEqual([undefined, "5", undefined, "9"])
    }))

  it.effect("an empty id: clears the Last-Event-ID and the event still arrives", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) =>
        n === 2 ? Scripted.status(204) : Scripted.events(request, ["id: 7\ndata: a\n\nid:\ndata: b\n\n"])
      )
      const { ids } = yield* run(server)
      expect(ids).toEqual(["7", ""])
      expect(lastEventIds(server)).toEqual([undefined, undefined])
    }))

  it.effect("starts from a restored tracker's lastEventId, or an explicit one seeded into the tracker", () =>
    Effect.gen(function*() {
      const server = Scripted.make(() => Scripted.status(204))
      const tracker = yield* EventTracker.make({ maxTracked: 10 })
      yield* tracker.restore({ lastEventId: Option.some("41"), recentIds: ["40", "41"] })
      yield* run(server, { tracker })
      yield* run(server, { lastEventId: "99" })
      yield* run(server, { tracker, lastEventId: "77" })
      expect(lastEventIds(server)).toEqual(["41", "99", "77"])
      // Seeding moves the cursor, not the window.
      expect(yield* tracker.snapshot).toEqual({ lastEventId: Option.some("77"), recentIds: ["40", "41"] })
    }))

  it.effect("drops events the tracker has seen and passes on events without id, in order", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) =>
        n === 2
          ? Scripted.status(204)
          : Scripted.events(request, ["id: 40\ndata: old\n\ndata: no-id\n\nid: 41\ndata: old\n\nid: 42\ndata: new\n\n"])
      )
      const tracker = yield* EventTracker.make({ maxTracked: 10 })
      yield* tracker.restore({ lastEventId: Option.some("41"), recentIds: ["40", "41"] })
      const { events } = yield* run(server, { tracker })
      expect(events.map((e) => e.data)).toEqual(["no-id", "new"])
      expect(yield* tracker.lastEventId).toEqual(Option.some("42"))
      expect(lastEventIds(server)).toEqual(["41", "42"])
    }))

  it.effect("an id no header can carry exactly ends the stream at once with SseResumeIdError", () =>
    Effect.gen(function*() {
      // The parser strips one space after the colon: "id:  x" is the id " x".
      for (const [line, id] of [["id: a\x01b", "a\x01b"], ["id:  lead", " lead"], ["id: trail ", "trail "], ["id: del\x7f", "del\x7f"]]) {
        const server = Scripted.make((request) => Scripted.events(request, [`${line}\ndata: x\n\n`]))
        const { exit, ids } = yield* run(server)
        expect(ids, JSON.stringify(id)).toEqual([id])
        expect(failureOf(exit)).toMatchObject({ _tag: "SseResumeIdError", lastEventId: id, url })
        expect(server.requests.length).toBe(1)
      }
      const server = Scripted.make(() => Scripted.status(204))
      const { exit } = yield* run(server, { lastEventId: "x\x1b" })
      expect(failureOf(exit)).toMatchObject({ _tag: "SseResumeIdError", lastEventId: "x\x1b" })
      expect(server.requests.length).toBe(0)
    }))

  it.effect("an id beyond ASCII goes out as its UTF-8 bytes; a tab inside an id as itself", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) =>
        n === 1
          ? Scripted.events(request, ["id: café-☕-1\ndata: a\n\n"])
          : n === 2
          ? Scripted.events(request, ["id: a\tb\ndata: b\n\n"])
          : Scripted.status(204)
      )
      yield* run(server)
      const [, second, third] = lastEventIds(server)
      expect(new TextDecoder().decode(Uint8Array.from(second!, (c) => c.charCodeAt(0)))).toBe("café-☕-1")
      expect(third).toBe("a\tb")
    }))
})

describe("SseClient request", () => {
  it.effect("keeps the caller's Accept, from the request or the headers Effect; sets text/event-stream otherwise", () =>
    Effect.gen(function*() {
      const server = Scripted.make(() => Scripted.status(204))
      const mcp = "application/json, text/event-stream"
      yield* run(server, {}, HttpClientRequest.post(url, { headers: { Accept: mcp } }))
      yield* run(server, { headers: Effect.succeed({ Accept: mcp }) })
      yield* run(server)
      expect(server.requests.map((r) => r.headers.accept)).toEqual([mcp, mcp, "text/event-stream"])
    }))

  it.effect("sends trace headers by default and none with tracePropagation: false", () =>
    Effect.gen(function*() {
      const server = Scripted.make(() => Scripted.status(204))
      yield* run(server)
      yield* run(server, { tracePropagation: false })
      const [traced, untraced] = server.requests
      expect(traced!.headers.traceparent).toBeDefined()
      expect(traced!.headers.b3).toBeDefined()
      expect(untraced!.headers.traceparent).toBeUndefined()
      expect(untraced!.headers.b3).toBeUndefined()
    }))

  it.effect("runs the headers Effect before every attempt", () =>
    Effect.gen(function*() {
      const server = Scripted.make((_request, n) => Scripted.status(n === 3 ? 204 : 500))
      let token = 0
      const headers = Effect.sync(() => ({ authorization: `Bearer ${++token}` }))
      yield* run(server, { headers })
      expect(server.requests.map((r) => r.headers.authorization)).toEqual(["Bearer 1", "Bearer 2", "Bearer 3"])
    }))
})

describe("SseClient statuses", () => {
  it.effect("isTransientStatus is exactly 408, 429, 500, 502, 503 and 504", () =>
    Effect.sync(() => {
      const transient: Array<number> = []
      for (let status = 100; status < 600; status++) if (SseClient.isTransientStatus(status)) transient.push(status)
      expect(transient).toEqual([408, 429, 500, 502, 503, 504])
    }))

  it.effect("429, 408 and 5xx transient statuses are retried", () =>
    Effect.gen(function*() {
      const statuses = [429, 408, 500, 502, 503, 504]
      const server = Scripted.make((_request, n) => Scripted.status(statuses[n - 1] ?? 204))
      const reasons: Array<unknown> = []
      const { exit } = yield* run(server, {
        onConnection: (s) => Effect.sync(() => s.state === "reconnecting" && reasons.push([s.reason, s.status]))
      })
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(server.requests.length).toBe(7)
      expect(reasons).toEqual(statuses.map((status) => ["status", status]))
    }))

  it.effect("what is not retried: 4xx, 501, 505 and an unfollowed 3xx fail at once with SseHttpError", () =>
    Effect.gen(function*() {
      for (const status of [400, 401, 403, 404, 406, 410, 501, 505, 300, 304]) {
        const server = Scripted.make(() => Scripted.status(status))
        const { exit } = yield* run(server)
        expect(failureOf(exit), String(status)).toMatchObject({ _tag: "SseHttpError", status, attempt: 1, url })
        expect(server.requests.length, String(status)).toBe(1)
      }
    }))

  it.effect("204 ends the stream without reconnecting", () =>
    Effect.gen(function*() {
      const server = Scripted.make(() => Scripted.status(204))
      const { exit, ids } = yield* run(server)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(ids).toEqual([])
      expect(server.requests.length).toBe(1)
    }))

  it.effect("a non-event-stream content type is fatal", () =>
    Effect.gen(function*() {
      const server = Scripted.make(() => new Response("<p>", { headers: { "content-type": "text/html" } }))
      const { exit } = yield* run(server)
      expect(failureOf(exit)).toMatchObject({ _tag: "SseContentTypeError", contentType: "text/html" })
      expect(server.requests.length).toBe(1)
    }))
})

describe("SseClient reconnect delay", () => {
  it.effect("waits at least the server's retry: before reconnecting", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) =>
        n === 2 ? Scripted.status(204) : Scripted.events(request, ["retry: 300\n\nid: 1\ndata: a\n\n"])
      )
      yield* run(server)
      expect(gaps(server)[0]).toBeGreaterThanOrEqual(300)
      expect(gaps(server)[0]).toBeLessThan(320)
    }))

  it.effect("retry: 1000000000000 waits maxRetryAfter, not forever", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) =>
        n === 2 ? Scripted.status(204) : Scripted.events(request, ["retry: 1000000000000\nid: 1\ndata: a\n\n"])
      )
      const delays: Array<number> = []
      const { exit } = yield* run(server, {
        onConnection: (s) => Effect.sync(() => s.state === "reconnecting" && delays.push(s.delayMillis))
      })
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(delays).toEqual([600_000])
      expect(gaps(server)).toEqual([600_000])
    }))

  it.effect("no delay can overflow a sleep: huge caps and schedules are clamped to 2^31 - 1 ms", () =>
    Effect.gen(function*() {
      const longest = 2 ** 31 - 1
      const server = Scripted.make((request, n) =>
        n % 2 === 0 ? Scripted.status(204) : Scripted.events(request, [`retry: 1000000000000\nid: ${n}\ndata: a\n\n`])
      )
      yield* run(server, { maxRetryAfter: "1000 days" }, undefined, "30 days")
      yield* run(server, { schedule: Schedule.spaced("1000 days") }, undefined, "60 days")
      expect(gaps(server)).toEqual([longest, 0, longest])
    }))

  it.effect("503 with Retry-After in seconds or as an HTTP date waits that long", () =>
    Effect.gen(function*() {
      const server = Scripted.make((_request, n) => {
        if (n === 1) return Scripted.status(503, { "retry-after": "1" })
        // TestClock starts at the epoch: this date is 90 seconds after the second request.
        if (n === 2) return Scripted.status(429, { "retry-after": new Date(1_000 + 90_000).toUTCString() })
        return Scripted.status(204)
      })
      yield* run(server)
      const [first, second] = gaps(server)
      expect(first).toBeGreaterThanOrEqual(1_000)
      expect(first).toBeLessThan(1_020)
      expect(second).toBeGreaterThanOrEqual(90_000)
      expect(second).toBeLessThan(90_020)
    }))

  it.effect("a Retry-After longer than maxRetryAfter waits only maxRetryAfter", () =>
    Effect.gen(function*() {
      const server = Scripted.make((_request, n) => Scripted.status(n === 1 ? 429 : 204, n === 1 ? { "retry-after": "86400" } : {}))
      yield* run(server, { maxRetryAfter: "200 millis" })
      expect(gaps(server)[0]).toBeGreaterThanOrEqual(190)
      expect(gaps(server)[0]).toBeLessThan(220)
    }))
})

describe("SseClient retry budget", () => {
  it.effect("fails with SseRetriesExhausted after maxAttempts without a new event; a graceful close spends it too", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) =>
        // Past the budget the server says stop: a budget refilled by mistake ends
        // the stream "successfully" at once instead of looping.
        n > 8
          ? Scripted.status(204)
          : n % 2 === 1
          ? Scripted.status(500)
          // A graceful close that delivers nothing new does not refill the budget.
          : Scripted.events(request, [": idle\n\nid: 1\ndata: replayed\n\n"])
      )
      const tracker = yield* EventTracker.make({ maxTracked: 10 })
      yield* tracker.restore({ lastEventId: Option.some("1"), recentIds: ["1"] })
      const { exit, ids } = yield* run(server, { tracker, maxAttempts: 4 })
      expect(ids).toEqual([])
      const error = failureOf(exit)
      expect(error).toMatchObject({ _tag: "SseRetriesExhausted", attempts: 4 })
      // Exactly how the last attempt ended, nothing of the client's bookkeeping.
      expect((error as SseClient.SseRetriesExhausted).last).toEqual({ reason: "closed", attempt: 4 })
      expect(server.requests.length).toBe(4)
    }))

  it.effect("an attempt that delivers a new event refills the budget", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) => {
        if (n === 10) return Scripted.status(204)
        if (n % 3 !== 0) return Scripted.status(503)
        return Scripted.events(request, [`id: ${n}\ndata: x\n\n`])
      })
      const { exit, ids } = yield* run(server, { maxAttempts: 3 })
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(ids).toEqual(["3", "6", "9"])
    }))

  it.effect("a schedule that ends fails the stream with SseRetriesExhausted", () =>
    Effect.gen(function*() {
      const server = Scripted.make(() => Scripted.status(502))
      const { exit } = yield* run(server, { schedule: Schedule.recurs(2) })
      expect(failureOf(exit)).toMatchObject({ _tag: "SseRetriesExhausted", attempts: 3, last: { status: 502 } })
      expect(server.requests.length).toBe(3)
    }))
})

describe("SseClient idle timeout (scripted)", () => {
  it.effect("a body silent for idleTimeout is aborted and resumed", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) =>
        n === 3 ? Scripted.status(204) : Scripted.events(request, [`id: ${n}\ndata: x\n\n`], "hang")
      )
      const reasons: Array<string> = []
      const { ids } = yield* run(server, {
        idleTimeout: "1 second",
        onConnection: (s) => Effect.sync(() => s.state === "reconnecting" && reasons.push(s.reason))
      })
      expect(ids).toEqual(["1", "2"])
      expect(reasons).toEqual(["idle", "idle"])
      expect(lastEventIds(server)).toEqual([undefined, "1", "2"])
      expect(server.requests[0]!.signal.aborted).toBe(true)
      for (const gap of gaps(server)) expect(gap).toBeGreaterThanOrEqual(1_000)
    }))

  it.effect("a server that never answers counts as idle", () =>
    Effect.gen(function*() {
      const server = Scripted.make((_request, n) => n === 1 ? Effect.never : Scripted.status(204))
      const reasons: Array<string> = []
      yield* run(server, {
        idleTimeout: "1 second",
        onConnection: (s) => Effect.sync(() => s.state === "reconnecting" && reasons.push(s.reason))
      })
      expect(reasons).toEqual(["idle"])
      expect(gaps(server)[0]).toBeGreaterThanOrEqual(1_000)
    }))

  it.effect("a consumer slower than idleTimeout, on a body arriving in separate reads, is not idle", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request) =>
        Scripted.events(request, ["id: 1\ndata: a\n\n", "id: 2\ndata: b\n\n", "id: 3\ndata: c\n\n", "id: 4\ndata: d\n\n"], "hang")
      )
      const exit = yield* runToEnd(
        SseClient.stream(HttpClientRequest.get(url), { ...fast, idleTimeout: "1 second" }).pipe(
          Stream.tap(() => Effect.sleep("3 seconds")),
          Stream.take(4),
          Stream.runCollect,
          Effect.provide(server.layer)
        )
      )
      expect(Exit.map(exit, (events) => Chunk.toReadonlyArray(events).map((e) => e.id))).toEqual(
        Exit.succeed(["1", "2", "3", "4"])
      )
      expect(server.requests.length).toBe(1)
    }))
})

describe("SseClient onConnection", () => {
  it.effect("reports connection changes in order", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) => {
        if (n === 1) return Scripted.status(503)
        if (n === 3) return Scripted.status(204)
        return Scripted.events(request, ["id: 1\ndata: a\n\n"])
      })
      const seen: Array<SseClient.ConnectionStatus> = []
      yield* run(server, { onConnection: (status) => Effect.sync(() => seen.push(status)) })
      expect(seen.map((s) => s.state === "reconnecting" ? [s.state, s.reason, s.status] : [s.state, s.attempt])).toEqual([
        ["connecting", 1],
        ["reconnecting", "status", 503],
        ["connecting", 2],
        ["connected", 2],
        ["reconnecting", "closed", undefined],
        ["connecting", 3]
      ])
      expect(seen[1]).toMatchObject({ state: "reconnecting", attempt: 1 })
      expect(seen[4]).toMatchObject({ state: "reconnecting", attempt: 2 })
      expect(seen[5]).toMatchObject({ lastEventId: "1" })
      // The reported delay is the one waited.
      const delays = seen.flatMap((s) => s.state === "reconnecting" ? [s.delayMillis] : [])
      expect(gaps(server)).toEqual(delays)
    }))
})

describe("SseClient redirects and content encodings", () => {
  const target = (request: Scripted.RecordedRequest) => new URL(request.request.url).pathname

  it.effect("follows redirects on every attempt; the resume point goes along", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) => {
        if (n === 5) return Scripted.status(204)
        if (target(request) === "/events") return Scripted.status(n === 1 ? 301 : 307, { location: "/moved" })
        return Scripted.events(request, [`id: ${n}\ndata: x\n\n`])
      })
      const { exit, ids } = yield* run(server)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(ids).toEqual(["2", "4"])
      expect(server.requests.map(target)).toEqual(["/events", "/moved", "/events", "/moved", "/events"])
      expect(lastEventIds(server)).toEqual([undefined, undefined, "2", "2", "4"])
    }))

  it.effect("the idle timeout bounds each redirect hop's wait and the final hop's body", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) => {
        if (n === 7) return Scripted.status(204)
        if (target(request) === "/events") return Scripted.status(302, { location: "/moved" })
        // First a hop that never answers, then a body that goes silent.
        return n === 2 ? Effect.never : Scripted.events(request, [`id: ${n}\ndata: x\n\n`], "hang")
      })
      const reasons: Array<string> = []
      const { ids } = yield* run(server, {
        idleTimeout: "1 second",
        onConnection: (s) => Effect.sync(() => s.state === "reconnecting" && reasons.push(s.reason))
      })
      expect(ids).toEqual(["4", "6"])
      expect(reasons).toEqual(["idle", "idle", "idle"])
      // The watchdog aborted the request whose body it watched, not only the first hop's.
      expect(server.requests[3]!.signal.aborted).toBe(true)
      expect(server.requests[3]!.at - server.requests[1]!.at).toBeGreaterThanOrEqual(1_000)
    }))

  it.effect("a redirect loop or one hop too many fails at once with SseRedirectError", () =>
    Effect.gen(function*() {
      const loop = Scripted.make((request) =>
        Scripted.status(302, { location: target(request) === "/events" ? "/b" : "/events" })
      )
      const looped = yield* run(loop)
      expect(failureOf(looped.exit)).toMatchObject({ _tag: "SseRedirectError", reason: "loop" })
      expect(loop.requests.length).toBe(2)
      const once = Scripted.make(() => Scripted.status(308, { location: "/elsewhere" }))
      const refused = yield* run(once, { maxRedirects: 0 })
      expect(failureOf(refused.exit)).toMatchObject({ _tag: "SseRedirectError", reason: "tooMany" })
      expect(once.requests.length).toBe(1)
    }))

  // Real time: zlib decodes on the thread pool, where virtual time cannot wait for it.
  const runLive = (server: Scripted.ScriptedServer) =>
    SseClient.stream(HttpClientRequest.get(url), fast).pipe(
      Stream.runCollect,
      Effect.map((events) => ({ events: Chunk.toReadonlyArray(events) })),
      Effect.timeout("5 seconds"),
      Effect.exit,
      Effect.provide(server.layer)
    )

  it.live("a gzip body nobody asked for is decoded; one the client cannot decode is a typed error", () =>
    Effect.gen(function*() {
      const gzipped = Zlib.gzipSync("id: 1\ndata: packed\n\n")
      const server = Scripted.make((_request, n) =>
        n === 1
          ? new Response(gzipped, { headers: { ...Scripted.sseHeaders, "content-encoding": "gzip" } })
          : Scripted.status(204)
      )
      const decoded = yield* runLive(server)
      expect(Exit.map(decoded, ({ events }) => events.map((e) => e.data))).toEqual(Exit.succeed(["packed"]))
      const brotli = Scripted.make(() =>
        new Response(Zlib.brotliCompressSync("id: 1\ndata: packed\n\n"), {
          headers: { ...Scripted.sseHeaders, "content-encoding": "br" }
        })
      )
      const refused = yield* runLive(brotli)
      expect(failureOf(refused)).toMatchObject({ _tag: "SseContentEncodingError", encoding: "br" })
      expect(brotli.requests.length).toBe(1)
    }))
})

describe("SseClient streams of unsafe methods (POST)", () => {
  const mcpAccept = "application/json, text/event-stream"
  const post = HttpClientRequest.post(url, { headers: { accept: mcpAccept, "mcp-session-id": "s1" } }).pipe(
    HttpClientRequest.bodyText("{\"method\":\"tools/call\"}", "application/json")
  )
  const bodyOf = (recorded: Scripted.RecordedRequest) =>
    recorded.request.body._tag === "Uint8Array"
      ? new TextDecoder().decode((recorded.request.body as HttpBody.Uint8Array).body)
      : recorded.request.body._tag
  const methods = (server: Scripted.ScriptedServer) => server.requests.map((r) => r.request.method)

  it.effect("isSafeMethod: GET, HEAD, OPTIONS and TRACE, in any case; nothing else", () =>
    Effect.sync(() => {
      const safe = ["GET", "HEAD", "OPTIONS", "TRACE", "get", "Options"]
      for (const method of safe) expect(SseClient.isSafeMethod(method), method).toBe(true)
      for (const method of ["POST", "PUT", "PATCH", "DELETE", "post", "QUERY"]) {
        expect(SseClient.isSafeMethod(method), method).toBe(false)
      }
    }))

  it.effect("a POST stream the server closes is done: one request, its body sent once, with or without resumeWith", () =>
    Effect.gen(function*() {
      for (const options of [{}, { resumeWith: "get" as const }]) {
        const server = Scripted.make((request, n) =>
          // A re-sent POST runs the tool again: new ids, so dedup cannot catch it.
          n <= 2 ? Scripted.events(request, [`id: ${n}-1\ndata: result ${n}\n\n`]) : Scripted.status(204)
        )
        const { events, exit } = yield* run(server, options, post)
        expect(Exit.isSuccess(exit)).toBe(true)
        expect(events.map((e) => e.data)).toEqual(["result 1"])
        expect(server.requests.map((r) => [r.request.method, bodyOf(r)])).toEqual([["POST", "{\"method\":\"tools/call\"}"]])
      }
    }))

  it.effect("a POST cut mid-body, idle or answered by another method fails with SseStreamDropped and its resume point, never re-sent", () =>
    Effect.gen(function*() {
      const cases = [
        { method: "POST", end: "cut", reason: "transport" },
        { method: "POST", end: "hang", reason: "idle" },
        { method: "PUT", end: "cut", reason: "transport" },
        { method: "PATCH", end: "cut", reason: "transport" },
        { method: "DELETE", end: "cut", reason: "transport" }
      ] as const
      for (const { end, method, reason } of cases) {
        const server = Scripted.make((request, n) =>
          n === 1 ? Scripted.events(request, ["id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: cu"], end) : Scripted.status(204)
        )
        const { exit, ids } = yield* run(server, { idleTimeout: "1 second" }, HttpClientRequest.make(method)(url))
        expect(ids).toEqual(["1", "2"])
        const error = failureOf(exit)
        expect(error, method).toEqual(
          new SseClient.SseStreamDropped({ method, url, lastEventId: "2", reason, status: undefined, retryAfter: undefined })
        )
        expect((error as SseClient.SseStreamDropped).message).toBe(
          `SSE ${method} stream from ${url} dropped: the connection ended (${reason}); not re-sent (resume from "2")`
        )
        expect(server.requests.length).toBe(1)
      }
    }))

  it.effect("resumeWith get: the next request is a GET with Last-Event-ID, without the body or its headers; events once; a close ends it", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) => {
        // MCP primes each stream with an id-only block.
        if (n === 1) return Scripted.events(request, ["id: p\n\n", "id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: c"], "cut")
        // Replays from the resume point, cut again: resumed again, with the backoff.
        if (n === 2) return Scripted.events(request, ["id: 2\ndata: b\n\nid: 3\ndata: c\n\nid: 4\ndata: d\n\n"], "cut")
        if (n === 3) return Scripted.events(request, ["id: 4\ndata: d\n\nid: 5\ndata: result\n\n"])
        return Scripted.status(204)
      })
      let attempt = 0
      const headers = Effect.sync(() => ({ "x-attempt": String(++attempt) }))
      const { events, exit } = yield* run(server, { resumeWith: "get", headers }, post)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(events.map((e) => [e.id, e.data])).toEqual([["1", "a"], ["2", "b"], ["3", "c"], ["4", "d"], ["5", "result"]])
      expect(methods(server)).toEqual(["POST", "GET", "GET"])
      expect(lastEventIds(server)).toEqual([undefined, "2", "4"])
      expect(server.requests.map(bodyOf)).toEqual(["{\"method\":\"tools/call\"}", "Empty", "Empty"])
      for (const resumed of server.requests.slice(1)) {
        expect(resumed.headers["content-type"]).toBeUndefined()
        expect(resumed.headers["content-length"]).toBeUndefined()
        expect(resumed.headers).toMatchObject({ accept: mcpAccept, "mcp-session-id": "s1" })
        expect(resumed.request.url).toBe(url)
      }
      expect(server.requests.map((r) => r.headers["x-attempt"])).toEqual(["1", "2", "3"])
      for (const gap of gaps(server)) expect(gap).toBeGreaterThanOrEqual(5)
    }))

  it.effect("resumeWith as a function builds the resume request from the original", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) =>
        n === 1
          ? Scripted.events(request, ["id: 1\ndata: a\n\n"], "cut")
          : Scripted.events(request, ["id: 2\ndata: b\n\n"])
      )
      const resumeWith = (original: HttpClientRequest.HttpClientRequest) =>
        HttpClientRequest.get(`${original.url}/resume`, { headers: { "mcp-session-id": original.headers["mcp-session-id"]! } })
      const { exit, ids } = yield* run(server, { resumeWith }, post)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(ids).toEqual(["1", "2"])
      expect(server.requests.map((r) => `${r.request.method} ${r.request.url}`)).toEqual(["POST " + url, `GET ${url}/resume`])
      expect(server.requests[1]!.headers).toMatchObject({ "mcp-session-id": "s1", "last-event-id": "1", accept: "text/event-stream" })
    }))

  it.effect("a cut before any event id fails with SseStreamDropped even with resumeWith: no GET of a stream that is not the POST's", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) =>
        n === 1 ? Scripted.events(request, ["data: no id yet\n\n"], "cut") : Scripted.events(request, ["id: 9\ndata: other\n\n"])
      )
      const { events, exit } = yield* run(server, { resumeWith: "get" }, post)
      expect(events.map((e) => e.data)).toEqual(["no id yet"])
      expect(failureOf(exit)).toMatchObject({ _tag: "SseStreamDropped", lastEventId: undefined, reason: "transport" })
      expect(server.requests.length).toBe(1)
    }))

  it.effect("a transient status to the POST itself is a drop (the server may have run it): status and Retry-After, not re-sent", () =>
    Effect.gen(function*() {
      for (const options of [{}, { resumeWith: "get" as const }]) {
        const server = Scripted.make((_request, n) =>
          n === 1 ? Scripted.status(503, { "retry-after": "30" }) : Scripted.status(204)
        )
        const { exit } = yield* run(server, options, post)
        const error = failureOf(exit) as SseClient.SseStreamDropped
        expect(error).toMatchObject({ _tag: "SseStreamDropped", method: "POST", reason: "status", status: 503, lastEventId: undefined })
        expect(Duration.toMillis(error.retryAfter!)).toBe(30_000)
        expect(error.message).toContain("the server answered HTTP 503")
        expect(server.requests.length).toBe(1)
      }
    }))

  it.effect("a transient status to the resuming GET is retried like any GET's", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) => {
        if (n === 1) return Scripted.events(request, ["id: 1\ndata: a\n\n"], "cut")
        if (n === 2) return Scripted.status(503)
        return Scripted.events(request, ["id: 2\ndata: b\n\n"])
      })
      const { exit, ids } = yield* run(server, { resumeWith: "get" }, post)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(ids).toEqual(["1", "2"])
      expect(methods(server)).toEqual(["POST", "GET", "GET"])
      expect(lastEventIds(server)).toEqual([undefined, "1", "1"])
    }))

  it.effect("started from a resume point with resumeWith, the stream resumes at once: the POST is not sent", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request) => Scripted.events(request, ["id: 10\ndata: rest\n\n"]))
      const { exit, ids } = yield* run(server, { resumeWith: "get", lastEventId: "9" }, post)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(ids).toEqual(["10"])
      expect(methods(server)).toEqual(["GET"])
      expect(lastEventIds(server)).toEqual(["9"])
    }))
})

describe("SseClient reconnectNow", () => {
  /** `count` reconnect requests, one every second of virtual time. */
  const everySecond = (count: number) => Stream.repeatEffect(Effect.sleep("1 second")).pipe(Stream.take(count))

  it.effect("ends the attempt at once and reconnects from the resume point: no backoff, no budget spent", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) => {
        // The first body delivers; the second only replays; the third request is never answered.
        if (n <= 2) return Scripted.events(request, ["id: 1\ndata: a\n\n"], "hang")
        return n === 3 ? Effect.never : Scripted.status(204)
      })
      const seen: Array<unknown> = []
      const { exit, ids } = yield* run(server, {
        // A budget of one failure: any requested reconnect that spent it would end the stream.
        maxAttempts: 1,
        reconnectNow: everySecond(3),
        onConnection: (s) => Effect.sync(() => s.state === "reconnecting" && seen.push([s.reason, s.delayMillis]))
      })
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(ids).toEqual(["1"])
      expect(server.requests.map((r) => r.at)).toEqual([0, 1_000, 2_000, 3_000])
      expect(lastEventIds(server)).toEqual([undefined, "1", "1", "1"])
      expect(seen).toEqual(Array(3).fill(["requested", 0]))
      // Each ended attempt's request was aborted, the one never answered too.
      expect(server.requests.slice(0, 3).map((r) => r.signal.aborted)).toEqual([true, true, true])
    }))

  it.effect("a requested attempt that delivered a new event still refills the budget", () =>
    Effect.gen(function*() {
      const server = Scripted.make((request, n) => {
        if (n === 2) return Scripted.events(request, ["id: 1\ndata: a\n\n"], "hang")
        return Scripted.status(n === 4 ? 204 : 503)
      })
      const { exit, ids } = yield* run(server, { maxAttempts: 2, reconnectNow: everySecond(1) })
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(ids).toEqual(["1"])
      expect(server.requests.length).toBe(4)
    }))

  it.effect("a request during the wait after a failed attempt cuts the wait short", () =>
    Effect.gen(function*() {
      const server = Scripted.make((_request, n) => n === 1 ? Scripted.status(503, { "retry-after": "60" }) : Scripted.status(204))
      const { exit } = yield* run(server, { reconnectNow: everySecond(1) })
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(gaps(server)).toEqual([1_000])
    }))

  it.effect("on a POST: SseStreamDropped (reason requested) without resumeWith; resumed by GET with it", () =>
    Effect.gen(function*() {
      const handler: Scripted.Handler = (request, n) =>
        n === 1
          ? Scripted.events(request, ["id: 1\ndata: a\n\n"], "hang")
          : n === 2
          ? Scripted.events(request, ["id: 2\ndata: b\n\n"])
          : Scripted.status(204)
      const post = HttpClientRequest.post(url)
      const dropped = Scripted.make(handler)
      const first = yield* run(dropped, { reconnectNow: everySecond(1) }, post)
      expect(first.ids).toEqual(["1"])
      expect(failureOf(first.exit)).toMatchObject({ _tag: "SseStreamDropped", reason: "requested", lastEventId: "1", method: "POST" })
      expect(dropped.requests.length).toBe(1)
      expect(dropped.requests[0]!.signal.aborted).toBe(true)
      const resumed = Scripted.make(handler)
      const second = yield* run(resumed, { reconnectNow: everySecond(1), resumeWith: "get" }, post)
      expect(Exit.isSuccess(second.exit)).toBe(true)
      expect(second.ids).toEqual(["1", "2"])
      expect(resumed.requests.map((r) => [r.request.method, r.headers["last-event-id"]])).toEqual([
        ["POST", undefined],
        ["GET", "1"]
      ])
      expect(gaps(resumed)).toEqual([1_000])
    }))

  it.effect("ending the stream stops listening to reconnectNow", () =>
    Effect.gen(function*() {
      let listening = false
      const reconnectNow = Stream.never.pipe(
        Stream.onStart(Effect.sync(() => void (listening = true))),
        Stream.ensuring(Effect.sync(() => void (listening = false)))
      )
      const server = Scripted.make((request) => Scripted.events(request, ["id: 1\ndata: a\n\n"], "hang"))
      let listeningDuring = false
      const exit = yield* runToEnd(
        SseClient.stream(HttpClientRequest.get(url), { reconnectNow }).pipe(
          Stream.tap(() => Effect.sync(() => void (listeningDuring = listening))),
          Stream.take(1),
          Stream.runDrain,
          Effect.provide(server.layer)
        )
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(listeningDuring).toBe(true)
      expect(listening).toBe(false)
      expect(server.requests[0]!.signal.aborted).toBe(true)
    }))
})
