/**
 * The serving process killed with SIGKILL mid-stream and started again on the same
 * SQLite file and port (test/support/serverChild.ts): its readers — SseClient, the
 * `eventsource` package, a plain reader — reconnect with their last id and, across
 * three kills, see each event once, in order. Real processes, real time, real files.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { Chunk, Duration, Effect, Stream } from "effect"
import { build } from "esbuild"
import { EventSource } from "eventsource"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import * as SseClient from "../src/client/SseClient.js"
import * as Reader from "./support/sseReader.js"

const child = join(import.meta.dirname, "..", "node_modules", ".cache", "sse-resume-test", "serverChild.mjs")
const total = 1_000
const everyMillis = 2

beforeAll(async () => {
  // Bundled as test/globalSetup.ts bundles the other children: tsx would cost each start ~1.5 s of compiling.
  await build({
    entryPoints: [join(import.meta.dirname, "support", "serverChild.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    outfile: child,
    logLevel: "warning"
  })
})

const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = createServer()
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })

interface Started {
  readonly process: ChildProcess
  /** The first n this run's producer wrote (1 on a fresh file). */
  readonly from: number
}

const start = (db: string, port: number, epoch: number) =>
  new Promise<Started>((resolve, reject) => {
    const proc = spawn(process.execPath, [child, db, String(port), "crashing", String(total), String(epoch), String(everyMillis)], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let err = ""
    proc.stderr.on("data", (data: Buffer) => (err += data.toString()))
    proc.stdout.on("data", (data: Buffer) => {
      const ready = /ready (\d+)/.exec(data.toString())
      if (ready !== null) resolve({ process: proc, from: Number(ready[1]) })
    })
    proc.on("exit", (code, signal) => {
      if (signal === null) reject(new Error(`server child exited ${code}: ${err}`))
    })
  })

const kill = (started: Started) =>
  new Promise<void>((resolve) => {
    started.process.once("exit", () => resolve())
    started.process.kill("SIGKILL")
  })

describe("the serving process killed", () => {
  it("three SIGKILLs mid-stream: every reader reconnects and gets each event once, in order", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sse-server-crash-"))
    const db = join(dir, "log.db")
    const port = await freePort()
    const url = `http://127.0.0.1:${port}/streams/crashing`
    const runs: Array<Started> = []
    try {
      runs.push(await start(db, port, 1))

      const viaClient = Effect.runPromise(
        SseClient.stream(HttpClientRequest.get(url), {
          initialDelay: Duration.millis(20),
          maxDelay: Duration.millis(200),
          maxAttempts: 1_000
        }).pipe(
          Stream.map((e) => Number(e.data)),
          Stream.runCollect,
          Effect.map(Chunk.toReadonlyArray),
          Effect.provide(FetchHttpClient.layer)
        )
      )
      const viaEventSource = new Promise<Array<number>>((resolve) => {
        const seen: Array<number> = []
        const source = new EventSource(url)
        source.onmessage = (event) => seen.push(Number(event.data))
        // Connection refused while the server is down: the EventSource retries; 204 at the end closes it.
        source.onerror = () => {
          if (source.readyState === EventSource.CLOSED) resolve(seen)
        }
      })
      const viaReader = (async () => {
        const seen: Array<number> = []
        let last: string | undefined
        for (;;) {
          const response = await Reader.read(url, { headers: last === undefined ? {} : { "last-event-id": last } }).catch(() =>
            undefined
          )
          if (response === undefined) {
            await new Promise((resolve) => setTimeout(resolve, 20))
            continue
          }
          if (response.status === 204) return seen
          for (const event of response.events) seen.push(Number(event.data))
          last = response.events.at(-1)?.id ?? last
        }
      })()

      for (let epoch = 2; epoch <= 4; epoch++) {
        await new Promise((resolve) => setTimeout(resolve, 300 + Math.floor(Math.random() * 400)))
        await kill(runs.at(-1)!)
        runs.push(await start(db, port, epoch))
      }
      const [client, eventSource, reader] = await Promise.all([viaClient, viaEventSource, viaReader])
      const all = Array.from({ length: total }, (_, i) => i + 1)
      expect(client).toEqual(all)
      expect(eventSource).toEqual(all)
      expect(reader).toEqual(all)
      // The kills landed mid-stream: each restart's producer went on from where the log
      // stood (never back, never past the end), and the log had moved on before the last one.
      const froms = runs.map((run) => run.from)
      console.log(`server crash: producers started at events ${froms.join(" → ")} of ${total}`)
      expect(froms[0]).toBe(1)
      for (let i = 1; i < froms.length; i++) {
        expect(froms[i]!).toBeGreaterThanOrEqual(froms[i - 1]!)
        expect(froms[i]!).toBeLessThanOrEqual(total)
      }
      expect(froms.at(-1)!).toBeGreaterThan(1)
    } finally {
      for (const run of runs) run.process.kill("SIGKILL")
      rmSync(dir, { recursive: true, force: true })
    }
  }, 180_000)
})
