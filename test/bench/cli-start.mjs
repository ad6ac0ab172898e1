/**
 * How long `sse-resume` takes to answer, each run a fresh process, beside
 * `node -e 'import("effect")'`: `--version`, `--help` and a usage error (which
 * must load no driver, no telemetry SDK, no runtime: within 1.5× of effect) and a
 * `tail --max-events 1` against a loopback server with its cursor in SQLite
 * (within 2×). Median wall time of several interleaved runs, so a burst of load
 * on the machine hits every variant alike. The built CLI (`dist/`) is measured,
 * and the checkout's bin (`bin/sse-resume.js`, the source through tsx) beside it.
 *
 *   npm run build && node test/bench/cli-start.mjs      (RUNS=15 by default)
 */
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import * as Http from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const runs = Number(process.env.RUNS ?? 15)
const repo = fileURLToPath(new URL("../..", import.meta.url))
const dist = join(repo, "dist", "cli", "main.js")
const bin = join(repo, "bin", "sse-resume.js")
const work = mkdtempSync(join(tmpdir(), "sse-cli-start-"))

// One event, then the connection stays open: `--max-events 1` ends the run.
const server = Http.createServer((_, response) => {
  response.writeHead(200, { "content-type": "text/event-stream" })
  response.write("id: 1\ndata: x\n\n")
})
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))
const url = `http://127.0.0.1:${server.address().port}/events`

let store = 0
/** A new SQLite file each run, so every tail starts from the beginning and creates its store. */
const tail = () => ["tail", url, "--store", join(work, `c${store++}.db`), "--max-events", "1"]

const variants = [
  ["node -e 'import(\"effect\")'", () => ["-e", "import(\"effect\")"], undefined],
  ["dist: --version", () => [dist, "--version"], 1.5],
  ["dist: --help", () => [dist, "--help"], 1.5],
  ["dist: usage error (`tail` without URL)", () => [dist, "tail"], 1.5],
  ["dist: tail, SQLite store, 1 event", () => [dist, ...tail()], 2],
  ["checkout bin: --version", () => [bin, "--version"], undefined],
  ["checkout bin: usage error", () => [bin, "tail"], undefined],
  ["checkout bin: tail, SQLite store, 1 event", () => [bin, ...tail()], undefined]
]

/** Wall ms of one run in a new process. */
const measure = (args) =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, args, { cwd: repo, stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (text) => void (stderr += text))
    child.on("error", reject)
    child.on("exit", (code) => {
      const elapsed = performance.now() - started
      // A usage error exits 2; anything else but 0 means the run measured a failure.
      if (code !== 0 && code !== 2) reject(new Error(`${args.join(" ")} exited ${code}: ${stderr}`))
      else resolve(elapsed)
    })
  })

const times = variants.map(() => [])
for (let run = 0; run < runs; run++) {
  for (const [i, [, args]] of variants.entries()) times[i].push(await measure(args()))
}
server.close()
rmSync(work, { recursive: true, force: true })

const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
const base = median(times[0])
console.log(`**CLI start, fresh process, median of ${runs} (Node ${process.version})**\n`)
console.log("| run | wall ms | vs import(\"effect\") | bound |")
console.log("|---|---:|---:|---:|")
for (const [i, [name, , bound]] of variants.entries()) {
  const ms = median(times[i])
  const ratio = ms / base
  const verdict = bound === undefined ? "" : `${bound}× ${ratio <= bound ? "ok" : "OVER"}`
  console.log(`| ${name} | ${ms.toFixed(0)} | ${ratio.toFixed(2)}× | ${verdict} |`)
}
