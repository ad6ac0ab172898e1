/**
 * Takes docs/demo-page.png, the README's picture of the demo page mid-run: the
 * page bundled afresh, served by DemoServer cutting the stream now and then,
 * loaded, reloaded once, then photographed in headless Chromium.
 *
 *   npx tsx test/support/demoScreenshot.ts [docs/demo-page.png]
 */
import { Effect } from "effect"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as DemoServer from "../../src/cli/demo/DemoServer.js"
import { bundlePage } from "../../src/cli/demo/ui/build.mjs"
import { launch } from "./browser.js"

const out = process.argv[2] ?? "docs/demo-page.png"

const program = Effect.gen(function*() {
  const script = join(mkdtempSync(join(tmpdir(), "sse-demo-page-")), "page.js")
  yield* Effect.promise(() => bundlePage(script))
  const server = yield* DemoServer.make({
    eventsPerSecond: 200,
    dropEvery: 150,
    replayOverlap: 3,
    pageScript: readFileSync(script, "utf8")
  })
  const browser = yield* Effect.acquireRelease(Effect.promise(launch), (browser) => Effect.promise(browser.close))
  const page = yield* Effect.promise(() => browser.context.newPage())
  const count = (load: number, events: number) =>
    Effect.promise(() =>
      page.waitForFunction(
        ([load, events]) => (window.__sseDemo?.loads[load]?.count ?? 0) >= events,
        [load, events] as const,
        { timeout: 30_000 }
      )
    )
  yield* Effect.promise(() => page.goto(`${server.origin}/`))
  yield* count(0, 420)
  yield* Effect.promise(() => page.reload())
  yield* count(1, 380)
  yield* Effect.promise(() => page.screenshot({ path: out, fullPage: true }))
  console.log(`wrote ${out}`)
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
