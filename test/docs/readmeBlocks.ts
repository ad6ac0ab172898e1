/**
 * The README's TypeScript blocks (and those of docs/*.md), each type-checked on
 * its own, strictly, against the package as a user imports it (`effect-sse-resume`,
 * `effect-sse-resume/sqlite`, … mapped to the sources), the way Effect's docs
 * tooling checks its examples: a block must carry its own imports and declare its
 * placeholders.
 *
 * Some blocks are complete programs a reader is told to run. Their first line says
 * how (`// runs against: npx sse-resume serve-demo …` or `// runs on its own`), and
 * the `text` block right after them shows what they print: `$ npx tsx <file>` lines,
 * each followed by that run's stdout (runs in order, in one directory, so a second
 * run sees what the first stored).
 */
import { build } from "esbuild"
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { basename, join, relative } from "node:path"

/** A fenced block: its language tag, the line it starts on, and its text. */
export interface Block {
  readonly lang: string
  readonly line: number
  readonly code: string
}

/** The fenced code blocks of a Markdown text, in order. */
export const blocksOf = (markdown: string): ReadonlyArray<Block> => {
  const blocks: Array<Block> = []
  const lines = markdown.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)/.exec(lines[i]!)
    if (open === null) continue
    const start = i
    const body: Array<string> = []
    while (++i < lines.length && !lines[i]!.startsWith("```")) body.push(lines[i]!)
    blocks.push({ lang: open[1]!, line: start + 1, code: body.join("\n") + "\n" })
  }
  return blocks
}

const isTypeScript = (block: Block) => block.lang === "ts" || block.lang === "typescript"

/** The Markdown files whose blocks are checked: README.md and docs/*.md. */
export const markdownFiles = (root: string): ReadonlyArray<string> => [
  join(root, "README.md"),
  ...readdirSync(join(root, "docs")).filter((name) => name.endsWith(".md")).sort().map((name) => join(root, "docs", name))
]

/** A block's file name: the Markdown file and the line the block starts on (`README-line-57.ts`). */
const fileOf = (markdownFile: string, block: Block) => `${basename(markdownFile, ".md")}-line-${block.line}.ts`

/** The package's own entry points (package.json `exports`), mapped from dist/ to src/. */
const entrySources = (root: string): Record<string, string> => {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    readonly name: string
    readonly exports: Record<string, string | { readonly import?: string }>
  }
  const sources: Record<string, string> = {}
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    const file = typeof target === "string" ? target : target.import
    if (file === undefined || !file.endsWith(".js")) continue
    const source = join(root, file.replace(/^\.\/dist\//, "src/").replace(/\.js$/, ".ts"))
    sources[subpath === "." ? pkg.name : `${pkg.name}/${subpath.slice(2)}`] = source
  }
  return sources
}

/**
 * Writes each `ts` block of `markdownFiles` as its own module into `dir`, with a
 * strict tsconfig resolving the package to its sources; returns the files written.
 */
export const writeProject = (root: string, markdownFiles: ReadonlyArray<string>, dir: string): ReadonlyArray<string> => {
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const files: Array<string> = []
  for (const markdownFile of markdownFiles) {
    for (const block of blocksOf(readFileSync(markdownFile, "utf8"))) {
      if (!isTypeScript(block)) continue
      const file = fileOf(markdownFile, block)
      // `export {}` makes every block a module of its own, as a user's file would be.
      writeFileSync(join(dir, file), `${block.code}\nexport {}\n`)
      files.push(file)
    }
  }
  const paths: Record<string, ReadonlyArray<string>> = {}
  for (const [name, source] of Object.entries(entrySources(root))) paths[name] = [relative(dir, source)]
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        lib: ["ES2022", "DOM"],
        types: ["node"],
        typeRoots: [relative(dir, join(root, "node_modules/@types"))],
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        exactOptionalPropertyTypes: false,
        baseUrl: ".",
        paths
      },
      include: files
    }, null, 2)
  )
  return files
}

/** One run of a runnable block, and the stdout the Markdown says it prints. */
interface Run {
  readonly command: string
  readonly stdout: string
}

/** A block the Markdown tells the reader to run. */
export interface Runnable {
  /** `README-line-57.ts`. */
  readonly name: string
  readonly code: string
  /** Whether it runs against the demo server (`serve-demo`), or on its own. */
  readonly againstDemo: boolean
  readonly runs: ReadonlyArray<Run>
}

export class RunnableBlockError extends Error {}

/**
 * The runnable blocks of a Markdown file: a `ts` block whose first line is
 * `// runs against: npx sse-resume serve-demo …` or `// runs on its own`, followed by a `text` block of `$ npx tsx <file>` runs and their output.
 */
export const runnablesOf = (markdownFile: string): ReadonlyArray<Runnable> => {
  const blocks = blocksOf(readFileSync(markdownFile, "utf8"))
  const runnables: Array<Runnable> = []
  blocks.forEach((block, i) => {
    if (!isTypeScript(block)) return
    const first = block.code.split("\n", 1)[0]!
    const againstDemo = first.startsWith("// runs against: npx sse-resume serve-demo")
    if (!againstDemo && first.trim() !== "// runs on its own") {
      if (first.startsWith("// runs")) throw new RunnableBlockError(`${fileOf(markdownFile, block)}: unknown marker ${first}`)
      return
    }
    const output = blocks[i + 1]
    if (output === undefined || output.lang !== "text" || !output.code.startsWith("$ ")) {
      throw new RunnableBlockError(`${fileOf(markdownFile, block)}: no \`text\` block of its runs ("$ npx tsx …") after it`)
    }
    const runs: Array<Run> = []
    for (const line of output.code.trimEnd().split("\n")) {
      if (line.startsWith("$ ")) runs.push({ command: line.slice(2), stdout: "" })
      else runs[runs.length - 1] = { ...runs[runs.length - 1]!, stdout: runs[runs.length - 1]!.stdout + line + "\n" }
    }
    runnables.push({
      name: fileOf(markdownFile, block),
      code: block.code,
      againstDemo,
      runs
    })
  })
  return runnables
}

/**
 * Bundles a runnable block into `outfile` with esbuild, as `tsx` would run it: the
 * package's entry points resolved to the sources, every other package left an
 * import from node_modules (so `outfile` must sit where node_modules is found).
 */
export const bundleRunnable = async (root: string, code: string, outfile: string): Promise<void> => {
  const sources = entrySources(root)
  await build({
    stdin: { contents: code, loader: "ts", resolveDir: root, sourcefile: basename(outfile, ".mjs") + ".ts" },
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    outfile,
    logLevel: "warning",
    plugins: [{
      name: "effect-sse-resume",
      setup: (plugin) => {
        plugin.onResolve({ filter: /^effect-sse-resume(\/|$)/ }, (args) => {
          const source = sources[args.path]
          return source === undefined ? { errors: [{ text: `${args.path} is not an entry point of the package` }] } : { path: source }
        })
      }
    }]
  })
}
