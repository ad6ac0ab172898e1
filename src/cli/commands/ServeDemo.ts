/**
 * `sse-resume serve-demo`: numbered events on 127.0.0.1, cut now and then, and
 * with `--ui` the demo page that tails them in a browser.
 */
import * as Effect from "effect/Effect"
import type * as Cli from "../Cli.js"
import * as DemoServer from "../demo/DemoServer.js"
import * as DemoPage from "../demo/ui/DemoPage.js"

/** `cliUrl`: the URL of a module in the CLI's folder (`dist/cli/`, or a bundle's), where the page is looked for. */
export const run = (
  { options }: Cli.ServeDemoArguments,
  cliUrl: string
): Effect.Effect<never, DemoServer.DemoServerError | DemoPage.DemoPageMissing> =>
  Effect.gen(function*() {
    const pageScript = options.ui ? yield* DemoPage.load(cliUrl) : undefined
    const server = yield* DemoServer.make({
      port: options.port,
      dropEvery: options.dropEvery,
      eventsPerSecond: options.rate,
      pageScript
    })
    yield* Effect.sync(() => {
      process.stderr.write(`serving numbered events on ${server.url} (Ctrl-C stops)\n`)
      if (pageScript !== undefined) process.stderr.write(`demo page: open ${server.origin}/ in a browser\n`)
    })
    return yield* Effect.never
  }).pipe(Effect.scoped)
