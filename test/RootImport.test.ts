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
import { describe, expect, it } from "vitest"
import { bundleProgram, bytesByInput, kilobytes, packageOf, type ProgramName, programs, wireProgram } from "./support/browserTail.js"

const repo = join(import.meta.dirname, "..")

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

describe("a browser program on SseClient, EventTracker and CursorStore.layerKeyValueStore", () => {
  it("bundles with no Node built-in or driver; its size is printed beside fetch-event-source and eventsource-parser", async () => {
    const bundles = await Promise.all((Object.keys(programs) as Array<ProgramName>).map((name) => bundleProgram(name, programs[name])))
    const sizes = bundles.map(({ gzipped, minified, name }) => `${name} ${kilobytes(minified)} (${kilobytes(gzipped)} gzipped)`)
    console.log(`minified browser bundle of one resuming tail: ${sizes.join(" · ")}`)

    const ours = bundles[0]!
    // esbuild fails on a Node built-in for the browser; the rest would bundle, and must not be there.
    const inputs = Object.keys(ours.metafile.inputs)
    expect(serverOnly(inputs)).toEqual([])
    // Sanity: the figure includes the client, the tracker and the store on localStorage.
    const bytes = bytesByInput(ours)
    for (const module of ["src/client/SseClient.ts", "src/client/EventTracker.ts", "src/store/internal/keyValueCursors.ts"]) {
      expect(bytes.get(module) ?? 0).toBeGreaterThan(0)
    }
    expect(inputs.some((input) => input.includes("@effect/platform-browser/"))).toBe(true)
  })
})

describe("a browser program on the wire alone (Sse.parse, Sse.encode, SseEvent)", () => {
  // SseEvent was a Schema.Class: effect/Schema and, through it, fast-check came
  // with every event (issue 18). The schema now lives in its own entry point.
  it("carries no effect/Schema and no fast-check", async () => {
    const bundle = await bundleProgram("the wire alone", wireProgram)
    const bytes = bytesByInput(bundle)
    // Sanity: the parser and the event class are in it.
    expect(bytes.get("src/wire/internal/parser.ts") ?? 0).toBeGreaterThan(0)
    expect(bytes.get("src/wire/SseEvent.ts") ?? 0).toBeGreaterThan(0)
    const schema = [...bytes].filter(([input, size]) =>
      size > 0 && (/\/effect\/dist\/esm\/(Schema|SchemaAST|ParseResult)\.js$/.test(input) || packageOf(input) === "fast-check")
    )
    expect(schema).toEqual([])
  })
})
