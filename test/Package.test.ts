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
/** Packages a client-only install must not bring: drivers, the CLI's, the telemetry SDK. */
const serverOnly = /^(better-sqlite3|pg|ioredis|@effect\/(cli|cluster|sql-pg|sql-sqlite-node|opentelemetry|platform-node)|@opentelemetry\/sdk-.*)$/
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

/** What the CLI and every entry point need besides the package: its optional peers (README "Install"). */
const cliPeers = [
  "ioredis@^5", "@effect/platform-node@^0.108", "@effect/sql-sqlite-node@^0.53", "@effect/sql-pg@^0.53",
  "@effect/opentelemetry@^0.64", "@opentelemetry/api@^1.9", "@opentelemetry/exporter-metrics-otlp-http@^0.223",
  "@opentelemetry/exporter-trace-otlp-http@^0.223", "@opentelemetry/resources@^2", "@opentelemetry/sdk-metrics@^2",
  "@opentelemetry/sdk-trace-base@^2", "@opentelemetry/sdk-trace-node@^2"
]
const install = ["--prefer-offline", "--no-audit", "--no-fund", "--no-package-lock"]

const project = (name: string, type: "module" | "commonjs") => {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name, private: true, type }))
  return dir
}

beforeAll(async () => {
  await succeed(npm, ["pack", "--pack-destination", work], repo)
  tarball = join(work, readdirSync(work).find((name) => name.endsWith(".tgz"))!)
  project("consumer", "module")
  // From the local cache, and without install scripts: the native SQLite build is not
  // what this test is about, and importing the driver does not load its binary.
  await succeed(npm, ["install", tarball, ...cliPeers, ...install, "--ignore-scripts"], consumer)
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
        telemetry: await names("effect-sse-resume/Telemetry"),
        sqliteLog: await names("effect-sse-resume/sqlite/EventLog"),
        pgLog: await names("effect-sse-resume/pg/EventLog"),
        redis: await names("effect-sse-resume/redis"),
        schema: await names("effect-sse-resume/SseEventSchema")
      }))`
    ], consumer)
    expect(JSON.parse(output)).toEqual({
      root: [
        "Backpressure", "CursorStore", "EventLog", "EventTable", "EventTracker", "ExactlyOnce", "LeaseStore", "McpEventStore",
        "PersistenceWorker", "SessionGroup", "SessionManager", "SessionOwnership", "Settings", "Sse", "SseClient", "SseEvent",
        "SseServer", "StreamProducer"
      ],
      cjs: 0,
      sqlite: ["defaultFilename", "layer"],
      pg: ["layer"],
      telemetry: expect.arrayContaining(["layer"]),
      sqliteLog: ["defaultFilename", "layer"],
      pgLog: ["defaultPollInterval", "layer", "layerClient"],
      redis: ["config", "defaults", "layer", "layerClient", "layerConfig"],
      schema: ["SseEvent", "SseEventFromSelf", "fields"]
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

  it("installs for the client alone with no native build and no driver, CLI or telemetry SDK", async () => {
    const client = project("client-only", "module")
    const started = Date.now()
    // Install scripts as a user's npm runs them (npm here runs none not listed in allowScripts).
    await succeed(npm, ["install", tarball, "effect@^3.22", "@effect/platform@^0.97", "@effect/sql@^0.52", ...install], client)
    const seconds = (Date.now() - started) / 1000
    const installed = (await succeed(npm, ["ls", "--all", "--parseable"], client)).split("\n").filter((line) => line.includes("node_modules"))
    const names = installed.map((path) => path.slice(path.lastIndexOf("node_modules/") + 13))
    console.log(`[Package] client-only install: ${seconds.toFixed(1)} s, ${names.length} packages`)
    expect(names.filter((name) => serverOnly.test(name))).toEqual([])
    const built = (await succeed("find", ["node_modules", "-path", "*/build/Release/*.node"], client)).trim()
    expect(built).toBe("")
    // The root works there, and an engine used without its driver fails with one line naming it.
    const output = await succeed(process.execPath, [
      "--input-type=module",
      "-e",
      `const { SseClient } = await import("effect-sse-resume")
      console.log(typeof SseClient.stream)
      const failure = await import("effect-sse-resume/sqlite").then(() => "imported", (error) => String(error.message).split("\\n")[0])
      console.log(failure)`
    ], client)
    expect(output).toMatch(/^function\n.*@effect\/sql-sqlite-node/)
    // The CLI without its packages: help still answers; a command says in one line what to install (exit 2).
    expect((await succeed(npx, ["sse-resume", "--help"], client))).toContain("tail")
    const cli = await run(npx, ["sse-resume", "tail", "http://127.0.0.1:9/"], client)
    expect(cli.code).toBe(2)
    expect(cli.output.trim().split("\n")).toHaveLength(1)
    expect(cli.output).toMatch(/^sse-resume: this command needs packages not installed: npm i @effect\/platform-node@\S+ @effect\/sql-sqlite-node@\S+/)
  })

  it("loads from CommonJS through require (Node >= 20.19 loads ES modules there)", async () => {
    const cjs = project("cjs", "commonjs")
    await succeed(npm, ["install", tarball, "effect@^3.22", "@effect/platform@^0.97", "@effect/sql@^0.52", ...install], cjs)
    const output = await succeed(process.execPath, ["-e", `const { SseClient, EventTracker } = require("effect-sse-resume")
      console.log(typeof SseClient.stream, typeof EventTracker.make)`], cjs)
    expect(output.trim().split("\n").at(-1)).toBe("function function")
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
