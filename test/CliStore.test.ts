/**
 * The CLI on a cursor store it cannot use: exit 6 and one line on stderr that says
 * why (README, exit codes), never a stack trace or an empty reason.
 */
import { afterAll, describe, expect, it } from "vitest"
import { spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ExitCode } from "../src/cli/Cli.js"
import { cliBundle } from "./support/cliBundle.js"

const bin = cliBundle
const dir = mkdtempSync(join(tmpdir(), "sse-cli-store-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Runs `sse-resume tail` against a port nothing listens on: the store is opened before any request. */
const tail = (storeArgs: ReadonlyArray<string>) =>
  new Promise<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [bin, "tail", "http://127.0.0.1:1/events", ...storeArgs], {
      env: { ...process.env, SSE_MAX_ATTEMPTS: "1" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (text: string) => void (stdout += text))
    child.stderr.setEncoding("utf8").on("data", (text: string) => void (stderr += text))
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

const expectStoreError = async (storeArgs: ReadonlyArray<string>, line: RegExp) => {
  const run = await tail(storeArgs)
  expect(run.stderr).not.toMatch(/\n\s+at /)
  expect(run.stderr.trimEnd().split("\n")).toEqual([expect.stringMatching(line)])
  expect(run.code).toBe(ExitCode.store)
  expect(run.stdout).toBe("")
}

// Each run starts a Node process; on a loaded machine that takes a while.
describe.concurrent("sse-resume tail on a store it cannot use (spawned)", { timeout: 90_000 }, () => {
  it("--store on a directory", async () => {
    const store = join(dir, "a-directory")
    mkdirSync(store)
    await expectStoreError(
      ["--store", store],
      /^sse-resume: cursor store \S+a-directory is unavailable: open failed: unable to open database file$/
    )
  })

  it("--store on a file that is not a database", async () => {
    const store = join(dir, "corrupt.db")
    writeFileSync(store, "this is not a SQLite database ".repeat(8))
    await expectStoreError(["--store", store], /^sse-resume: cursor store \S+corrupt\.db is unavailable: open failed: file is not a database$/)
  })

  it("--store under a regular file (the directory cannot be created)", async () => {
    const file = join(dir, "plain-file")
    writeFileSync(file, "")
    await expectStoreError(
      ["--store", join(file, "cursors.db")],
      /^sse-resume: cursor store \S+ is unavailable: open failed: (EEXIST|ENOTDIR): .*plain-file/
    )
  })

  it("--pg at a port that refuses the connection", async () => {
    await expectStoreError(
      ["--pg", "postgres://postgres@127.0.0.1:1/test"],
      /^sse-resume: cursor store PostgreSQL is unavailable: open failed: .*ECONNREFUSED 127\.0\.0\.1:1$/
    )
  })
})
