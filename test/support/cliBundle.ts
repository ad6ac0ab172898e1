/**
 * The CLI as spawned tests run it: `src/cli/main.ts` bundled once per test run
 * by `test/globalSetup.ts` (its packages stay imports from node_modules). Running
 * the source through tsx instead costs every spawned process about 1.5 s of
 * compiling, which made the CLI tests most of the suite's time. The folder is laid
 * out as dist/ is (`cli/`, `ui/`), so the CLI finds the demo page's script as the
 * built package does: at `../ui/page.js` from its module.
 */
import { join } from "node:path"

const dir = join(import.meta.dirname, "..", "..", "node_modules", ".cache", "sse-resume-test")

/** `sse-resume`. */
export const cliBundle = join(dir, "cli", "main.mjs")
/** The demo page's script (src/cli/demo/ui/page.ts), where `serve-demo --ui` of `cliBundle` looks for it. */
export const pageBundle = join(dir, "ui", "page.js")
/** The crash test's child (test/support/crashChild.ts). */
export const crashChildBundle = join(dir, "crashChild.mjs")
/** The ownership tests' instance (test/support/ownerChild.ts). */
export const ownerChildBundle = join(dir, "ownerChild.mjs")
/** The exactly-once crash test's child (test/support/exactlyOnceChild.ts). */
export const exactlyOnceChildBundle = join(dir, "exactlyOnceChild.mjs")
