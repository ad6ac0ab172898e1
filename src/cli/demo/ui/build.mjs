/**
 * Bundles the demo page's script (src/cli/demo/ui/page.ts) for the browser, with every
 * package it imports: the CLI serves the file as is, with no CDN and no esbuild at
 * run time (esbuild is a devDependency). `npm run build` runs this file to write
 * dist/ui/page.js; test/globalSetup.ts calls `bundlePage` for the tests' CLI.
 */
import { build } from "esbuild"
import { fileURLToPath } from "node:url"

const entry = fileURLToPath(new URL("./page.ts", import.meta.url))

/** Writes the page's script to `outfile`. */
export const bundlePage = async (outfile) => {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    minify: true,
    legalComments: "none",
    logLevel: "warning"
  })
}

// Quiet, as tsc is: `npm pack --json` prints the build's stdout before its JSON.
if (process.argv[1] === fileURLToPath(import.meta.url)) await bundlePage(process.argv[2] ?? "dist/ui/page.js")
