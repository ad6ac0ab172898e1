/**
 * The package root's import graph: no database driver, no OpenTelemetry SDK, no CLI,
 * and nothing from Node that a browser lacks. esbuild bundles src/index.ts for the
 * browser: it refuses to bundle a Node built-in, and its metafile lists every module
 * the root can reach. A small browser program on the root is bundled and minified
 * too, and its size printed beside the same program on the usual libraries, for
 * scale (a figure for the README, not a test of it).
 */
import { build } from "esbuild"
import { join } from "node:path"
import { gzipSync } from "node:zlib"
import { describe, expect, it } from "vitest"

const repo = join(import.meta.dirname, "..")

/** The npm package (or "src") of each input esbuild read. */
const packageOf = (input: string): string => {
  const match = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)
  return match === null ? "src" : match[1]!
}

const drivers = ["pg", "pg-pool", "pg-protocol", "better-sqlite3", "@effect/sql-pg", "@effect/sql-sqlite-node"]

/** The inputs of a bundle that have no place in a browser's: drivers, the telemetry SDK, the CLI, the store engines. */
const serverOnly = (inputs: ReadonlyArray<string>) =>
  inputs.filter((input) => {
    const name = packageOf(input)
    return drivers.includes(name) || name.startsWith("@opentelemetry/") ||
      /^src\/(SqliteCursorStore|PgCursorStore|Telemetry)\.ts$|^src\/cli\//.test(input)
  })

describe("the package root (src/index.ts)", () => {
  it("bundles for the browser without a database driver, the telemetry SDK or the CLI", async () => {
    const result = await build({
      absWorkingDir: repo,
      entryPoints: ["src/index.ts"],
      bundle: true,
      platform: "browser",
      format: "esm",
      write: false,
      metafile: true,
      logLevel: "silent"
    })
    const inputs = Object.keys(result.metafile.inputs)
    // Sanity: the graph really was walked.
    expect(inputs.map(packageOf)).toContain("effect")
    expect(inputs).toContain("src/store/CursorStore.ts")

    expect(serverOnly(inputs)).toEqual([])
  })
})

/**
 * One program several ways: tail /events from the stored resume point, show each
 * event and keep the resume point in localStorage. Each uses what it imports, so
 * the bundler keeps what a real page would.
 */
const programs = {
  "effect-sse-resume": `
    import { FetchHttpClient, HttpClientRequest } from "@effect/platform"
    import { layerLocalStorage } from "@effect/platform-browser/BrowserKeyValueStore"
    import { Effect, Layer, Option, Stream } from "effect"
    import { CursorStore, EventTracker, SseClient } from "effect-sse-resume"

    const program = Effect.gen(function*() {
      const store = yield* CursorStore.CursorStore
      const stored = yield* store.load("feed")
      const tracker = yield* EventTracker.make({ maxTracked: 100 })
      let seq = 0
      if (Option.isSome(stored)) {
        seq = stored.value.seq
        yield* tracker.restore({ lastEventId: Option.some(stored.value.lastEventId), recentIds: stored.value.recentIds ?? [] })
      }
      yield* SseClient.stream(HttpClientRequest.get("/events"), { tracker }).pipe(
        Stream.runForEach((event) =>
          Effect.gen(function*() {
            console.log(event.data)
            const { lastEventId, recentIds } = yield* tracker.snapshot
            if (Option.isSome(lastEventId)) {
              yield* store.saveAll([{ sessionId: "feed", lastEventId: lastEventId.value, seq: ++seq, recentIds, updatedAt: Date.now() }])
            }
          })
        )
      )
    })
    const stores = CursorStore.layerKeyValueStore.pipe(Layer.provide(layerLocalStorage))
    Effect.runFork(program.pipe(Effect.provide(Layer.merge(FetchHttpClient.layer, stores))))
  `,
  // The floor of any Effect page doing the same: fetch, text and localStorage, no SSE.
  "effect + @effect/platform alone": `
    import { FetchHttpClient, HttpClient } from "@effect/platform"
    import { layerLocalStorage } from "@effect/platform-browser/BrowserKeyValueStore"
    import * as KeyValueStore from "@effect/platform/KeyValueStore"
    import { Effect, Layer, Stream } from "effect"

    const program = Effect.gen(function*() {
      const kv = yield* KeyValueStore.KeyValueStore
      const response = yield* (yield* HttpClient.HttpClient).get("/events")
      yield* response.stream.pipe(
        Stream.decodeText(),
        Stream.runForEach((text) => Effect.zipRight(Effect.sync(() => console.log(text)), kv.set("feed", text)))
      )
    })
    Effect.runFork(program.pipe(Effect.scoped, Effect.provide(Layer.merge(FetchHttpClient.layer, layerLocalStorage))))
  `,
  "@microsoft/fetch-event-source": `
    import { fetchEventSource } from "@microsoft/fetch-event-source"
    const last = localStorage.getItem("feed")
    fetchEventSource("/events", {
      headers: last === null ? {} : { "Last-Event-ID": last },
      onmessage(event) {
        console.log(event.data)
        if (event.id) localStorage.setItem("feed", event.id)
      }
    })
  `,
  "fetch + eventsource-parser": `
    import { createParser } from "eventsource-parser"
    const last = localStorage.getItem("feed")
    const response = await fetch("/events", { headers: last === null ? {} : { "Last-Event-ID": last } })
    const parser = createParser({
      onEvent(event) {
        console.log(event.data)
        if (event.id) localStorage.setItem("feed", event.id)
      }
    })
    const decoder = new TextDecoder()
    for await (const chunk of response.body) parser.feed(decoder.decode(chunk, { stream: true }))
  `
}

/** `contents` bundled and minified for the browser, the package resolved to its source. */
const bundleProgram = (contents: string) =>
  build({
    absWorkingDir: repo,
    stdin: { contents, resolveDir: repo, loader: "ts" },
    alias: { "effect-sse-resume": "./src/index.ts" },
    bundle: true,
    platform: "browser",
    format: "esm",
    minify: true,
    write: false,
    metafile: true,
    logLevel: "silent"
  })

const kilobytes = (bytes: number) => `${(bytes / 1000).toFixed(1)} kB`

describe("a browser program on SseClient, EventTracker and CursorStore.layerKeyValueStore", () => {
  it("bundles with no Node built-in or driver; its size is printed beside fetch-event-source and eventsource-parser", async () => {
    const bundles = await Promise.all(
      Object.entries(programs).map(async ([name, contents]) => ({ name, result: await bundleProgram(contents) }))
    )
    const sizes = bundles.map(({ name, result }) => {
      const code = result.outputFiles[0]!.contents
      return `${name} ${kilobytes(code.length)} (${kilobytes(gzipSync(code).length)} gzipped)`
    })
    console.log(`minified browser bundle of one resuming tail: ${sizes.join(" · ")}`)

    const ours = bundles[0]!.result
    // esbuild fails on a Node built-in for the browser; the rest would bundle, and must not be there.
    const inputs = Object.keys(ours.metafile.inputs)
    expect(serverOnly(inputs)).toEqual([])
    // Sanity: the figure includes the client, the tracker and the store on localStorage.
    const output = Object.values(ours.metafile.outputs)[0]!
    for (const module of ["src/client/SseClient.ts", "src/client/EventTracker.ts", "src/store/internal/keyValueCursors.ts"]) {
      expect(output.inputs[module]?.bytesInOutput ?? 0).toBeGreaterThan(0)
    }
    expect(inputs.some((input) => input.includes("@effect/platform-browser/"))).toBe(true)
  })
})
