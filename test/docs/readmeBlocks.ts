/**
 * The README's TypeScript blocks, each type-checked on its own, strictly, against
 * the package as a user imports it (`effect-sse-resume`, `effect-sse-resume/sqlite`, …
 * mapped to the sources), the way Effect's docs tooling checks its examples: a block
 * must carry its own imports and declare its placeholders.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join, relative } from "node:path"

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

/** The package's own entry points (package.json `exports`), mapped from dist/ to src/ for `paths`. */
const entryPaths = (root: string, dir: string): Record<string, ReadonlyArray<string>> => {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    readonly name: string
    readonly exports: Record<string, string | { readonly import?: string }>
  }
  const paths: Record<string, ReadonlyArray<string>> = {}
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    const file = typeof target === "string" ? target : target.import
    if (file === undefined || !file.endsWith(".js")) continue
    const source = join(root, file.replace(/^\.\/dist\//, "src/").replace(/\.js$/, ".ts"))
    paths[subpath === "." ? pkg.name : `${pkg.name}/${subpath.slice(2)}`] = [relative(dir, source)]
  }
  return paths
}

/**
 * Writes each `ts` block of `markdownFile` as its own module into `dir`, with a
 * strict tsconfig resolving the package to its sources; returns the files written
 * (named by the line the block starts on).
 */
export const writeProject = (root: string, markdownFile: string, dir: string): ReadonlyArray<string> => {
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const files: Array<string> = []
  for (const block of blocksOf(readFileSync(markdownFile, "utf8"))) {
    if (block.lang !== "ts" && block.lang !== "typescript") continue
    const file = `line-${block.line}.ts`
    // `export {}` makes every block a module of its own, as a user's file would be.
    writeFileSync(join(dir, file), `${block.code}\nexport {}\n`)
    files.push(file)
  }
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
        paths: entryPaths(root, dir)
      },
      include: files
    }, null, 2)
  )
  return files
}
