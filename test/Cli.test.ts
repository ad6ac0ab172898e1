import { FetchHttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { ConfigError, Effect, Exit, FiberId, Option, Stream } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type CliError, ExitCode, outcome, peerRanges, UsageError } from "../src/cli/Cli.js"
import * as DemoServer from "../src/cli/demo/DemoServer.js"
import * as DemoPage from "../src/cli/demo/ui/DemoPage.js"
import * as Tail from "../src/cli/commands/Tail.js"
import * as TailCommand from "../src/cli/commands/tail/command.js"
import { SessionStreamMismatch } from "../src/session/SessionManager.js"
import * as CursorStore from "../src/store/CursorStore.js"
import { SettingsError } from "../src/Settings.js"
import { SseEventTooLarge } from "../src/wire/Sse.js"
import * as SessionManager from "../src/session/SessionManager.js"
import * as SqliteCursorStore from "../src/engines/SqliteCursorStore.js"
import * as SseClient from "../src/client/SseClient.js"
import * as McpExample from "./examples/mcp.js"
import { cliBundle, pageBundle } from "./support/cliBundle.js"
import { styleFor } from "../src/cli/internal/help.js"
import * as McpServer from "./support/McpServer.js"


interface Run {
  readonly child: ChildProcess
  readonly lines: Array<string>
  readonly stderr: () => string
  readonly exit: Promise<number | null>
}

const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Run => {
  const child = spawn(process.execPath, [cliBundle, ...args], {
    env: { ...process.env, SSE_INITIAL_DELAY: "20 millis", SSE_MAX_DELAY: "200 millis", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const lines: Array<string> = []
  let pending = ""
  child.stdout!.setEncoding("utf8").on("data", (text: string) => {
    const parts = (pending + text).split("\n")
    pending = parts.pop()!
    lines.push(...parts)
  })
  let stderr = ""
  child.stderr!.setEncoding("utf8").on("data", (text: string) => void (stderr += text))
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { child, lines, stderr: () => stderr, exit }
}

const ids = (lines: ReadonlyArray<string>) => lines.map((line) => Number(JSON.parse(line).id))
const consecutive = (xs: ReadonlyArray<number>) => xs.every((x, i) => i === 0 || x === xs[i - 1]! + 1)
/** The cursor a run reported storing when it stopped. */
const storedCursor = (stderr: string) => Number(/^stopped: .* stored cursor (\d+)/m.exec(stderr)?.[1])

const waitFor = async (condition: () => boolean, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting")
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** A loopback server answering every request with `status` and `contentType`. */
const fixedServer = (status: number, contentType: string) =>
  Effect.acquireRelease(
    Effect.async<Http.Server>((resume) => {
      const server = Http.createServer((_, res) => res.writeHead(status, { "content-type": contentType }).end("nope"))
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  ).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}/`))

/** A loopback port nothing listens on any more: a connection to it is refused (port 1 is one fetch will not even try). */
const closedPort = Effect.async<number>((resume) => {
  const server = Http.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

describe("Cli.outcome", () => {
  const url = "http://127.0.0.1:1/events"
  // One error of each tag, with its documented exit code: a tag without a sample does not compile.
  const samples: { readonly [K in CliError["_tag"]]: readonly [CliError, number] } = {
    UsageError: [new UsageError({ message: "--max-events must be at least 1" }), 2],
    InvalidConfig: [new Tail.InvalidConfig({ cause: ConfigError.InvalidData(["SSE_IDLE_TTL"], "must be longer than zero") }), 2],
    DemoServerError: [new DemoServer.DemoServerError({ port: 80, cause: "EACCES" }), 2],
    DemoPageMissing: [new DemoPage.DemoPageMissing({ looked: ["dist/ui/page.js"] }), 2],
    SseHttpError: [new SseClient.SseHttpError({ status: 404, url, attempt: 1 }), 3],
    SseRedirectError: [
      new SseClient.SseRedirectError({ reason: "loop", chain: [url, `${url}?b`, url], status: 302, location: url }),
      3
    ],
    SseContentTypeError: [new SseClient.SseContentTypeError({ contentType: "text/html", url }), 4],
    SseContentEncodingError: [new SseClient.SseContentEncodingError({ encoding: "br", url, reason: "unsupported" }), 4],
    SseRetriesExhausted: [new SseClient.SseRetriesExhausted({ attempts: 3, last: { reason: "transport", attempt: 3 } }), 5],
    Unreachable: [
      new TailCommand.Unreachable({ url, attempts: 1, reason: "transport", cause: "connect ECONNREFUSED 127.0.0.1:1", status: undefined }),
      5
    ],
    SessionStreamMismatch: [new SessionStreamMismatch({ sessionId: "default", stored: `GET ${url}`, requested: "GET http://b/" }), 9],
    SessionBusy: [new CursorStore.SessionBusy({ sessionId: "s", owner: "host/1", expiresInMillis: 900 }), 8],
    SessionLost: [new CursorStore.SessionLost({ sessionId: "s", epoch: 3, reason: "taken" }), 8],
    SseStreamDropped: [new SseClient.SseStreamDropped({ method: "POST", url, lastEventId: "7", reason: "transport" }), 5],
    StoreUnavailable: [new Tail.StoreUnavailable({ store: "c.db", cause: new Error("SQLITE_CORRUPT") }), 6],
    SseEventTooLarge: [new SseEventTooLarge({ maxEventBytes: 1024, afterEventId: "7" }), 7],
    SseResumeIdError: [new SseClient.SseResumeIdError({ lastEventId: "a\u0001", url }), 7],
    SseResumeGap: [new SseClient.SseResumeGap({ lastEventId: "1-5", firstAvailable: "1-9" }), 7],
    SettingsError: [new SettingsError({ module: "EventTracker", setting: "maxTracked", value: 0, reason: "must be a whole number ≥ 1" }), 2]
  }

  for (const [tag, [error, code]] of Object.entries(samples)) {
    it(`${tag} exits ${code}`, () => {
      expect(error._tag).toBe(tag)
      const result = outcome(Exit.fail(error))
      expect(result.code).toBe(code)
      // One line, never empty: an error without a message (a bug of ours) is named by its tag.
      // The CLI's hints (--wait, --resume-with get, --session) follow the message.
      expect(result.line).not.toContain("\n")
      if (error._tag !== "SessionStreamMismatch") expect(result.line!.startsWith(`sse-resume: ${error.message || error._tag}`)).toBe(true)
    })
  }

  it("success and interruption exit 0; a defect is an internal error, exit 1", () => {
    expect(outcome(Exit.void)).toEqual({ code: 0 })
    expect(outcome(Exit.interrupt(FiberId.none))).toEqual({ code: 0 })
    const defect = outcome(Exit.die(new Error("boom")))
    expect(defect.code).toBe(1)
    expect(defect.line).toMatch(/^sse-resume: internal error: .*boom/)
  })

  it("names the optional peers it asks for with package.json's ranges", () => {
    const { peerDependencies } = JSON.parse(readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8")) as {
      readonly peerDependencies: Record<string, string>
    }
    for (const [name, range] of Object.entries(peerRanges)) expect([name, range]).toEqual([name, peerDependencies[name]])
  })

  it("the exit codes are the documented ones", () => {
    expect(ExitCode).toEqual({
      ok: 0,
      failure: 1,
      usage: 2,
      http: 3,
      contentType: 4,
      unreachable: 5,
      store: 6,
      protocol: 7,
      owned: 8,
      otherStream: 9
    })
  })

  it("a busy session names --wait and --session; a cut POST names --resume-with get and what re-running does", () => {
    const busy = outcome(Exit.fail(new CursorStore.SessionBusy({ sessionId: "s", owner: "host/1", expiresInMillis: 900 })))
    expect(busy.line).toMatch(/^sse-resume: session "s" is held by host\/1 .*; run with --wait .*--session NAME/)
    const dropped = (lastEventId: string | undefined) =>
      outcome(Exit.fail(new SseClient.SseStreamDropped({ method: "POST", url, lastEventId, reason: "transport" }))).line
    expect(dropped("100")).toMatch(/not re-sent \(resume from "100"\); --resume-with get resumes it .*re-sends the POST$/)
    // Before any event id, --resume-with has nothing to resume from: no hint.
    expect(dropped(undefined)).not.toContain("--resume-with")
  })

  it("a session of another stream names both streams and --session NAME", () => {
    const { code, line } = outcome(Exit.fail(new SessionStreamMismatch({
      sessionId: "default",
      stored: "GET http://host-a/events",
      requested: "GET http://host-b/events"
    })))
    expect(code).toBe(9)
    expect(line).toMatch(/^sse-resume: session "default" follows GET http:\/\/host-a\/events, not GET http:\/\/host-b\/events: .*--session NAME/)
  })
})

describe("sse-resume CLI (spawned)", () => {
  it.scopedLive("killed mid-stream and restarted, stdout holds every event in order, resuming after the stored cursor", () =>
    Effect.gen(function*() {
      const server = yield* DemoServer.make({ dropEvery: 70, eventsPerSecond: 1_000, retryMillis: 20 })
      const store = join(mkdtempSync(join(tmpdir(), "sse-cli-")), "cursors.db")
      const args = ["tail", server.url, "--session", "e2e", "--store", store]

      const first = cli(args)
      yield* Effect.promise(() => waitFor(() => first.lines.length >= 250, 20_000))
      first.child.kill("SIGTERM")
      expect(yield* Effect.promise(() => first.exit)).toBe(ExitCode.ok)
      const cursor = storedCursor(first.stderr())
      const firstIds = ids(first.lines)

      const second = cli([...args, "--max-events", "200"])
      expect(yield* Effect.promise(() => second.exit)).toBe(ExitCode.ok)
      const secondIds = ids(second.lines)

      // Within each run: exactly once, in order, from the start.
      expect(firstIds[0]).toBe(1)
      expect(consecutive(firstIds)).toBe(true)
      expect(consecutive(secondIds)).toBe(true)
      expect(secondIds).toHaveLength(200)
      // The stored cursor never runs ahead of what was printed...
      expect(cursor).toBeGreaterThanOrEqual(250)
      expect(cursor).toBeLessThanOrEqual(firstIds.at(-1)!)
      // ...and the second run starts right after it: nothing lost across the kill.
      expect(second.stderr()).toContain(`resuming after stored cursor ${cursor}`)
      expect(secondIds[0]).toBe(cursor + 1)
      // The server was asked to resume, and replayed some, which were dropped.
      expect(server.requests).toContain(String(cursor))
      expect(storedCursor(second.stderr())).toBe(secondIds.at(-1))
    }), 60_000)

  it.scopedLive("tail --into: SIGKILLed mid-stream and run again, the table holds every event once and the cursor is its last row", () =>
    Effect.gen(function*() {
      const server = yield* DemoServer.make({ dropEvery: 70, eventsPerSecond: 1_000, retryMillis: 20 })
      const store = join(mkdtempSync(join(tmpdir(), "sse-cli-")), "cursors.db")
      const args = ["tail", server.url, "--session", "into", "--store", store, "--into", "events", "--wait"]
      // The killed run's lease lapses in a second, not the default ten.
      const env = { SSE_LEASE_TTL: "1 second", SSE_LEASE_RENEW_INTERVAL: "300 millis", SSE_OWNER_POLL_INTERVAL: "100 millis" }

      const first = cli(args, env)
      yield* Effect.promise(() => waitFor(() => first.lines.length >= 150, 20_000))
      first.child.kill("SIGKILL")
      yield* Effect.promise(() => first.exit)
      const second = cli([...args, "--max-events", "200"], env)
      expect(yield* Effect.promise(() => second.exit)).toBe(ExitCode.ok)

      const { rows, cursor } = yield* Effect.gen(function*() {
        const { sql } = yield* CursorStore.CursorTransactions
        const rows = yield* sql<{ session_id: string; event_id: string; event: string; data: string; received_at: number }>`
          SELECT session_id, event_id, event, data, received_at FROM events ORDER BY rowid`
        const cursor = yield* Effect.flatMap(CursorStore.CursorStore, (s) => s.load("into"))
        return { rows, cursor }
      }).pipe(Effect.provide(SqliteCursorStore.layer(store)))
      const rowIds = rows.map((row) => Number(row.event_id))
      // Every event from the first on, once each, in order; the second run resumed right after the first's cursor.
      expect(rowIds).toEqual(Array.from({ length: rowIds.length }, (_, i) => i + 1))
      // The killed run committed some, at most what it printed (lines go out before their commit).
      expect(rowIds.length - 200).toBeGreaterThan(0)
      expect(rowIds.length - 200).toBeLessThanOrEqual(ids(first.lines).at(-1)!)
      expect(ids(second.lines)[0]).toBe(rowIds.length - 200 + 1)
      expect(cursor.pipe(Option.map((c) => c.lastEventId))).toEqual(Option.some(String(rowIds.at(-1))))
      expect(rows[0]).toMatchObject({ session_id: "into", event: expect.any(String), data: expect.any(String) })
      expect(Number(rows[0]!.received_at)).toBeGreaterThan(Date.now() - 60_000)
    }), 60_000)

  it.scopedLive("tail --into with a name that is not a plain identifier is a usage error", () =>
    expectOneLineError(cli(["tail", "http://127.0.0.1:1/", "--into", "events; DROP TABLE x"]), ExitCode.usage, /--into must be a table name/))

  it.scopedLive("a second tail on a held session exits 8 naming the owner; with --wait it takes over right after the first's stored cursor", () =>
    Effect.gen(function*() {
      const server = yield* DemoServer.make({ eventsPerSecond: 1_000 })
      const store = join(mkdtempSync(join(tmpdir(), "sse-cli-")), "cursors.db")
      const args = ["tail", server.url, "--session", "shared", "--store", store]
      const env = { SSE_OWNER_POLL_INTERVAL: "50 millis" }
      const first = cli(args, env)
      yield* Effect.promise(() => waitFor(() => first.lines.length >= 100, 20_000))

      const busy = cli(args, env)
      expect(yield* Effect.promise(() => busy.exit)).toBe(ExitCode.owned)
      // The owner is host/pid, with the boot, pid namespace and start time on Linux (a dead pid's lease is taken at once).
      expect(busy.stderr()).toMatch(/^sse-resume: session "shared" is held by \S+\/\d+(@[0-9a-f]+\.\d+\.\d+)? /m)
      expect(busy.lines).toEqual([])

      const waiting = cli([...args, "--wait", "--max-events", "100"], env)
      yield* Effect.promise(() => waitFor(() => waiting.stderr().includes("waiting: session \"shared\" is held by"), 20_000))
      const printed = first.lines.length
      yield* Effect.promise(() => waitFor(() => first.lines.length >= printed + 100, 20_000))
      // Only the owner prints.
      expect(waiting.lines).toEqual([])
      first.child.kill("SIGTERM")
      expect(yield* Effect.promise(() => first.exit)).toBe(ExitCode.ok)
      const cursor = storedCursor(first.stderr())
      expect(yield* Effect.promise(() => waiting.exit)).toBe(ExitCode.ok)
      const taken = ids(waiting.lines)
      // Nothing handled twice, nothing lost: the second starts right after what the first stored and printed.
      expect(ids(first.lines).at(-1)).toBe(cursor)
      expect(taken[0]).toBe(cursor + 1)
      expect(consecutive(taken)).toBe(true)
      expect(taken).toHaveLength(100)
    }), 60_000)

  const expectOneLineError = (run: Run, code: number, pattern: RegExp, stdout: ReadonlyArray<string> = []) =>
    Effect.gen(function*() {
      expect(yield* Effect.promise(() => run.exit)).toBe(code)
      const errorLines = run.stderr().split("\n").filter((line) => line.startsWith("sse-resume:"))
      expect(errorLines).toHaveLength(1)
      expect(errorLines[0]).toMatch(pattern)
      expect(run.stderr()).not.toMatch(/\n\s+at /)
      expect(run.lines).toEqual(stdout)
    })

  it.scopedLive("a bad URL is a usage error", () =>
    expectOneLineError(cli(["tail", "not a url"]), ExitCode.usage, /not an http\(s\) URL/))

  it.scopedLive("a malformed header is a usage error", () =>
    expectOneLineError(cli(["tail", "http://127.0.0.1:1/", "--header", "no-colon"]), ExitCode.usage, /--header/))

  it.scopedLive("--data without a method that takes a body is a usage error, not a retried transport failure", () =>
    expectOneLineError(cli(["tail", "http://127.0.0.1:1/", "--data", "{}"]), ExitCode.usage, /--data needs a method/))

  it.scopedLive("an invalid SSE_* environment value is a usage error", () =>
    expectOneLineError(
      cli(["tail", "http://127.0.0.1:1/events", "--store", join(mkdtempSync(join(tmpdir(), "sse-cli-")), "c.db")], {
        SSE_BATCH_SIZE: "0"
      }),
      ExitCode.usage,
      /invalid configuration: .*SSE_BATCH_SIZE/
    ))

  it.scopedLive("a duration setting of zero is a usage error naming each one, and no store is opened", () =>
    Effect.gen(function*() {
      const zero = ["SSE_IDLE_TTL", "SSE_FLUSH_INTERVAL", "SSE_IDLE_TIMEOUT"]
      const store = join(mkdtempSync(join(tmpdir(), "sse-cli-")), "c.db")
      const run = cli(
        ["tail", "http://127.0.0.1:1/events", "--store", store],
        Object.fromEntries(zero.map((variable) => [variable, "0 seconds"]))
      )
      yield* expectOneLineError(run, ExitCode.usage, /^sse-resume: invalid configuration: /)
      for (const variable of zero) expect(run.stderr()).toMatch(new RegExp(`${variable}: "must be longer than zero"`))
      expect(existsSync(store)).toBe(false)
    }))

  it.scopedLive("with SSE_TELEMETRY=console, spans and metrics go to stderr and stdout holds only event lines", () =>
    Effect.gen(function*() {
      const server = yield* DemoServer.make({ eventsPerSecond: 200 })
      const store = join(mkdtempSync(join(tmpdir(), "sse-cli-")), "c.db")
      const run = cli(["tail", server.url, "--store", store, "--max-events", "30"], {
        SSE_TELEMETRY: "console",
        SSE_METRIC_INTERVAL: "50 millis"
      })
      expect(yield* Effect.promise(() => run.exit)).toBe(ExitCode.ok)
      expect(run.lines).toHaveLength(30)
      for (const line of run.lines) expect(Object.keys(JSON.parse(line))).toEqual(["id", "event", "data"])
      expect(ids(run.lines)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
      // The exporters ran: one JSON object per span or metric on stderr.
      expect(run.stderr()).toMatch(/^\{"name":"sse\.connect".*\}$/m)
      expect(run.stderr()).toMatch(/^\{"descriptor":\{"name":"sse_events_received".*\}$/m)
    }), 20_000)

  it.scopedLive("an invalid telemetry setting is a usage error too, not an internal one", () =>
    expectOneLineError(
      cli(["tail", "http://127.0.0.1:1/events"], { SSE_TELEMETRY: "bogus" }),
      ExitCode.usage,
      /invalid configuration: .*SSE_TELEMETRY/
    ))

  it.scopedLive("an unknown option is a usage error", () =>
    Effect.gen(function*() {
      const run = cli(["tail", "http://127.0.0.1:1/", "--no-such-option"])
      expect(yield* Effect.promise(() => run.exit)).toBe(ExitCode.usage)
      expect(run.stderr()).not.toMatch(/\n\s+at /)
    }))

  it.scopedLive("a server gone after the first connection: every reconnecting line and the last line name the URL and the cause", () =>
    Effect.gen(function*() {
      const store = join(mkdtempSync(join(tmpdir(), "sse-cli-")), "cursors.db")
      // A server that answers once, then is gone: the refused reconnects use the retry budget.
      const server = Http.createServer((_, response) => {
        // No keep-alive: a reconnect must open a new connection, which the closed server refuses.
        response.writeHead(200, { "content-type": "text/event-stream", connection: "close" })
        response.end("id: 1\ndata: one\n\n")
        server.close()
      })
      yield* Effect.promise(() => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve)))
      const port = (server.address() as AddressInfo).port
      const url = `http://127.0.0.1:${port}/events`
      const run = cli(["tail", url, "--store", store], { SSE_MAX_ATTEMPTS: "3", SSE_INITIAL_DELAY: "600 millis" })
      yield* expectOneLineError(
        run,
        ExitCode.unreachable,
        new RegExp(`^sse-resume: cannot reach ${url}: connect ECONNREFUSED 127\\.0\\.0\\.1:${port} \\(gave up after \\d+ attempts\\)$`),
        [JSON.stringify({ id: "1", event: "message", data: "one" })]
      )
      const reconnecting = run.stderr().split("\n").filter((line) => line.startsWith("reconnecting"))
      expect(reconnecting.length).toBeGreaterThan(1)
      for (const line of reconnecting.slice(1)) expect(line).toMatch(new RegExp(`: transport \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\)$`))
      expect(run.stderr()).toContain(`connecting to ${url} `)
      // Waits of 0.6 s and more with nothing new: the progress line is printed only when something changed.
      expect(run.stderr().match(/events\/s/g)?.length ?? 0).toBeLessThanOrEqual(1)
    }), 30_000)

  it.skipIf(!("connectAttempts" in SseClient.defaults))(
    "a server refusing the very first connection fails at once, not after the whole budget",
    () =>
      Effect.gen(function*() {
        const started = Date.now()
        const port = yield* closedPort
        const run = cli(["tail", `http://127.0.0.1:${port}/events`, "--store", join(mkdtempSync(join(tmpdir(), "sse-cli-")), "c.db")], {
          SSE_INITIAL_DELAY: "5 seconds"
        })
        yield* expectOneLineError(run, ExitCode.unreachable, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}`))
        // One attempt, no 5 s backoff.
        expect(run.stderr()).not.toMatch(/^reconnecting/m)
        expect(Date.now() - started).toBeLessThan(20_000)
      }).pipe(Effect.scoped, Effect.runPromise),
    30_000
  )

  it.skipIf(!("SessionStreamMismatch" in SessionManager))(
    "a second URL on the default session is refused, naming both streams and --session (exit 9)",
    () =>
      Effect.gen(function*() {
        const a = yield* DemoServer.make({ eventsPerSecond: 1_000 })
        const b = yield* DemoServer.make({ eventsPerSecond: 1_000 })
        const store = join(mkdtempSync(join(tmpdir(), "sse-cli-")), "c.db")
        const first = cli(["tail", a.url, "--store", store, "--max-events", "50"])
        expect(yield* Effect.promise(() => first.exit)).toBe(ExitCode.ok)
        const second = cli(["tail", b.url, "--store", store, "--max-events", "10"])
        yield* expectOneLineError(
          second,
          ExitCode.otherStream,
          new RegExp(`^sse-resume: session "default" follows GET ${a.url}, not GET ${b.url}: .*--session NAME`)
        )
        expect(b.requests).toEqual([])
      }).pipe(Effect.scoped, Effect.runPromise),
    30_000
  )

  it.scopedLive("the summary counts in words: 1 reconnect, not 1 reconnects", () =>
    Effect.gen(function*() {
      const server = yield* DemoServer.make({ dropEvery: 40, eventsPerSecond: 1_000, retryMillis: 20 })
      const store = join(mkdtempSync(join(tmpdir(), "sse-cli-")), "c.db")
      const run = cli(["tail", server.url, "--store", store, "--max-events", "60"])
      expect(yield* Effect.promise(() => run.exit)).toBe(ExitCode.ok)
      expect(run.stderr()).toMatch(/^stopped: 60 delivered, \d+ duplicates? dropped, 1 reconnect; stored cursor 60 /m)
    }), 30_000)

  it.scopedLive("HTTP 404 and a wrong content type end with their own exit codes", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "sse-cli-"))
      const notFound = yield* fixedServer(404, "text/plain")
      yield* expectOneLineError(cli(["tail", notFound, "--store", join(dir, "a.db")]), ExitCode.http, /HTTP 404/)
      const html = yield* fixedServer(200, "text/html")
      yield* expectOneLineError(
        cli(["tail", html, "--store", join(dir, "b.db")]),
        ExitCode.contentType,
        /content type text\/html/
      )
    }))

  it.scopedLive("an unreachable store is its own exit code", () =>
    expectOneLineError(
      cli(["tail", "http://127.0.0.1:1/events", "--pg", "postgres://nobody@127.0.0.1:1/none"]),
      ExitCode.store,
      /cursor store PostgreSQL is unavailable/
    ))

  it.scopedLive("tail --help into a pipe: plain text, one line per option with its default and env name, no --wizard", () =>
    Effect.gen(function*() {
      const run = cli(["tail", "--help"])
      expect(yield* Effect.promise(() => run.exit)).toBe(ExitCode.ok)
      const help = run.lines.join("\n")
      // No ANSI escapes when stdout is not a terminal.
      expect(help).not.toContain("\x1b")
      expect(help).toMatch(/^Usage: sse-resume tail URL \[options\]$/m)
      const options = ["--session", "--store", "--pg", "--header", "--method", "--data", "--resume-with", "--format", "--wait", "--into", "--max-events", "--idle-timeout"]
      for (const option of options) {
        const line = run.lines.find((l) => new RegExp(`^  (?:-\\w, |    )${option}\\b`).test(l))
        expect(line, option).toMatch(/ \[default: [^\]]+\]$|; env: [A-Z_]+\]$/)
      }
      expect(run.lines.find((l) => l.includes("--idle-timeout"))).toMatch(/\[default: 60; env: SSE_IDLE_TIMEOUT\]$/)
      expect(help).toMatch(/SSE_\* environment variables/)
      // The methods the client re-sends, named as the client treats them.
      expect(help).toContain("GET, HEAD, OPTIONS or TRACE")
      expect(help).not.toMatch(/--wizard|A user-defined piece of text|This setting is optional/)
    }))

  it.scopedLive("--help lists the commands and the version; --version prints it; both exit 0", () =>
    Effect.gen(function*() {
      const help = cli(["--help"])
      expect(yield* Effect.promise(() => help.exit)).toBe(ExitCode.ok)
      expect(help.lines[0]).toMatch(/^sse-resume 0\.1\.0: /)
      expect(help.lines.some((l) => /^  tail  /.test(l))).toBe(true)
      expect(help.lines.some((l) => /^  serve-demo  /.test(l))).toBe(true)
      const version = cli(["--version"])
      expect(yield* Effect.promise(() => version.exit)).toBe(ExitCode.ok)
      expect(version.lines).toEqual(["sse-resume 0.1.0"])
    }))

  it("help is bold only on a terminal without NO_COLOR", () => {
    expect(styleFor({ isTTY: true }, {}).heading("Usage:")).toBe("\x1b[1mUsage:\x1b[22m")
    expect(styleFor({ isTTY: true }, { NO_COLOR: "1" }).heading("Usage:")).toBe("Usage:")
    expect(styleFor({ isTTY: false }, {}).heading("Usage:")).toBe("Usage:")
  })

  for (
    const [args, pattern] of [
      [["tail", "http://127.0.0.1:1/", "--max-events", "abc"], /^sse-resume: --max-events takes a whole number ≥ 1, got "abc" \(see `sse-resume tail --help`\)$/],
      [["tail", "http://127.0.0.1:1/", "--foo"], /^sse-resume: unknown option --foo \(see `sse-resume tail --help`\)$/],
      [["tail", "http://127.0.0.1:1/", "--max-event", "3"], /^sse-resume: unknown option --max-event \(did you mean --max-events\?\)/],
      [["tail"], /^sse-resume: missing URL: tail needs the http\(s\) URL of the SSE endpoint \(see `sse-resume tail --help`\)$/],
      [["tail", "http://127.0.0.1:1/", "--format", "xml"], /^sse-resume: --format takes json or data, got "xml"/],
      [["tial", "http://127.0.0.1:1/"], /^sse-resume: unknown command "tial" \(did you mean tail\?\) \(see `sse-resume --help`\)$/],
      [["tail", "http://127.0.0.1:1/", "--pg", "not-a-url"], /^sse-resume: --pg must be a PostgreSQL URL .*\(see `sse-resume tail --help`\)$/]
    ] as const
  ) {
    it.scopedLive(`usage error, one line with a pointer to --help: ${args.join(" ")}`, () =>
      Effect.gen(function*() {
        const run = cli(args)
        yield* expectOneLineError(run, ExitCode.usage, pattern)
        // Nothing but that line.
        expect(run.stderr().trimEnd().split("\n")).toHaveLength(1)
      }))
  }

  it.scopedLive("--store under /proc fails at once with the reason (exit 6), no endless mkdir", () =>
    Effect.gen(function*() {
      const started = Date.now()
      const run = cli(["tail", "http://127.0.0.1:1/events", "--store", "/proc/nope/c.db"])
      yield* Effect.addFinalizer(() => Effect.sync(() => run.child.kill("SIGKILL")))
      yield* expectOneLineError(run, ExitCode.store, /^sse-resume: cursor store \/proc\/nope\/c\.db is unavailable: open failed: ENOENT/)
      expect(Date.now() - started).toBeLessThan(30_000)
    }), 40_000)

  it.scopedLive("an MCP tools/call through tail --method POST --resume-with get --format data: sent once as JSON, resumed with GET through cuts, each message once", () =>
    Effect.gen(function*() {
      const mcp = yield* McpServer.make({
        notifications: 40,
        notificationIntervalMillis: 2,
        cutAfter: ({ method, rpcMethod }) => method === "GET" ? 15 : rpcMethod === "tools/call" ? 10 : undefined
      })
      const session = yield* McpExample.initialize(mcp.url).pipe(Effect.provide(FetchHttpClient.layer))
      const call = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "count", arguments: {} } }
      const run = cli([
        "tail",
        mcp.url,
        "--store",
        join(mkdtempSync(join(tmpdir(), "sse-cli-")), "c.db"),
        "--method",
        "POST",
        "--data",
        JSON.stringify(call),
        "-H",
        "accept: application/json, text/event-stream",
        "-H",
        `mcp-session-id: ${session.id}`,
        "-H",
        `mcp-protocol-version: ${session.headers["mcp-protocol-version"]}`,
        "--resume-with",
        "get",
        "--format",
        "data",
        // The priming event, 40 notifications, the result.
        "--max-events",
        "42"
      ])
      expect(yield* Effect.promise(() => run.exit)).toBe(ExitCode.ok)
      // The priming event's data is empty; every other line is one JSON-RPC message.
      expect(run.lines[0]).toBe("")
      const messages = run.lines.slice(1).map((line) => JSON.parse(line))
      expect(messages.slice(0, 40).map((m) => m.params.data)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1))
      expect(messages[40]).toMatchObject({ id: 1, result: { content: [{ text: "counted to 40" }] } })
      expect(mcp.toolRuns()).toBe(1)
      const posts = mcp.requests.filter((r) => r.rpcMethod === "tools/call")
      expect(posts.map((r) => r.contentType)).toEqual(["application/json"])
      const gets = mcp.requests.filter((r) => r.method === "GET")
      // The SDK may write a replay in fewer writes than the cut counts, so a single resume can finish the call.
      expect(mcp.cuts()).toBeGreaterThanOrEqual(1)
      expect(gets.length).toBeGreaterThanOrEqual(1)
      expect(gets.every((r) => r.lastEventId !== undefined && r.sessionId === session.id)).toBe(true)
    }), 30_000)
})

describe("sse-resume serve-demo --ui (spawned)", () => {
  it.live("serves the page and its bundled script beside the stream, and says where to open it", () =>
    Effect.gen(function*() {
      const run = cli(["serve-demo", "--ui", "--port", "0"])
      yield* Effect.addFinalizer(() => Effect.sync(() => run.child.kill("SIGTERM")))
      yield* Effect.promise(() => waitFor(() => /demo page: open (\S+)/.test(run.stderr()), 10_000))
      const origin = /demo page: open (\S+)\//.exec(run.stderr())![1]!
      const page = yield* Effect.promise(() => fetch(`${origin}/`))
      expect(page.headers.get("content-type")).toContain("text/html")
      expect(yield* Effect.promise(() => page.text())).toContain(`<script type="module" src="/page.js">`)
      const script = yield* Effect.promise(() => fetch(`${origin}/page.js`))
      expect(script.headers.get("content-type")).toContain("text/javascript")
      // The bundle the build made, served as is: no CDN, no esbuild at run time.
      expect(yield* Effect.promise(() => script.text())).toBe(readFileSync(pageBundle, "utf8"))
      // For a page of another origin: the preflight of a reconnect allows Last-Event-ID,
      // the stream any origin, and /old redirects to /events.
      const preflight = yield* Effect.promise(() =>
        fetch(`${origin}/events`, {
          method: "OPTIONS",
          headers: { origin: "http://elsewhere.test", "access-control-request-headers": "last-event-id" }
        })
      )
      expect(preflight.status).toBe(204)
      expect(preflight.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("last-event-id")
      expect(preflight.headers.get("access-control-allow-origin")).toBe("*")
      const moved = yield* Effect.promise(() => fetch(`${origin}/old?x=1`, { redirect: "manual" }))
      expect([moved.status, moved.headers.get("location")]).toEqual([307, "/events?x=1"])
      const controller = new AbortController()
      const stream = yield* Effect.promise(() => fetch(`${origin}/events`, { signal: controller.signal }))
      controller.abort()
      expect(stream.headers.get("access-control-allow-origin")).toBe("*")
    }).pipe(Effect.scoped))

  it.live("without a built page, --ui exits 2 naming the fix, and plain serve-demo needs none", () =>
    Effect.gen(function*() {
      // The CLI bundle alone, in a folder with no ui/ beside it (node_modules still above it).
      const dir = mkdtempSync(join(cliBundle, "..", "..", "..", "sse-resume-test-nopage-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      mkdirSync(join(dir, "cli"))
      const lonely = join(dir, "cli", "main.mjs")
      copyFileSync(cliBundle, lonely)
      const spawnLonely = (args: ReadonlyArray<string>) =>
        spawn(process.execPath, [lonely, ...args], { stdio: ["ignore", "pipe", "pipe"] })
      const missing = spawnLonely(["serve-demo", "--ui", "--port", "0"])
      let stderr = ""
      missing.stderr!.setEncoding("utf8").on("data", (text: string) => void (stderr += text))
      const code = yield* Effect.promise(() => new Promise<number | null>((resolve) => missing.on("exit", resolve)))
      expect(code).toBe(ExitCode.usage)
      expect(stderr).toMatch(/^sse-resume: the demo page is not built \(looked for .*page\.js\): run `npm run build` first\n$/)

      const plain = spawnLonely(["serve-demo", "--port", "0"])
      yield* Effect.addFinalizer(() => Effect.sync(() => plain.kill("SIGTERM")))
      let said = ""
      plain.stderr!.setEncoding("utf8").on("data", (text: string) => void (said += text))
      yield* Effect.promise(() => waitFor(() => said.includes("serving numbered events"), 10_000))
      expect(said).not.toContain("demo page")
    }).pipe(Effect.scoped))
})

describe("DemoServer", () => {
  it.scopedLive("with totalEvents, answers 204 once the client has them all, so the stream ends (replay overlap and cuts too)", () =>
    Effect.gen(function*() {
      const server = yield* DemoServer.make({ totalEvents: 50, eventsPerSecond: 5_000, dropEvery: 20, retryMillis: 10 })
      const ids = yield* SseClient.stream(HttpClientRequest.get(server.url), { initialDelay: "10 millis" }).pipe(
        Stream.map((event) => Number(event.id)),
        Stream.runCollect,
        Effect.timeout("10 seconds")
      )
      expect(Array.from(ids)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
      // Each resume after a cut, then the last ask, answered 204: no request after it.
      expect(server.requests.at(-1)).toBe("50")
      expect(server.requests.filter((id) => id === "50")).toHaveLength(1)
    }).pipe(Effect.provide(FetchHttpClient.layer)))
})
