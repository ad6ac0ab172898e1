#!/usr/bin/env node
// In this repository, run the TypeScript source through tsx (never a stale build);
// in the published package, which ships no src/, run the build.
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"

const source = new URL("../src/cli/main.ts", import.meta.url)
if (existsSync(fileURLToPath(source))) {
  const { register } = await import("tsx/esm/api")
  register()
  await import(source.href)
} else {
  await import(new URL("../dist/cli/main.js", import.meta.url).href)
}
