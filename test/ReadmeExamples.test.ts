/**
 * The README's examples work as a reader meets them:
 * - every TypeScript block of README.md and docs/*.md compiles as written, on its
 *   own (see test/docs/readmeBlocks.ts): imports included, placeholders declared;
 * - every block marked runnable runs as written and prints what the README shows,
 *   against the demo server (`serve-demo`) started here on loopback, its port put
 *   in place of the README's 8080; the server's cuts and replays must not change it.
 */
import { Effect, Exit, Scope } from "effect"
import { execFile } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as DemoServer from "../src/cli/demo/DemoServer.js"
import {
  blocksOf,
  bundleRunnable,
  markdownFiles,
  type Runnable,
  runnablesOf,
  RunnableBlockError,
  writeProject
} from "./docs/readmeBlocks.js"

const root = join(import.meta.dirname, "..")
const cache = join(root, "node_modules", ".cache")
const run = promisify(execFile)

describe("the README's TypeScript blocks", () => {
  it("finds the blocks (the extraction itself works)", () => {
    const blocks = blocksOf("text\n```ts\nconst a = 1\n```\n```sh\nls\n```\n")
    expect(blocks).toEqual([{ lang: "ts", line: 2, code: "const a = 1\n" }, { lang: "sh", line: 5, code: "ls\n" }])
  })

  it("each type-checks on its own, strictly, against the package (README.md and docs/*.md)", async () => {
    const dir = join(cache, "readme-blocks")
    const files = writeProject(root, markdownFiles(root), dir)
    expect(files.some((file) => file.startsWith("README-"))).toBe(true)
    expect(files.some((file) => !file.startsWith("README-"))).toBe(true)
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc")
    const result = await run(process.execPath, [tsc, "-p", join(dir, "tsconfig.json")], { cwd: dir })
      .then(() => "")
      .catch((error: { stdout?: string }) => error.stdout ?? String(error))
    // tsc names each failing block by its file: README-line-<N>.ts is the block starting on README line N.
    expect(result).toBe("")
  }, 240_000)

  // The examples that the tests run (test/Mcp.test.ts, the demo page in Chromium) are
  // test/examples/*.ts: the docs must show them as they are, not a copy that drifted.
  for (const [doc, example] of [["docs/MCP.md", "test/examples/mcp.ts"], ["docs/BROWSER.md", "test/examples/browser.ts"]]) {
    it(`${doc}'s example is ${example}, with the package's import`, () => {
      const blocks = blocksOf(readFileSync(join(root, doc!), "utf8")).filter((block) => block.lang === "ts")
      expect(blocks).toHaveLength(1)
      const tested = readFileSync(join(root, example!), "utf8")
        .replace(/^\/\*\*[\s\S]*?\*\/\n/, "")
        .replace(`from "../../src/index.js"`, `from "effect-sse-resume"`)
      expect(blocks[0]!.code).toBe(tested)
    })
  }
})

describe("the runnable blocks", () => {
  const runnables = markdownFiles(root).flatMap(runnablesOf)
  const dir = join(cache, "readme-runs")
  const scope = Effect.runSync(Scope.make())
  // One demo server for them all, cutting every connection after 7 events (more often
  // than the README's `--drop-every 100`), so the runs reconnect and are sent replays:
  // what they print must not change.
  let server: DemoServer.DemoServer | undefined
  const demoServer = async () =>
    server ??= await Effect.runPromise(Scope.extend(DemoServer.make({ dropEvery: 7, eventsPerSecond: 1_000 }), scope))

  beforeAll(() => rmSync(dir, { recursive: true, force: true }))
  afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

  it("are found, and a runnable block without its output is refused", () => {
    expect(runnables.map((runnable) => runnable.name).length).toBeGreaterThanOrEqual(4)
    const file = join(mkdtempSync(join(tmpdir(), "readme-")), "x.md")
    writeFileSync(file, "```ts\n// runs on its own\nconsole.log(1)\n```\n")
    expect(() => runnablesOf(file)).toThrow(RunnableBlockError)
    writeFileSync(file, "```ts\n// runs on its own\nconsole.log(1)\n```\n```text\n$ npx tsx x.ts\n1\n$ npx tsx x.ts\n1\n```\n")
    expect(runnablesOf(file)[0]!.runs).toEqual([
      { command: "npx tsx x.ts", stdout: "1\n" },
      { command: "npx tsx x.ts", stdout: "1\n" }
    ])
  })

  const runs = async (runnable: Runnable) => {
    let code = runnable.code
    if (runnable.againstDemo) {
      const { port } = await demoServer()
      expect(code).toContain("127.0.0.1:8080")
      code = code.replaceAll("127.0.0.1:8080", `127.0.0.1:${port}`)
    }
    // The bundle sits under node_modules/.cache so its imports find node_modules; it
    // runs in a directory of its own, as in a fresh project, where it stores its cursors.
    const bundle = join(dir, runnable.name.replace(/\.ts$/, ".mjs"))
    await bundleRunnable(root, code, bundle)
    const cwd = mkdtempSync(join(tmpdir(), "readme-run-"))
    try {
      const outputs: Array<string> = []
      for (const _ of runnable.runs) {
        const { stdout } = await run(process.execPath, [bundle], { cwd, timeout: 60_000 })
        outputs.push(stdout)
      }
      return outputs
    } finally {
      rmSync(cwd, { recursive: true, force: true })
    }
  }

  for (const runnable of runnables) {
    it(`${runnable.name} prints what the README shows, run after run`, async () => {
      expect(await runs(runnable)).toEqual(runnable.runs.map((r) => r.stdout))
    }, 180_000)
  }
})
