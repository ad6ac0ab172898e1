/**
 * The README's MCP try-out works as written: `examples/mcp-server.ts` started as
 * the README says (through tsx), and the README's own `sse-resume tail … /mcp`
 * command (its shell words, `$SID` from the line the server prints) run against
 * it, with the server cutting the `tools/call` stream so that `--resume-with get`
 * has to resume it.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { blocksOf } from "../docs/readmeBlocks.js"
import { cliBundle } from "../support/cliBundle.js"

const root = join(import.meta.dirname, "..", "..")

/**
 * The words of one shell command as sh would split them: single quotes literal,
 * double quotes with `$NAME` expanded from `env`, a backslash-newline joining
 * lines; stops at a pipe.
 */
const shellWords = (command: string, env: Record<string, string>): Array<string> => {
  const words: Array<string> = []
  let word: string | undefined
  const expand = (text: string) => text.replace(/\$([A-Z_]+)/g, (_, name: string) => env[name] ?? "")
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!
    if (c === "\\" && command[i + 1] === "\n") {
      i++
    } else if (c === " " || c === "\n") {
      if (word !== undefined) words.push(word)
      word = undefined
    } else if (c === "|") {
      break
    } else if (c === "'") {
      const end = command.indexOf("'", i + 1)
      word = (word ?? "") + command.slice(i + 1, end)
      i = end
    } else if (c === "\"") {
      const end = command.indexOf("\"", i + 1)
      word = (word ?? "") + expand(command.slice(i + 1, end))
      i = end
    } else {
      word = (word ?? "") + c
    }
  }
  if (word !== undefined) words.push(word)
  return words
}

/** The README's `npx sse-resume tail http://127.0.0.1:3000/mcp …` command, continuation lines included. */
const readmeMcpTail = (): string => {
  for (const block of blocksOf(readFileSync(join(root, "README.md"), "utf8"))) {
    const start = block.code.indexOf("npx sse-resume tail http://127.0.0.1:3000/mcp")
    if (block.lang !== "sh" || start === -1) continue
    const lines = block.code.slice(start).split("\n")
    const end = lines.findIndex((line) => !line.endsWith("\\"))
    return lines.slice(0, end + 1).join("\n")
  }
  throw new Error("the README has no `npx sse-resume tail http://127.0.0.1:3000/mcp` command")
}

/** A spawned process's stdout lines as they come, and its exit. */
const watch = (child: ChildProcess) => {
  const lines: Array<string> = []
  let stderr = ""
  let pending = ""
  const waiters: Array<() => void> = []
  child.stdout!.setEncoding("utf8").on("data", (text: string) => {
    const parts = (pending + text).split("\n")
    pending = parts.pop()!
    lines.push(...parts)
    for (const wake of waiters.splice(0)) wake()
  })
  child.stderr!.setEncoding("utf8").on("data", (text: string) => void (stderr += text))
  let exited = false
  const exit = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      exited = true
      for (const wake of waiters.splice(0)) wake()
      resolve(code)
    })
  )
  const lineMatching = (pattern: RegExp, timeoutMillis: number): Promise<RegExpExecArray> =>
    new Promise((resolve, reject) => {
      const fail = (why: string) => reject(new Error(`no line matching ${pattern} (${why}): ${lines.join("\n")}\n${stderr}`))
      const timer = setTimeout(() => fail(`in ${timeoutMillis} ms`), timeoutMillis)
      const check = () => {
        for (const line of lines) {
          const match = pattern.exec(line)
          if (match !== null) {
            clearTimeout(timer)
            return resolve(match)
          }
        }
        if (exited) {
          clearTimeout(timer)
          return fail(`exited with ${child.exitCode}`)
        }
        waiters.push(check)
      }
      check()
    })
  return { lines, stderr: () => stderr, exit, lineMatching }
}

describe("examples/mcp-server.ts with the README's tail command", () => {
  const children: Array<ChildProcess> = []
  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL")
  })

  it("parses shell words as sh does", () => {
    expect(shellWords(`tail "a $SID" 'b $SID' \\\n  --x='{"q":1}' c | jq .`, { SID: "s" }))
      .toEqual(["tail", "a s", "b $SID", "--x={\"q\":1}", "c"])
  })

  it("a cut tools/call is resumed by GET: every notification and the result once", async () => {
    const tsx = join(root, "node_modules", "tsx", "dist", "cli.mjs")
    const server = spawn(process.execPath, [tsx, "examples/mcp-server.ts", "--port", "0", "--cut-after", "3"], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"]
    })
    children.push(server)
    const serverOut = watch(server)
    const [, url] = await serverOut.lineMatching(/^MCP server on (\S+)/, 60_000)
    const [, sid] = await serverOut.lineMatching(/^export SID=(\S+)$/, 30_000)

    const words = shellWords(readmeMcpTail(), { SID: sid! })
    expect(words.slice(0, 4)).toEqual(["npx", "sse-resume", "tail", "http://127.0.0.1:3000/mcp"])
    const args = words.slice(2).map((word) => word === "http://127.0.0.1:3000/mcp" ? url! : word)
    const cwd = mkdtempSync(join(tmpdir(), "mcp-example-"))
    try {
      const tail = spawn(process.execPath, [cliBundle, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] })
      children.push(tail)
      const tailOut = watch(tail)
      await tailOut.lineMatching(/"id":1\b/, 60_000)
      // A resumed MCP stream may stay open after the result (the SDK's does): stop it as a reader would.
      tail.kill("SIGTERM")
      expect(await tailOut.exit).toBe(0)

      // `--format data`: the priming event's empty data, then one JSON-RPC message per line.
      const messages = tailOut.lines.filter((line) => line !== "").map((line) => JSON.parse(line))
      expect(messages.filter((m) => m.method === "notifications/message").map((m) => m.params.data)).toEqual([1, 2, 3, 4, 5])
      expect(messages.filter((m) => m.id === 1).map((m) => m.result.content[0].text)).toEqual(["counted to 5"])
      // The server did cut it: the stream went on by GET with Last-Event-ID.
      expect(tailOut.stderr()).toMatch(/connecting to \S+ \(attempt 2, Last-Event-ID /)
    } finally {
      rmSync(cwd, { recursive: true, force: true })
    }
  }, 180_000)
})
