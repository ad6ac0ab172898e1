import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync } from "node:fs"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ExitCode } from "../src/cli/Cli.js"
import * as DemoServer from "../src/cli/DemoServer.js"

const bin = join(import.meta.dirname, "..", "bin", "sse-resume.js")

interface Run {
  readonly child: ChildProcess
  readonly lines: Array<string>
  readonly stderr: () => string
  readonly exit: Promise<number | null>
}

const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Run => {
  const child = spawn(process.execPath, [bin, ...args], {
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

  const expectOneLineError = (run: Run, code: number, pattern: RegExp) =>
    Effect.gen(function*() {
      expect(yield* Effect.promise(() => run.exit)).toBe(code)
      const errorLines = run.stderr().split("\n").filter((line) => line.startsWith("sse-resume:"))
      expect(errorLines).toHaveLength(1)
      expect(errorLines[0]).toMatch(pattern)
      expect(run.stderr()).not.toMatch(/\n\s+at /)
      expect(run.lines).toEqual([])
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

  it.scopedLive("an unreachable URL gives up after the retry budget", () =>
    Effect.gen(function*() {
      const store = join(mkdtempSync(join(tmpdir(), "sse-cli-")), "cursors.db")
      yield* expectOneLineError(
        cli(["tail", "http://127.0.0.1:1/events", "--store", store], { SSE_MAX_ATTEMPTS: "3" }),
        ExitCode.unreachable,
        /gave up after 3 attempts/
      )
    }))

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
})
