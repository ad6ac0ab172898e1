import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option, Queue, Schedule } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Backpressure from "../src/client/Backpressure.js"
import * as Tail from "../src/cli/commands/Tail.js"
import * as EventTable from "../src/session/EventTable.js"
import * as CursorStore from "../src/store/CursorStore.js"
import * as SqliteCursorStore from "../src/engines/SqliteCursorStore.js"
import * as SseServer from "./support/SseServer.js"

/** SSE blocks for the events numbered `from` to `to`. */
const events = (from: number, to: number) => {
  let text = ""
  for (let n = from; n <= to; n++) text += `id: ${n}\ndata: ${n}\n\n`
  return text
}

const idsOf = (lines: string) =>
  lines.split("\n").filter((line) => line !== "").map((line) => Number(JSON.parse(line).id))

/** A promise that opens once `parties` callers are waiting on it. */
const rendezvous = (parties: number) => {
  let arrived = 0
  let open!: () => void
  const opened = new Promise<void>((resolve) => (open = resolve))
  return () => {
    if (++arrived === parties) open()
    return opened
  }
}

const storeFile = () => join(mkdtempSync(join(tmpdir(), "sse-tail-")), "cursors.db")

const storedCursor = (filename: string, session: string) =>
  Effect.flatMap(CursorStore.CursorStore, (store) => store.load(session)).pipe(Effect.provide(SqliteCursorStore.layer(filename)))

const fastClient = { initialDelay: "10 millis", maxDelay: "50 millis" } as const

describe("Tail.run", () => {
  it.scopedLive("two runs in one process each report their own duplicates, reconnects and backpressure timeouts", () =>
    Effect.gen(function*() {
      // Both streams start once both runs are connected, and send their last event only
      // once the test says so: everything either run counts happens while both run.
      const start = rendezvous(2)
      const last = yield* Deferred.make<void>()
      const sendLast = (response: Parameters<SseServer.Handler>[1]) =>
        Effect.runPromise(Deferred.await(last)).then(() => SseServer.write(response, events(20, 20)))

      // Cut after 10; the resume replays 3 before what was asked for.
      const reconnecting = yield* SseServer.make(async (request, response, n) => {
        response.writeHead(200, SseServer.sseHeaders)
        if (n === 1) {
          await start()
          await SseServer.write(response, events(1, 10))
          return SseServer.cut(response)
        }
        const resumeAfter = Number(request.headers["last-event-id"])
        await SseServer.write(response, events(resumeAfter - 2, 19))
        await sendLast(response)
      })
      // One connection that repeats two events in the middle.
      const repeating = yield* SseServer.make(async (_, response) => {
        response.writeHead(200, SseServer.sseHeaders)
        await start()
        await SseServer.write(response, events(1, 5) + events(4, 5) + events(6, 19))
        await sendLast(response)
      })

      const written = { a: [] as Array<number>, b: [] as Array<number> }
      const tail = (url: string, seen: Array<number>) =>
        Tail.run({
          url,
          session: "mine",
          store: SqliteCursorStore.layer(storeFile()),
          maxEvents: 20,
          client: fastClient,
          write: (lines) => Effect.sync(() => seen.push(...idsOf(lines)))
        })
      const runs = yield* Effect.fork(Effect.all([tail(reconnecting.url, written.a), tail(repeating.url, written.b)], {
        concurrency: "unbounded"
      }))

      yield* Effect.sync(() => written.a.includes(19) && written.b.includes(19)).pipe(
        Effect.repeat({ until: (both) => both, schedule: Schedule.spaced("5 millis") }),
        Effect.timeout("10 seconds")
      )
      // Some other worker of the process has an offer time out meanwhile.
      const full = yield* Queue.bounded<number>(1)
      yield* Queue.offer(full, 0)
      expect(yield* Backpressure.offer(full, 1, { timeout: "1 millis" })).toBe("timedOut")
      yield* Deferred.succeed(last, undefined)

      const [a, b] = yield* Fiber.join(runs)
      expect(written.a).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
      expect(written.b).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
      expect({ ...a, resumedFrom: undefined, storedCursor: undefined }).toEqual({
        delivered: 20,
        duplicatesDropped: 3,
        reconnects: 1,
        backpressureTimeouts: 0,
        resumedFrom: undefined,
        storedCursor: undefined
      })
      expect({ ...b, resumedFrom: undefined, storedCursor: undefined }).toEqual({
        delivered: 20,
        duplicatesDropped: 2,
        reconnects: 0,
        backpressureTimeouts: 0,
        resumedFrom: undefined,
        storedCursor: undefined
      })
      expect(reconnecting.requests).toHaveLength(2)
      expect(repeating.requests).toHaveLength(1)
    }).pipe(Effect.provide(FetchHttpClient.layer)), 20_000)

  it.scopedLive("a chunk moves the stored cursor only once its lines are written", () =>
    Effect.gen(function*() {
      const firstWritten = yield* Deferred.make<void>()
      const secondStarted = yield* Deferred.make<void>()
      // The second chunk is sent only after the first is written, so they cannot merge.
      const server = yield* SseServer.make(async (_, response) => {
        response.writeHead(200, SseServer.sseHeaders)
        await SseServer.write(response, events(1, 5))
        await Effect.runPromise(Deferred.await(firstWritten))
        await SseServer.write(response, events(6, 10))
      })
      const filename = storeFile()
      const written: Array<number> = []
      let writes = 0
      const run = yield* Effect.fork(Tail.run({
        url: server.url,
        session: "hang",
        store: SqliteCursorStore.layer(filename),
        client: fastClient,
        write: (lines) =>
          ++writes === 1
            ? Effect.sync(() => written.push(...idsOf(lines))).pipe(Effect.zipRight(Deferred.succeed(firstWritten, undefined)))
            : Effect.zipRight(Deferred.succeed(secondStarted, undefined), Effect.never)
      }))

      yield* Deferred.await(secondStarted).pipe(Effect.timeout("10 seconds"))
      yield* Fiber.interrupt(run)
      // Events 1 to 5 were sent together; a read may still have split them.
      expect(written).toEqual(Array.from({ length: written.length }, (_, i) => i + 1))
      const cursor = yield* storedCursor(filename, "hang")
      expect(Option.map(cursor, (c) => c.lastEventId)).toEqual(Option.some(String(written.at(-1))))
    }).pipe(Effect.provide(FetchHttpClient.layer)), 20_000)

  it.scopedLive("--data goes out as the caller's Content-Type, else JSON when it parses as JSON, else text/plain", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_, response) => {
        response.writeHead(200, SseServer.sseHeaders).end(events(1, 1))
      })
      const post = (body: string, headers?: Record<string, string>) =>
        Tail.run({
          url: server.url,
          session: "post",
          store: CursorStore.layerMemory,
          method: "POST",
          body,
          ...(headers === undefined ? {} : { headers }),
          client: fastClient,
          write: () => Effect.void
        })
      yield* post(`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`)
      yield* post("plain words")
      yield* post(`{"q":1}`, { "Content-Type": "application/x-ndjson" })
      yield* post("[1, 2]", { "content-type": "text/csv; charset=utf-8" })
      expect(server.requests.map((r) => [r.headers["content-type"], r.body])).toEqual([
        ["application/json", `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`],
        ["text/plain", "plain words"],
        ["application/x-ndjson", `{"q":1}`],
        ["text/csv; charset=utf-8", "[1, 2]"]
      ])
    }).pipe(Effect.provide(FetchHttpClient.layer)), 20_000)

  it.scopedLive("--format data writes each event's data alone, one per line", () =>
    Effect.gen(function*() {
      const server = yield* SseServer.make((_, response) => {
        response.writeHead(200, SseServer.sseHeaders)
          .end(`id: 1\ndata: {"n":1}\n\nid: 2\nevent: other\ndata: {"n":2}\n\n`)
      })
      let written = ""
      yield* Tail.run({
        url: server.url,
        session: "data",
        store: CursorStore.layerMemory,
        maxEvents: 2,
        format: "data",
        client: fastClient,
        write: (lines) => Effect.sync(() => void (written += lines))
      })
      expect(written).toBe(`{"n":1}\n{"n":2}\n`)
    }).pipe(Effect.provide(FetchHttpClient.layer)), 20_000)
})

describe("Tail.run progress", () => {
  it.scopedLive("reports counts only when they changed: a stream gone quiet prints no line per interval", () =>
    Effect.gen(function*() {
      // Three events, then an open connection that says nothing.
      const server = yield* SseServer.make((_, response) => {
        response.writeHead(200, SseServer.sseHeaders)
        response.write(events(1, 3))
      })
      const progress: Array<number> = []
      let written = 0
      const run = yield* Effect.fork(Tail.run({
        url: server.url,
        session: "quiet",
        store: CursorStore.layerMemory,
        client: fastClient,
        reportEvery: "20 millis",
        write: (lines) => Effect.sync(() => void (written += idsOf(lines).length)),
        report: (status) => Effect.sync(() => void (status._tag === "Progress" && progress.push(status.eventsPerSecond)))
      }))
      yield* Effect.sync(() => written).pipe(
        Effect.repeat({ until: (n) => n === 3, schedule: Schedule.spaced("5 millis") }),
        Effect.timeout("10 seconds")
      )
      // Some 25 intervals of silence.
      yield* Effect.sleep("500 millis")
      yield* Fiber.interrupt(run)
      // The events' rate, then the rate back at 0: nothing after that while nothing changes.
      expect(progress.length).toBeGreaterThanOrEqual(1)
      expect(progress.length).toBeLessThanOrEqual(3)
      expect(progress.at(-1)).toBe(0)
    }).pipe(Effect.provide(FetchHttpClient.layer)), 20_000)
})

describe("EventTable", () => {
  it.effect("refuses a table name that is not a plain identifier, or one of the store's own", () =>
    Effect.gen(function*() {
      for (const table of ["events; DROP TABLE x", "sse_resume_cursors", "1events", ""]) {
        const error = yield* Effect.flip(EventTable.create(table).pipe(Effect.provide(SqliteCursorStore.layer(storeFile()))))
        expect(error._tag, table).toBe("EventTableNameError")
      }
      expect(EventTable.isTableName("events_2")).toBe(true)
    }))
})
