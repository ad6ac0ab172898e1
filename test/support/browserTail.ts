/**
 * One browser program several ways, bundled the way a page would be: tail /events
 * from the stored resume point, show each event and keep the resume point in
 * localStorage. Each uses what it imports, so the bundler keeps what a real page
 * would. Shared by test/RootImport.test.ts (what the root's bundle may hold) and
 * test/bench/bundle.ts (its size beside the floor).
 */
import { build, type Metafile } from "esbuild"
import { join } from "node:path"
import { gzipSync } from "node:zlib"

const repo = join(import.meta.dirname, "..", "..")

export const programs = {
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

export type ProgramName = keyof typeof programs

/** A page that only reads events off the wire and writes one back: what the wire alone costs. */
export const wireProgram = `
  import { Effect, Stream } from "effect"
  import { Sse, SseEvent } from "effect-sse-resume"
  const response = await fetch("/events")
  Effect.runFork(Stream.fromReadableStream(() => response.body, (error) => error).pipe(
    Sse.parse(),
    Stream.runForEach((event) => Effect.sync(() => console.log(Sse.encode(new SseEvent({ id: event.id, data: event.data })))))
  ))
`

export interface Bundle {
  readonly name: string
  readonly minified: number
  readonly gzipped: number
  readonly metafile: Metafile
}

/** A program bundled and minified for the browser, the package resolved to its source. */
export const bundleProgram = async (name: string, contents: string): Promise<Bundle> => {
  const result = await build({
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
  const code = result.outputFiles[0]!.contents
  return { name, minified: code.length, gzipped: gzipSync(code).length, metafile: result.metafile }
}

/** The npm package (or "src") of an input esbuild read. */
export const packageOf = (input: string): string => {
  const match = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)
  return match === null ? (input.startsWith("src/") ? "src" : "<stdin>") : match[1]!
}

/** Each input's minified bytes in the bundle's one output. */
export const bytesByInput = (bundle: Bundle): Map<string, number> => {
  const output = Object.values(bundle.metafile.outputs)[0]!
  return new Map(Object.entries(output.inputs).map(([input, { bytesInOutput }]) => [input, bytesInOutput]))
}

export const kilobytes = (bytes: number) => `${(bytes / 1000).toFixed(1)} kB`
