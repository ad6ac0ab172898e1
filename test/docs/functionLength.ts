/**
 * Lists the functions of src/ longer than a limit: every function, method, accessor,
 * arrow and `function*` (a long `Effect.gen` in a `make` counts), measured from its
 * first line to its last. `npx tsx test/docs/functionLength.ts [limit]` prints them,
 * longest first; functionLength.test.ts holds src/ to the limit in CI.
 */
import { readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"
import ts from "typescript"

export interface LongFunction {
  readonly file: string
  readonly line: number
  readonly name: string
  readonly lines: number
}

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [join(dir, entry.name)] : []
  )

/** What a reader would call the function: its own name, or the name it is bound to. */
const nameOf = (node: ts.Node, file: ts.SourceFile): string => {
  const own = (node as { readonly name?: ts.Node }).name
  if (own !== undefined) return own.getText(file)
  const parent = node.parent
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) {
    return parent.name.getText(file)
  }
  if (ts.isCallExpression(parent)) return `${nameOf(parent, file)} → ${parent.expression.getText(file).slice(0, 40)}(…)`
  return "(anonymous)"
}

/** `(…) => Effect.gen(function*() {…})`: the generator is the arrow's whole body, measured once, as the arrow. */
const isWholeBodyOf = (node: ts.Node): boolean =>
  ts.isCallExpression(node.parent) && ts.isArrowFunction(node.parent.parent) && node.parent.parent.body === node.parent

export const longFunctions = (root: string, limit: number): Array<LongFunction> => {
  const found: Array<LongFunction> = []
  for (const path of sourceFiles(join(root, "src"))) {
    const file = ts.createSourceFile(path, readFileSync(path, "utf8"), ts.ScriptTarget.Latest, true)
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && "body" in node && node.body !== undefined && !isWholeBodyOf(node)) {
        const first = file.getLineAndCharacterOfPosition(node.getStart(file)).line
        const last = file.getLineAndCharacterOfPosition(node.getEnd()).line
        const lines = last - first + 1
        if (lines > limit) found.push({ file: relative(root, path), line: first + 1, name: nameOf(node, file), lines })
      }
      ts.forEachChild(node, visit)
    }
    visit(file)
  }
  return found.sort((a, b) => b.lines - a.lines)
}

if (process.argv[1]?.endsWith("functionLength.ts")) {
  const limit = Number(process.argv[2] ?? 80)
  for (const f of longFunctions(process.cwd(), limit)) console.log(`${String(f.lines).padStart(4)}  ${f.file}:${f.line}  ${f.name}`)
}
