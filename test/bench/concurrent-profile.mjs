/**
 * The top self-time frames of a CPU profile (test/bench/concurrent.ts --profile DIR
 * writes one of each client's steady window), and the same time by where the
 * code lives: our client, effect, @effect/platform(-node), undici, Node's own
 * JavaScript, or V8 (GC, idle, program).
 *
 *   node test/bench/concurrent-profile.mjs PROFILE.cpuprofile [TOP]
 */
import * as Fs from "node:fs"

const [file, topArg] = process.argv.slice(2)
if (file === undefined) {
  console.error("usage: concurrent-profile.mjs PROFILE.cpuprofile [TOP]")
  process.exit(2)
}
const top = Number(topArg ?? 30)
const profile = JSON.parse(Fs.readFileSync(file, "utf8"))

// Self time per node: each sample's time delta goes to the node it hit.
const selfMicros = new Map()
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
}
const total = [...selfMicros.values()].reduce((a, b) => a + b, 0)

const where = (url) => {
  if (url === "") return "V8 / native"
  if (url.startsWith("node:")) return "Node (JS)"
  const modules = url.lastIndexOf("node_modules/")
  if (modules < 0) return "our client and bench"
  const rest = url.slice(modules + 13)
  if (rest.startsWith(".cache/")) return "our client and bench"
  return rest.startsWith("@") ? rest.split("/").slice(0, 2).join("/") : rest.split("/")[0]
}
const short = (url) => {
  const modules = url.lastIndexOf("node_modules/")
  return (modules < 0 ? url : url.slice(modules + 13)).replace("/dist/esm/", "/").replace(/^file:\/\//, "")
}

const frames = new Map()
const places = new Map()
for (const node of profile.nodes) {
  const micros = selfMicros.get(node.id) ?? 0
  if (micros === 0) continue
  const { functionName, url, lineNumber } = node.callFrame
  const key = `${functionName || "(anonymous)"} ${url === "" ? "" : `${short(url)}:${lineNumber + 1}`}`
  frames.set(key, (frames.get(key) ?? 0) + micros)
  places.set(where(url), (places.get(where(url)) ?? 0) + micros)
}
const percent = (micros) => `${(100 * micros / total).toFixed(1)}%`
console.log(`\n${file}: ${(total / 1e6).toFixed(2)} s sampled`)
console.log("\n| where | self time |")
console.log("|---|---|")
for (const [place, micros] of [...places].sort((a, b) => b[1] - a[1])) console.log(`| ${place} | ${percent(micros)} |`)
console.log("\n| frame | self time |")
console.log("|---|---|")
for (const [frame, micros] of [...frames].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`| ${frame.replaceAll("|", "\\|")} | ${percent(micros)} |`)
}
