/** Builds what spawned tests run, once per `vitest run` (see test/support/cliBundle.ts). */
import { build } from "esbuild"
import { bundlePage } from "../src/cli/demo/ui/build.mjs"
import { cliBundle, crashChildBundle, exactlyOnceChildBundle, ownerChildBundle, pageBundle } from "./support/cliBundle.js"

const bundle = (entry: string, outfile: string) =>
  build({ entryPoints: [entry], bundle: true, platform: "node", format: "esm", packages: "external", outfile, logLevel: "warning" })

export default async function setup(): Promise<void> {
  await Promise.all([
    bundle("src/cli/main.ts", cliBundle),
    bundle("test/support/crashChild.ts", crashChildBundle),
    bundle("test/support/ownerChild.ts", ownerChildBundle),
    bundle("test/support/exactlyOnceChild.ts", exactlyOnceChildBundle),
    bundlePage(pageBundle)
  ])
}
