/**
 * The package root's import graph: no database driver, no OpenTelemetry SDK, no CLI,
 * and nothing from Node that a browser lacks. esbuild bundles src/index.ts for the
 * browser: it refuses to bundle a Node built-in, and its metafile lists every module
 * the root can reach.
 */
import { build } from "esbuild"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const repo = join(import.meta.dirname, "..")

/** The npm package (or "src") of each input esbuild read. */
const packageOf = (input: string): string => {
  const match = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)
  return match === null ? "src" : match[1]!
}

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
    const packages = new Set(inputs.map(packageOf))
    // Sanity: the graph really was walked.
    expect(packages).toContain("effect")
    expect(inputs).toContain("src/CursorStore.ts")

    const drivers = ["pg", "pg-pool", "pg-protocol", "better-sqlite3", "@effect/sql-pg", "@effect/sql-sqlite-node"]
    expect([...packages].filter((name) => drivers.includes(name) || name.startsWith("@opentelemetry/"))).toEqual([])
    expect(inputs.filter((input) => /^src\/(SqliteCursorStore|PgCursorStore|Telemetry)\.ts$|^src\/cli\//.test(input)))
      .toEqual([])
  })
})
