/**
 * The public surface, as a reviewer sees it change: every name each entry point
 * of package.json's `exports` offers (the root's namespaces with their names, one
 * level per namespace), what kind of thing it is, read from the sources by the
 * TypeScript compiler. It is printed and compared with the checked-in
 * test/__snapshots__/PublicApi.txt: a change to the surface fails here until the
 * snapshot is updated (`npx vitest run test/PublicApi.test.ts -u`), so it shows
 * in the diff under review.
 *
 * And no name on that surface may be marked `@internal`: such a name is public
 * in fact (anyone can import it and will) while its author thinks it is not.
 */
import { readFileSync } from "node:fs"
import { join, relative } from "node:path"
import ts from "typescript"
import { describe, expect, it } from "vitest"

const repo = join(import.meta.dirname, "..")

interface Entry {
  readonly specifier: string
  readonly file: string
}

/** package.json's `exports`, each with the source its `import` target is built from. */
const entries = (): Array<Entry> => {
  const exports: Record<string, string | { readonly import?: string }> =
    JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).exports
  return Object.entries(exports).flatMap(([subpath, target]) => {
    const built = typeof target === "string" ? target : target.import
    if (built === undefined || !built.startsWith("./dist/") || !built.endsWith(".js")) return []
    const specifier = subpath === "." ? "effect-sse-resume" : `effect-sse-resume${subpath.slice(1)}`
    return [{ specifier, file: join(repo, "src", built.slice("./dist/".length, -".js".length) + ".ts") }]
  })
}

const kinds: ReadonlyArray<readonly [ts.SymbolFlags, string]> = [
  [ts.SymbolFlags.Class, "class"],
  [ts.SymbolFlags.Function, "function"],
  [ts.SymbolFlags.Variable, "const"],
  [ts.SymbolFlags.Enum, "enum"],
  [ts.SymbolFlags.Interface, "interface"],
  [ts.SymbolFlags.TypeAlias, "type"],
  [ts.SymbolFlags.Module, "namespace"]
]

const kindOf = (symbol: ts.Symbol) =>
  kinds.filter(([flag]) => (symbol.flags & flag) !== 0).map(([, kind]) => kind).join(" + ") || "?"

interface Surface {
  /** One line per name, indented under its namespace. */
  readonly lines: Array<string>
  /** `<entry> › <name> (<file>:<line>)` of each name marked `@internal`. */
  readonly internal: Array<string>
}

const isInternal = (declaration: ts.Declaration) => ts.getJSDocTags(declaration).some((tag) => tag.tagName.text === "internal")

const where = (declaration: ts.Declaration) => {
  const source = declaration.getSourceFile()
  return `${relative(repo, source.fileName)}:${source.getLineAndCharacterOfPosition(declaration.getStart()).line + 1}`
}

const readSurface = (): Surface => {
  const config = ts.getParsedCommandLineOfConfigFile(join(repo, "tsconfig.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"))
    }
  })!
  const all = entries()
  const program = ts.createProgram(all.map(({ file }) => file), config.options)
  const checker = program.getTypeChecker()
  const lines: Array<string> = []
  const internal: Array<string> = []

  const list = (entry: string, module: ts.Symbol, path: string, indent: string, seen: Set<ts.Symbol>) => {
    const names = checker.getExportsOfModule(module).sort((a, b) => a.name.localeCompare(b.name))
    for (const exported of names) {
      const target = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported
      const name = `${path}${exported.name}`
      for (const declaration of [...exported.declarations ?? [], ...target.declarations ?? []]) {
        if (isInternal(declaration)) internal.push(`${entry} › ${name} (${where(declaration)})`)
      }
      lines.push(`${indent}${exported.name}: ${kindOf(target)}`)
      // A namespace's names are the surface too (`export * as CursorStore`, `export declare namespace`).
      if (target.flags & ts.SymbolFlags.Module && !seen.has(target)) {
        list(entry, target, `${name}.`, `${indent}  `, new Set([...seen, target]))
      }
    }
  }

  for (const { file, specifier } of all) {
    const source = program.getSourceFile(file)
    if (source === undefined) throw new Error(`package.json exports ${specifier} from ${file}, which does not exist`)
    const module = checker.getSymbolAtLocation(source)!
    lines.push(`${specifier} (${relative(repo, file)})`)
    list(specifier, module, "", "  ", new Set([module]))
  }
  return { lines, internal: [...new Set(internal)] }
}

describe("the public surface (package.json exports)", () => {
  const surface = readSurface()

  it("is the checked-in list of names (update it with -u when the change is meant)", async () => {
    console.log(surface.lines.join("\n"))
    await expect(surface.lines.join("\n") + "\n").toMatchFileSnapshot("./__snapshots__/PublicApi.txt")
  })

  it("has no name marked @internal", () => {
    expect(surface.internal, "exported names marked @internal: move them to an internal/ module or drop the tag").toEqual([])
  })
})
