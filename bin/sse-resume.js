#!/usr/bin/env node
// In the published package, which ships no src/, run the build. In this repository,
// run the TypeScript source, never a stale build: bundled by esbuild into
// node_modules/.cache/sse-resume-bin/<fingerprint of src/>/ the first time it runs
// after a change, then imported as it is. Compiling every module through tsx on
// each run cost 1–2 s before even a usage error. Split into chunks, so a command's
// modules and the drivers load only when it runs, as from dist/.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const source = join(root, "src", "cli", "main.ts")

/** The newest modification time and the number of files under `dir`: a new, changed or removed file changes it. */
const fingerprint = (dir) => {
  let newest = 0
  let files = 0
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    files++
    newest = Math.max(newest, statSync(join(entry.parentPath ?? entry.path, entry.name)).mtimeMs)
  }
  return `${Math.floor(newest)}-${files}`
}

/** The bundle of the current source, built if missing; concurrent runs each build and the first rename wins. */
const bundle = async () => {
  const cache = join(root, "node_modules", ".cache", "sse-resume-bin")
  const current = join(cache, fingerprint(join(root, "src")))
  const entry = join(current, "cli", "main.mjs")
  if (existsSync(entry)) return entry
  const { build } = await import("esbuild")
  // Bundles of older sources go.
  rmSync(cache, { recursive: true, force: true })
  mkdirSync(cache, { recursive: true })
  const building = mkdtempSync(join(root, "node_modules", ".cache", "sse-resume-bin-"))
  await build({
    entryPoints: { "cli/main": source },
    bundle: true,
    splitting: true,
    platform: "node",
    format: "esm",
    packages: "external",
    outdir: building,
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunks/[name]-[hash]",
    // `serve-demo --ui` looks for the page beside the CLI's module: the source's, as tsx ran it.
    define: { "import.meta.url": JSON.stringify(pathToFileURL(source).href) },
    logLevel: "warning"
  })
  try {
    renameSync(building, current)
  } catch {
    // Another run renamed its own build there first: the same source, so use that one.
    rmSync(building, { recursive: true, force: true })
  }
  return entry
}

if (existsSync(source)) {
  await import(pathToFileURL(await bundle()).href)
} else {
  await import(new URL("../dist/cli/main.js", import.meta.url).href)
}
