/**
 * Time to import the built package root against `effect` alone, each in a fresh
 * process (module cache cold, file cache warm), best of several runs: the root
 * must not load a database driver or the OpenTelemetry SDK. CPU time as well as
 * wall time, because on a loaded machine the wall time mostly measures the load.
 *
 *   npm run build && node test/bench/import.mjs
 */
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const runs = Number(process.env.RUNS ?? 15)
const repo = fileURLToPath(new URL("../..", import.meta.url))

// "effect-sse-resume" resolves to dist/ through the package's own `exports` (self-reference).
const specifiers = ["effect", "effect-sse-resume", "effect-sse-resume/sqlite", "effect-sse-resume/pg"]

/** [wall ms, CPU ms, CommonJS modules loaded] of one import in a new process (drivers are CommonJS). */
const measure = (specifier) =>
  JSON.parse(execFileSync(process.execPath, [
    "--input-type=module",
    "-e",
    `const wall = performance.now(), cpu = process.cpuUsage()
    await import(${JSON.stringify(specifier)})
    const used = process.cpuUsage(cpu)
    const cjs = Object.keys((await import("node:module")).createRequire(import.meta.url).cache).length
    console.log(JSON.stringify([performance.now() - wall, (used.user + used.system) / 1000, cjs]))`
  ], { cwd: repo, encoding: "utf8" }))

const best = new Map(specifiers.map((s) => [s, [Infinity, Infinity, 0]]))
// Interleaved, so a burst of load on the machine hits every variant alike.
for (let run = 0; run < runs; run++) {
  for (const specifier of specifiers) {
    const [wall, cpu, cjs] = measure(specifier)
    const [bestWall, bestCpu] = best.get(specifier)
    best.set(specifier, [Math.min(bestWall, wall), Math.min(bestCpu, cpu), cjs])
  }
}

const [baseWall, baseCpu] = best.get("effect")
console.log(`**Import time, fresh process, best of ${runs} (Node ${process.version})**\n`)
console.log("| import | wall ms | vs effect | CPU ms | vs effect | CommonJS modules |")
console.log("|---|---:|---:|---:|---:|---:|")
for (const [specifier, [wall, cpu, cjs]] of best) {
  console.log(
    `| \`${specifier}\` | ${wall.toFixed(0)} | ${(wall / baseWall).toFixed(2)}× | ${cpu.toFixed(0)} | ${(cpu / baseCpu).toFixed(2)}× | ${cjs} |`
  )
}
