/**
 * The client process of the concurrency benchmark (test/bench/concurrent.ts):
 * one kind of client, `streams` of them, to the server's `/?s=i`. Run bundled
 * (esbuild, no keepNames: what a user's build runs) with --expose-gc and IPC;
 * argv: `kind url streams`.
 *
 * The parent opens the streams in batches (`open` with `from` and `to`), each
 * once the server has the one before, so no kind needs a connection callback
 * (which would cost memory of its own). The consumer only counts, per stream.
 *
 * Messages in: `open` (streams `from` to `to`, after the baseline is taken), `mark`
 * (CPU time and events so far), `heap` (memory after two global GCs), `counts`
 * (events per stream), `snapshot` (a heap snapshot to `path`), `profile-start`
 * and `profile-stop` (a CPU profile to `path`), `exit`.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Effect, type Layer, ManagedRuntime, Stream } from "effect"
import { EventSource } from "eventsource"
import { createParser } from "eventsource-parser"
import * as Inspector from "node:inspector/promises"
import * as Fs from "node:fs"
import * as Net from "node:net"
import { PerformanceObserver } from "node:perf_hooks"
import * as V8 from "node:v8"
import * as SseClient from "../../src/client/SseClient.js"

type Kind = "SseClient undici" | "SseClient node:http" | "SseClient fetch" | "fetch + eventsource-parser" | "eventsource"

const gc = (globalThis as { gc?: () => void }).gc

interface Opener {
  /** Starts stream `i`; its events are counted into `counts[i]`. */
  readonly open: (i: number) => void
}

let received = 0
let failures = 0

// Socket reads, to check that each event came in a read of its own (a client that
// falls behind gets several per read, which hides per-chunk cost). Every
// kind reads through net.Socket, whose push takes each read from libuv.
let reads = 0
const push = Net.Socket.prototype.push
Net.Socket.prototype.push = function(this: Net.Socket, ...args: Parameters<typeof push>) {
  if (args[0] !== null) reads++
  return push.apply(this, args)
}

const sseClientOpener = (url: string, counts: Int32Array, layer: Layer.Layer<HttpClient.HttpClient>): Opener => {
  const runtime = ManagedRuntime.make(layer)
  return {
    open: (i) => {
      runtime.runFork(
        SseClient.stream(HttpClientRequest.get(`${url}?s=${i}`)).pipe(
          Stream.runForEach(() =>
            Effect.sync(() => {
              counts[i]!++
              received++
            })
          ),
          Effect.catchAllCause(() => Effect.sync(() => failures++))
        )
      )
    }
  }
}

const fetchOpener = (url: string, counts: Int32Array): Opener => ({
  open: async (i) => {
    try {
      const parser = createParser({
        onEvent: () => {
          counts[i]!++
          received++
        }
      })
      const response = await fetch(`${url}?s=${i}`, { headers: { accept: "text/event-stream" } })
      const decoder = new TextDecoder()
      const reader = response.body!.getReader()
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        parser.feed(decoder.decode(r.value, { stream: true }))
      }
    } catch {
      failures++
    }
  }
})

const eventSourceOpener = (url: string, counts: Int32Array): Opener => ({
  open: (i) => {
    const source = new EventSource(`${url}?s=${i}`)
    source.addEventListener("tick", () => {
      counts[i]!++
      received++
    })
    source.onerror = () => failures++
  }
})

const opener = (kind: Kind, url: string, counts: Int32Array): Opener => {
  switch (kind) {
    case "SseClient undici":
      return sseClientOpener(url, counts, NodeHttpClient.layerUndici)
    case "SseClient node:http":
      return sseClientOpener(url, counts, NodeHttpClient.layer)
    case "SseClient fetch":
      return sseClientOpener(url, counts, FetchHttpClient.layer)
    case "fetch + eventsource-parser":
      return fetchOpener(url, counts)
    case "eventsource":
      return eventSourceOpener(url, counts)
    default:
      throw new Error(`unknown client kind: ${kind}`)
  }
}

// Why events share reads: the longest stall of the event loop (a 10 ms timer's
// largest gap) and the time spent in GC pauses.
let longestStall = 0
let lastTick = performance.now()
setInterval(() => {
  const now = performance.now()
  if (now - lastTick > longestStall) longestStall = now - lastTick
  lastTick = now
}, 10)
let gcMillis = 0
/** Pause time of minor GCs (scavenges of the young generation), a part of gcMillis. */
let minorGcMillis = 0
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcMillis += entry.duration
    if ((entry as unknown as { detail: { kind: number } }).detail.kind === 1) minorGcMillis += entry.duration
  }
}).observe({ entryTypes: ["gc"] })

const memory = () => {
  gc!()
  gc!()
  return process.memoryUsage()
}

const main = () => {
  if (gc === undefined) throw new Error("run with node --expose-gc")
  const [kind, url, streamsArg] = process.argv.slice(2) as [Kind, string, string]
  const streams = Number(streamsArg)
  const perStream = new Int32Array(streams)
  const { open } = opener(kind, url, perStream)
  const inspector = new Inspector.Session()
  process.on("message", async (message: { type: string; path: string; from: number; to: number }) => {
    switch (message.type) {
      case "open":
        for (let i = message.from; i < message.to; i++) open(i)
        return process.send!({ type: "open" })
      case "mark": {
        const stall = longestStall
        longestStall = 0
        return process.send!({ type: "mark", at: performance.now(), received, reads, failures, gcMillis, minorGcMillis, stall, cpu: process.cpuUsage() })
      }
      case "heap":
        return process.send!({ type: "heap", memory: memory() })
      case "counts":
        return process.send!({ type: "counts", counts: Array.from(perStream), failures })
      case "snapshot":
        return process.send!({ type: "snapshot", path: V8.writeHeapSnapshot(message.path) })
      case "profile-start":
        inspector.connect()
        await inspector.post("Profiler.enable")
        await inspector.post("Profiler.start")
        return process.send!({ type: "profile-start" })
      case "profile-stop": {
        const { profile } = await inspector.post("Profiler.stop")
        Fs.writeFileSync(message.path, JSON.stringify(profile))
        inspector.disconnect()
        return process.send!({ type: "profile-stop" })
      }
      case "exit":
        return process.exit(0)
    }
  })
  const baseline = memory()
  process.send!({ type: "baseline", memory: baseline })
}

main()
