#!/usr/bin/env node
// Runs the built CLI when there is one, else the TypeScript source through tsx.
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"

const built = new URL("../dist/bin/sse-resume.js", import.meta.url)
if (existsSync(fileURLToPath(built))) {
  await import(built.href)
} else {
  const { register } = await import("tsx/esm/api")
  register()
  await import(new URL("../src/bin/sse-resume.ts", import.meta.url).href)
}
