/**
 * Every TypeScript block of README.md compiles as written, on its own (see
 * test/docs/readmeBlocks.ts): imports included, placeholders declared.
 */
import { execFile } from "node:child_process"
import { join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { blocksOf, writeProject } from "./docs/readmeBlocks.js"

const root = join(import.meta.dirname, "..")
const dir = join(root, "node_modules", ".cache", "readme-blocks")

describe("README.md's TypeScript blocks", () => {
  it("finds the blocks (the extraction itself works)", () => {
    const blocks = blocksOf("text\n```ts\nconst a = 1\n```\n```sh\nls\n```\n")
    expect(blocks).toEqual([{ lang: "ts", line: 2, code: "const a = 1\n" }, { lang: "sh", line: 5, code: "ls\n" }])
  })

  it("each type-checks on its own, strictly, against the package", async () => {
    const files = writeProject(root, join(root, "README.md"), dir)
    expect(files.length).toBeGreaterThan(0)
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc")
    const result = await promisify(execFile)(process.execPath, [tsc, "-p", join(dir, "tsconfig.json")], { cwd: dir })
      .then(() => "")
      .catch((error: { stdout?: string }) => error.stdout ?? String(error))
    // tsc names each failing block by its file: line-<N>.ts is the block starting on README line N.
    expect(result).toBe("")
  }, 120_000)
})
