/**
 * The root's resuming browser tail (test/support/browserTail.ts: SseClient,
 * EventTracker and CursorStore.layerKeyValueStore on localStorage), minified and
 * gzipped, beside the floor: the same program shape on Effect and
 * @effect/platform alone. Then what makes the difference, by package and by
 * module (minified bytes; gzip is not additive, so only totals are gzipped), and
 * how the heavy modules (effect/Schema, fast-check) are reached, if they are.
 *
 *   npx tsx test/bench/bundle.ts [--modules N]
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { type Bundle, bundleProgram, bytesByInput, kilobytes, packageOf, programs } from "../support/browserTail.js"

const repo = join(import.meta.dirname, "..", "..")
const modulesShown = Number(process.argv[process.argv.indexOf("--modules") + 1] || 25)

const [ours, floor] = await Promise.all(
  (["effect-sse-resume", "effect + @effect/platform alone"] as const).map((name) => bundleProgram(name, programs[name]))
)

const row = (bundle: Bundle) => `${kilobytes(bundle.minified).padStart(9)} ${kilobytes(bundle.gzipped).padStart(9)}  ${bundle.name}`
console.log(`${"minified".padStart(9)} ${"gzipped".padStart(9)}`)
console.log(row(floor))
console.log(row(ours))
console.log(
  `${kilobytes(ours.minified - floor.minified).padStart(9)} ${kilobytes(ours.gzipped - floor.gzipped).padStart(9)}  difference`
)

// --- What the difference is made of ---
const oursBytes = bytesByInput(ours)
const floorBytes = bytesByInput(floor)
const extra = [...oursBytes].map(([input, bytes]) => [input, bytes - (floorBytes.get(input) ?? 0)] as const)
  .filter(([, bytes]) => bytes !== 0)
  .sort((a, b) => b[1] - a[1])

const byPackage = new Map<string, number>()
for (const [input, bytes] of extra) byPackage.set(packageOf(input), (byPackage.get(packageOf(input)) ?? 0) + bytes)
console.log("\ndifference by package (minified):")
for (const [name, bytes] of [...byPackage].sort((a, b) => b[1] - a[1])) console.log(`${kilobytes(bytes).padStart(9)}  ${name}`)
console.log(`\nlargest ${modulesShown} modules of the difference (minified):`)
for (const [input, bytes] of extra.slice(0, modulesShown)) console.log(`${kilobytes(bytes).padStart(9)}  ${input}`)

// --- How effect/Schema and fast-check are reached ---
// The metafile lists imports module by module, not the names used, and every
// import of "effect" goes through its index: so the importers named here are
// the modules kept in the bundle that import Schema (or fast-check) directly,
// and, for our sources, those importing `Schema`, `ParseResult`, `Arbitrary`
// or `FastCheck` from "effect" as values (their text is read).
const schemaModule = /node_modules\/effect\/dist\/esm\/(Schema|SchemaAST|ParseResult|Arbitrary|FastCheck)\.js$/
const heavy = (input: string) => schemaModule.test(input) || packageOf(input) === "fast-check" || packageOf(input) === "pure-rand"
const schemaImport =
  /import\s*\{([^}]*)\}\s*from\s*"effect"|import\s+(?!type\b)[^"]*from\s*"effect\/(Schema|ParseResult|Arbitrary|FastCheck)"/g
const importsSchema = (source: string) =>
  [...source.matchAll(schemaImport)].some(([, names, module]) =>
    module !== undefined || names!.split(",").some((name) => /^\s*(Schema|ParseResult|Arbitrary|FastCheck)\s*$/.test(name))
  )

/** The shortest import chain from the program to `target`. */
const chainTo = (bundle: Bundle, target: string): Array<string> => {
  const inputs = bundle.metafile.inputs
  const from = new Map<string, string>()
  const queue = ["<stdin>"]
  for (let i = 0; i < queue.length; i++) {
    const at = queue[i]!
    if (at === target) break
    for (const { path } of inputs[at]?.imports ?? []) {
      if (!from.has(path) && path !== "<stdin>" && !heavy(path)) {
        from.set(path, at)
        queue.push(path)
      }
    }
  }
  const chain = [target]
  while (from.has(chain[0]!)) chain.unshift(from.get(chain[0]!)!)
  return chain
}

for (const bundle of [floor, ours]) {
  const kept = bytesByInput(bundle)
  const heavyBytes = [...kept].filter(([input, bytes]) => bytes > 0 && heavy(input))
  const total = heavyBytes.reduce((n, [, bytes]) => n + bytes, 0)
  console.log(`\n${bundle.name}: ${kilobytes(total)} minified of effect/Schema, its AST, ParseResult and fast-check`)
  for (const [input, bytes] of heavyBytes.filter(([input]) => schemaModule.test(input))) {
    console.log(`${kilobytes(bytes).padStart(9)}  ${input}`)
  }
  const fastCheck = heavyBytes.filter(([input]) => !schemaModule.test(input)).reduce((n, [, bytes]) => n + bytes, 0)
  if (fastCheck > 0) console.log(`${kilobytes(fastCheck).padStart(9)}  fast-check, pure-rand`)
  const importers = Object.entries(bundle.metafile.inputs).filter(([input, { imports }]) =>
    (kept.get(input) ?? 0) > 0 && !heavy(input) && (input.startsWith("src/")
      ? importsSchema(readFileSync(join(repo, input), "utf8"))
      : imports.some(({ path }) => heavy(path)))
  )
  if (importers.length > 0) console.log("  kept modules importing them:")
  for (const [input] of importers) console.log(`    ${chainTo(bundle, input).join(" → ")}`)
}
