/**
 * The package as users get it: `npm pack` (which builds on prepack), installed into
 * an empty project, then imported, run and type-checked from there, and linted by
 * publint and arethetypeswrong. Slow (a build and an install): about a minute.
 */
import { execFile, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const repo = join(import.meta.dirname, "..")
const work = mkdtempSync(join(tmpdir(), "sse-package-"))
const consumer = join(work, "consumer")
let tarball = ""

interface Run {
  readonly code: number
  readonly output: string
}

const run = (command: string, args: ReadonlyArray<string>, cwd: string): Promise<Run> =>
  new Promise((resolve) => {
    execFile(command, args, { cwd, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, output: stdout + stderr }))
  })

/** Runs and expects exit 0, showing the output when not. */
const succeed = async (command: string, args: ReadonlyArray<string>, cwd: string): Promise<string> => {
  const result = await run(command, args, cwd)
  expect(result, result.output).toMatchObject({ code: 0 })
  return result.output
}

const npm = process.platform === "win32" ? "npm.cmd" : "npm"
const npx = process.platform === "win32" ? "npx.cmd" : "npx"
const bin = (name: string) => join(repo, "node_modules", ".bin", name)

beforeAll(async () => {
  await succeed(npm, ["pack", "--pack-destination", work], repo)
  tarball = join(work, readdirSync(work).find((name) => name.endsWith(".tgz"))!)
  mkdirSync(consumer)
  writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }))
  // From the local cache, and without install scripts: the native SQLite build is not
  // what this test is about, and importing the driver does not load its binary.
  await succeed(
    npm,
    ["install", tarball, "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock"],
    consumer
  )
}, 300_000)

afterAll(() => rmSync(work, { recursive: true, force: true }))

describe("the packed package, installed into an empty project", { timeout: 120_000 }, () => {
  it("ships the build (cli and internal modules included) and the bin, not the sources", async () => {
    const files = (await succeed("tar", ["tzf", tarball], work)).split("\n").filter((f) => f !== "")
    for (
      const file of [
        "package/dist/index.js",
        "package/dist/index.d.ts",
        "package/dist/engines/SqliteCursorStore.js",
        "package/dist/engines/PgCursorStore.js",
        "package/dist/Telemetry.js",
        "package/dist/cli/main.js",
        "package/dist/ui/page.js",
        "package/dist/wire/internal/parser.js",
        "package/bin/sse-resume.js"
      ]
    ) expect(files).toContain(file)
    expect(files.filter((f) => /^package\/(src|test|scratchpad)\/|\.map$|tsconfig/.test(f))).toEqual([])
  })

  it("imports the root and each subpath entry; the root loads no CommonJS module (no driver)", async () => {
    const output = await succeed(process.execPath, [
      "--input-type=module",
      "-e",
      `const root = await import("effect-sse-resume")
      const cjs = Object.keys((await import("node:module")).createRequire(import.meta.url).cache).length
      const names = async (entry) => Object.keys(await import(entry)).sort()
      console.log(JSON.stringify({
        root: Object.keys(root).sort(), cjs,
        sqlite: await names("effect-sse-resume/sqlite"),
        pg: await names("effect-sse-resume/pg"),
        telemetry: await names("effect-sse-resume/Telemetry")
      }))`
    ], consumer)
    expect(JSON.parse(output)).toEqual({
      root: ["Backpressure", "CursorStore", "EventTracker", "ExactlyOnce", "PersistenceWorker", "SessionGroup", "SessionManager", "SessionOwnership", "Sse", "SseClient", "SseEvent"],
      cjs: 0,
      sqlite: ["defaultFilename", "layer"],
      pg: ["layer"],
      telemetry: expect.arrayContaining(["layer"])
    })
  })

  it("runs `npx sse-resume --help` (the bin finds dist/cli/main.js)", async () => {
    const output = await succeed(npx, ["sse-resume", "--help"], consumer)
    expect(output).toContain("sse-resume 0.1.0")
    expect(output).toContain("tail")
    expect(output).toContain("serve-demo")
  })

  it("serves the demo page from `npx sse-resume serve-demo --ui --port 0` (the bin finds dist/ui/page.js)", async () => {
    // Its own process group: npx runs the bin in a child, and both go when the group is killed.
    const child = spawn(npx, ["sse-resume", "serve-demo", "--ui", "--port", "0"], {
      cwd: consumer,
      detached: true,
      stdio: ["ignore", "ignore", "pipe"]
    })
    try {
      let stderr = ""
      const origin = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "demo page: open" within 30 s: ${stderr}`)), 30_000)
        child.stderr.setEncoding("utf8").on("data", (text: string) => {
          stderr += text
          const said = /demo page: open (\S+)\//.exec(stderr)
          if (said === null) return
          clearTimeout(timer)
          resolve(said[1]!)
        })
        child.on("exit", (code) => {
          clearTimeout(timer)
          reject(new Error(`serve-demo exited with ${code}: ${stderr}`))
        })
      })
      const page = await fetch(`${origin}/`)
      expect(page.status).toBe(200)
      expect(await page.text()).toContain(`<script type="module" src="/page.js">`)
      const script = await fetch(`${origin}/page.js`)
      expect(script.status).toBe(200)
      expect(script.headers.get("content-type")).toContain("text/javascript")
      expect(await script.text()).toBe(
        readFileSync(join(consumer, "node_modules", "effect-sse-resume", "dist", "ui", "page.js"), "utf8")
      )
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, "SIGTERM")
    }
  })

  it("type-checks a consumer against the shipped .d.ts files", async () => {
    writeFileSync(join(consumer, "consumer.ts"), consumerSource)
    writeFileSync(
      join(consumer, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          lib: ["ES2022", "DOM"],
          types: [],
          strict: true,
          noEmit: true,
          // Check the shipped declarations too, not only their use.
          skipLibCheck: false
        },
        files: ["consumer.ts"]
      })
    )
    await succeed(process.execPath, [join(repo, "node_modules", "typescript", "bin", "tsc"), "-p", consumer], consumer)
  })

  it("publint reports nothing", async () => {
    expect(await succeed(bin("publint"), ["run", tarball, "--strict"], work)).toContain("All good!")
  })

  // ESM only, by design (Node >= 20, as Effect's own ESM build): a CommonJS `require`
  // of it is the one thing arethetypeswrong may flag.
  it("arethetypeswrong reports nothing but the ESM-only design", async () => {
    expect(await succeed(bin("attw"), [tarball, "--ignore-rules", "cjs-resolves-to-esm"], work)).toContain("No problems found")
  })
})

const consumerSource = `import { CursorStore, EventTracker, SessionManager, SseClient } from "effect-sse-resume"
import * as PgCursorStore from "effect-sse-resume/pg"
import * as SqliteCursorStore from "effect-sse-resume/sqlite"
import * as Telemetry from "effect-sse-resume/Telemetry"
import { Effect, Layer, Option } from "effect"

type Store = Layer.Layer<CursorStore.CursorStore, CursorStore.CursorStoreError>
export const stores: ReadonlyArray<Store> = [
  SqliteCursorStore.layer("cursors.db"),
  PgCursorStore.layer("postgres://localhost/db"),
  CursorStore.layerMemory
]
export const telemetry = Telemetry.layer
export const api = [EventTracker.make, SessionManager.layerConfig, SseClient.stream]

export const lastEventId = Effect.gen(function*() {
  const store = yield* CursorStore.CursorStore
  return Option.map(yield* store.load("session"), (cursor): string => cursor.lastEventId)
})

// The shipped types are real types, not \`any\`:
// @ts-expect-error a filename is a string
SqliteCursorStore.layer(42)
// @ts-expect-error the engines are not on the root
CursorStore.layerSqlite
`
