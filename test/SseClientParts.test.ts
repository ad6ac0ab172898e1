/**
 * The client's pieces on their own, without a stream or a socket: response
 * classification, reconnect delay and budget, the attempt's request, and the
 * idle watchdog under TestClock.
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { describe, expect, it } from "@effect/vitest"
import { Channel, Chunk, Duration, Effect, Either, Exit, Fiber, Schedule, Scheduler, Scope, Stream, TestClock } from "effect"
import { attemptRequest, lastEventIdHeader } from "../src/client/internal/attemptRequest.js"
import { IdleWatchdog } from "../src/client/internal/idleWatchdog.js"
import { causeText } from "../src/client/internal/causeText.js"
import { backoff, reconnectDelay, RetryBudget } from "../src/client/internal/reconnect.js"
import { maxSleepMillis } from "../src/internal/timers.js"
import { type Reconnect, SseRetriesExhausted } from "../src/client/SseClientError.js"
import { classify, parseRetryAfter } from "../src/client/internal/response.js"
import { settle } from "./support/settle.js"

const context = { url: "http://sse.test/", attempt: 3, now: 1_000_000 }
const sse = { "content-type": "text/event-stream; charset=utf-8" }

describe("classify", () => {
  it("reads a 2xx event stream, stops on 204", () => {
    expect(classify({ status: 200, headers: sse }, context)).toEqual({ _tag: "Read" })
    expect(classify({ status: 204, headers: {} }, context)).toEqual({ _tag: "Stop" })
  })

  it("retries transient statuses, with Retry-After on 429 and 503 only", () => {
    expect(classify({ status: 503, headers: { "retry-after": "7" } }, context)).toEqual({
      _tag: "Retry",
      status: 503,
      retryAfter: Duration.seconds(7)
    })
    expect(classify({ status: 500, headers: { "retry-after": "7" } }, context)).toEqual({
      _tag: "Retry",
      status: 500,
      retryAfter: undefined
    })
  })

  it("fails on every other status and on a wrong content type", () => {
    for (const status of [301, 304, 400, 401, 403, 404, 410, 501, 505]) {
      const verdict = classify({ status, headers: sse }, context)
      expect(verdict._tag === "Fail" && verdict.error, String(status)).toMatchObject({
        _tag: "SseHttpError",
        status,
        attempt: 3
      })
    }
    const verdict = classify({ status: 200, headers: { "content-type": "text/html" } }, context)
    expect(verdict._tag === "Fail" && verdict.error).toMatchObject({ _tag: "SseContentTypeError", contentType: "text/html" })
  })

  it("parses Retry-After as seconds or an HTTP date; ignores anything else", () => {
    expect(parseRetryAfter(" 12 ", 0)).toEqual(Duration.seconds(12))
    expect(parseRetryAfter(new Date(61_000).toUTCString(), 1_000)).toEqual(Duration.millis(60_000))
    expect(parseRetryAfter(new Date(0).toUTCString(), 1_000)).toEqual(Duration.millis(0))
    expect(parseRetryAfter("soon", 0)).toBeUndefined()
    expect(parseRetryAfter(undefined, 0)).toBeUndefined()
  })
})

describe("reconnectDelay", () => {
  const base = { scheduled: 100, serverRetry: undefined, retryAfter: undefined, maxRetryAfter: 60_000 }
  it("is the schedule's delay, raised to the server's retry: or Retry-After, whichever is longer", () => {
    expect(reconnectDelay(base)).toBe(100)
    expect(reconnectDelay({ ...base, serverRetry: 5_000 })).toBe(5_000)
    expect(reconnectDelay({ ...base, serverRetry: 5_000, retryAfter: Duration.seconds(8) })).toBe(8_000)
    expect(reconnectDelay({ ...base, serverRetry: 50 })).toBe(100)
    expect(reconnectDelay({ ...base, scheduled: -5 })).toBe(0)
  })

  it("caps what the server asks at maxRetryAfter, and everything at what a sleep can time", () => {
    expect(reconnectDelay({ ...base, serverRetry: 1e12 })).toBe(60_000)
    expect(reconnectDelay({ ...base, retryAfter: Duration.infinity })).toBe(60_000)
    expect(reconnectDelay({ ...base, serverRetry: 1e12, maxRetryAfter: Infinity })).toBe(maxSleepMillis)
    expect(reconnectDelay({ ...base, scheduled: Infinity })).toBe(maxSleepMillis)
    expect(reconnectDelay({ ...base, scheduled: NaN })).toBe(0)
  })
})

describe("RetryBudget", () => {
  const ended: Reconnect = { reason: "closed", attempt: 1 }
  it.effect("spends one attempt per ending without a new event; a new event refills it and restarts the schedule", () =>
    Effect.gen(function*() {
      const budget = new RetryBudget(Schedule.exponential("100 millis"), 3)
      expect(yield* budget.next(ended, false, 0)).toBe(100)
      expect(yield* budget.next(ended, false, 0)).toBe(200)
      expect(yield* budget.next(ended, true, 0)).toBe(100)
      expect(yield* budget.next(ended, false, 0)).toBe(200)
      expect(yield* budget.next(ended, false, 0)).toBe(400)
      const exhausted = yield* Effect.flip(budget.next({ ...ended, attempt: 6 }, false, 0))
      expect(exhausted).toMatchObject({ _tag: "SseRetriesExhausted", attempts: 3, last: { attempt: 6 } })
    }))

  it.effect("connectAttempts bounds the attempts before the first connection, maxAttempts those after (issue 19)", () =>
    Effect.gen(function*() {
      const refused: Reconnect = { reason: "transport", attempt: 1, cause: new Error("connect ECONNREFUSED 127.0.0.1:1") }
      const never = new RetryBudget(Schedule.exponential("100 millis"), 3, 1)
      const exhausted = yield* Effect.flip(never.next(refused, false, 0))
      expect(exhausted).toMatchObject({ _tag: "SseRetriesExhausted", attempts: 1, lastCause: "connect ECONNREFUSED 127.0.0.1:1" })
      const connected = new RetryBudget(Schedule.exponential("100 millis"), 3, 1)
      connected.connect()
      yield* connected.next(refused, false, 0)
      yield* connected.next(refused, false, 0)
      expect(yield* Effect.flip(connected.next(refused, false, 0))).toMatchObject({ attempts: 3 })
      // Default: maxAttempts alone.
      const plain = new RetryBudget(Schedule.exponential("100 millis"), 2)
      yield* plain.next(refused, false, 0)
      expect(yield* Effect.flip(plain.next(refused, false, 0))).toMatchObject({ attempts: 2 })
    }))

  it("the cause in words: the innermost message of the chain, each address of an AggregateError once (issue 19)", () => {
    const fetchFailed = new TypeError("fetch failed", { cause: new Error("getaddrinfo ENOTFOUND nowhere.test") })
    expect(causeText({ reason: "transport", cause: { _tag: "RequestError", message: "Transport error", cause: fetchFailed } }))
      .toBe("getaddrinfo ENOTFOUND nowhere.test")
    const eyeballs = new AggregateError([
      new Error("connect ECONNREFUSED ::1:1"),
      new Error("connect ECONNREFUSED 127.0.0.1:1"),
      new Error("connect ECONNREFUSED 127.0.0.1:1")
    ])
    expect(causeText({ reason: "transport", cause: eyeballs })).toBe("connect ECONNREFUSED ::1:1; connect ECONNREFUSED 127.0.0.1:1")
    expect(causeText({ reason: "status", status: 503 })).toBe("HTTP 503")
    const error = new SseRetriesExhausted({ attempts: 1, last: { reason: "transport", attempt: 1, cause: fetchFailed } })
    expect(error.message).toContain("getaddrinfo ENOTFOUND nowhere.test")
  })

  it.effect("the default backoff: initialDelay doubling per attempt without a new event, capped at maxDelay, from the start after one", () =>
    Effect.gen(function*() {
      const budget = new RetryBudget(backoff({ initialDelay: "5 millis", maxDelay: "20 millis" }), 10)
      const delays = []
      for (let i = 0; i < 4; i++) delays.push(yield* budget.next(ended, false, 1_000))
      expect(delays).toEqual([5, 10, 20, 20])
      expect(yield* budget.next(ended, true, 1_000)).toBe(5)
      // Defaults 500 ms and 30 s; an attempt count far past 2^1023 is still capped, never NaN.
      const long = new RetryBudget(backoff({}), 2_000)
      let last = 0
      for (let i = 0; i < 1_100; i++) last = yield* long.next(ended, false, 0)
      expect(last).toBe(30_000)
      expect(yield* new RetryBudget(backoff({}), 2).next(ended, false, 0)).toBe(500)
    }))

  it.effect("a schedule that ends exhausts it", () =>
    Effect.gen(function*() {
      const budget = new RetryBudget(Schedule.recurs(1), 10)
      yield* budget.next(ended, false, 0)
      expect(yield* Effect.flip(budget.next(ended, false, 0))).toMatchObject({ attempts: 2 })
    }))
})

describe("attemptRequest", () => {
  const request = HttpClientRequest.get("http://sse.test/")
  const built = (headers: Record<string, string> | undefined, id: string | undefined) =>
    Either.getOrThrow(attemptRequest(request, headers, id)).headers

  it("adds Accept unless given, and the resume point, and nothing a browser would preflight", () => {
    expect(built(undefined, "41")).toEqual({
      accept: "text/event-stream",
      "last-event-id": "41"
    })
    expect(built(undefined, undefined)).toEqual({ accept: "text/event-stream" })
    expect(built({ Accept: "application/json, text/event-stream", "Cache-Control": "no-cache" }, "")).toEqual({
      accept: "application/json, text/event-stream",
      "cache-control": "no-cache"
    })
  })

  it("sends ids beyond ASCII as UTF-8 bytes and refuses what no header carries exactly", () => {
    expect(lastEventIdHeader("é")).toBe("\u00c3\u00a9")
    expect(lastEventIdHeader("a\tb c")).toBe("a\tb c")
    for (const id of ["a\x00", "a\x01", "a\x1f", "a\x7f", " a", "a ", "\ta", "a\t"]) {
      expect(lastEventIdHeader(id), JSON.stringify(id)).toBeUndefined()
      expect(Either.getLeft(attemptRequest(request, undefined, id))._tag, JSON.stringify(id)).toBe("Some")
    }
  })
})

describe("IdleWatchdog", () => {
  /** A stage passing chunks on and telling the watchdog, as the client's body reader does. */
  const passThrough = (watchdog: IdleWatchdog) => {
    const next = () => {
      watchdog.reading()
      return read
    }
    const read: Channel.Channel<Chunk.Chunk<number>, Chunk.Chunk<number>> = Channel.readWith({
      onInput: (chunk: Chunk.Chunk<number>) => {
        watchdog.received()
        return Channel.flatMap(Channel.write(chunk), next)
      },
      onFailure: () => Channel.void,
      onDone: () => Channel.void
    })
    return read
  }

  /** A source of `chunks` that then stays silent, through a watchdog that counts its firings. */
  const watched = (chunks: Array<number>) =>
    Effect.gen(function*() {
      let fired = 0
      const watchdog = yield* IdleWatchdog.make("1 second", Effect.sync(() => void fired++))
      // One chunk per read, as a body delivers them.
      const source = Stream.concat(Stream.rechunk(Stream.fromIterable(chunks), 1), Stream.never)
      return { watchdog, fired: () => fired, through: Stream.pipeThroughChannel(source, passThrough(watchdog)) }
    })

  it.scoped("fires once a read has waited idleTimeout, not before", () =>
    Effect.gen(function*() {
      const { fired, through, watchdog } = yield* watched([1])
      const fiber = yield* Effect.fork(Stream.runDrain(through))
      yield* settle
      yield* TestClock.adjust("999 millis")
      yield* settle
      expect(fired()).toBe(0)
      yield* TestClock.adjust("1 millis")
      yield* settle
      expect(fired()).toBe(1)
      expect(watchdog.fired).toBe(true)
      yield* TestClock.adjust("10 seconds")
      expect(fired()).toBe(1)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("watchdogs idle at once all fire, even when one's abort closes the last; then no timer is left", () =>
    Effect.gen(function*() {
      let fired = 0
      const scopes = yield* Effect.forEach([1, 2, 3], () => Scope.make())
      // Each one's abort closes every scope, as the last connection closing does.
      const closeAll = Effect.forEach(scopes, (scope) => Scope.close(scope, Exit.void), { discard: true })
      const watchdogs = yield* Effect.forEach(scopes, (scope) =>
        Scope.extend(IdleWatchdog.make("1 second", Effect.zipRight(Effect.sync(() => void fired++), closeAll)), scope))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(fired).toBe(3)
      expect(watchdogs.every((watchdog) => watchdog.fired)).toBe(true)
      // The sweeper stopped with the last watchdog: nothing sleeps on the clock to keep a process alive.
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(Chunk.toReadonlyArray(yield* TestClock.sleeps())).toEqual([])
    }))

  it.live("a watchdog taken out as fired runs its onIdle even if another's scope closes the last one meanwhile (found in review)", () =>
    Effect.gen(function*() {
      // A scheduler that yields once, right after a chosen point, as a busy one may.
      let yieldOnce = false
      const scheduler: Scheduler.Scheduler = {
        scheduleTask: (task) => void setTimeout(task, 0),
        shouldYield: () => (yieldOnce ? ((yieldOnce = false), 0) : false)
      }
      const trial = Effect.gen(function*() {
        const [scopeA, scopeB] = [yield* Scope.make(), yield* Scope.make()]
        let ranB = false
        const a = yield* Scope.extend(IdleWatchdog.make("30 millis", Effect.void), scopeA)
        const b = yield* Scope.extend(IdleWatchdog.make("30 millis", Effect.sync(() => void (ranB = true))), scopeB)
        // A's stream ends on its own just as A is taken out as fired: its scope closes from outside
        // the sweeper at its next yield, leaving B, already taken out, as the last watchdog.
        const fire = a.fire.bind(a)
        a.fire = () => {
          fire()
          yieldOnce = true
          queueMicrotask(() => Effect.runSync(Scope.close(scopeA, Exit.void)))
        }
        yield* Effect.sleep("150 millis")
        expect(b.fired).toBe(true)
        expect(ranB).toBe(true)
        yield* Scope.close(scopeB, Exit.void)
      })
      // The sweeper runs on the scheduler of the stream that started it.
      for (let i = 0; i < 3; i++) yield* Effect.withScheduler(trial, scheduler)
    }))

  it.scoped("a consumer slower than idleTimeout does not make it fire", () =>
    Effect.gen(function*() {
      const { fired, through } = yield* watched([1, 2, 3, 4])
      const fiber = yield* Effect.fork(
        through.pipe(Stream.tap(() => Effect.sleep("5 seconds")), Stream.take(4), Stream.runCollect)
      )
      for (let i = 0; i < 4; i++) {
        yield* settle
        yield* TestClock.adjust("5 seconds")
      }
      yield* settle
      expect(Exit.map(yield* Fiber.await(fiber), Chunk.toReadonlyArray)).toEqual(Exit.succeed([1, 2, 3, 4]))
      expect(fired()).toBe(0)
    }))
})
