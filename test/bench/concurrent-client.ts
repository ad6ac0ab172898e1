/**
 * The client process of the concurrency benchmark (test/bench/concurrent.ts):
 * one kind of client, `streams` of them, to the server's `/?s=i`. Run bundled
 * (esbuild, no keepNames: what a user's build runs) with --expose-gc and IPC;
 * argv: `kind url streams batch`.
 *
 * Streams open in batches of `batch`; a batch counts as open when each of its
 * streams has received an event, so no kind needs a connection callback (which
 * would cost memory of its own). The consumer only counts, per stream.
 *
 * Messages in: `start` (open the streams, after the baseline is taken), `mark`
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
import * as V8 from "node:v8"
import * as SseClient from "../../src/SseClient.js"

type Kind = "SseClient undici" | "SseClient node:http" | "SseClient fetch" | "fetch + eventsource-parser" | "eventsource"

const gc = (globalThis as { gc?: () => void }).gc

interface Opener {
  /** Starts stream `i`; its events are counted into `counts[i]`. */
  readonly open: (i: number) => void
}

let received = 0
let failures = 0

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

const memory = () => {
  gc!()
  gc!()
  return process.memoryUsage()
}

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

const main = async () => {
  if (gc === undefined) throw new Error("run with node --expose-gc")
  const [kind, url, streamsArg, batchArg] = process.argv.slice(2) as [Kind, string, string, string]
  const streams = Number(streamsArg)
  const batch = Number(batchArg)
  const perStream = new Int32Array(streams)
  const { open } = opener(kind, url, perStream)
  const inspector = new Inspector.Session()
  let start: () => void
  const started = new Promise<void>((resolve) => start = resolve)
  process.on("message", async (message: { type: string; path: string }) => {
    switch (message.type) {
      case "start":
        return start()
      case "mark":
        return process.send!({ type: "mark", at: performance.now(), received, failures, cpu: process.cpuUsage() })
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
  await started
  const openedAt = performance.now()
  for (let from = 0; from < streams; from += batch) {
    const to = Math.min(streams, from + batch)
    for (let i = from; i < to; i++) open(i)
    // Open when each has an event: at 5 events/s a stream's first comes within 200 ms.
    for (let i = from; i < to; i++) {
      while (perStream[i] === 0) {
        if (performance.now() - openedAt > 120_000) throw new Error(`stream ${i} received nothing`)
        await sleep(10)
      }
    }
  }
  process.send!({ type: "opened", millis: performance.now() - openedAt, failures })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
