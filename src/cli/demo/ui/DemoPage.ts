/**
 * The demo page's script, as bundled at build time (`build.mjs`): the CLI reads it
 * once and `DemoServer` serves it beside the page's HTML.
 */
import { readFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { Data, Effect } from "effect"

/** The page's script is not where a build puts it: the CLI runs from a source checkout that was never built. */
export class DemoPageMissing extends Data.TaggedError("DemoPageMissing")<{
  /** Every file looked at. */
  readonly looked: ReadonlyArray<string>
}> {
  override get message() {
    return `the demo page is not built (looked for ${this.looked.join(" and ")}): run \`npm run build\` first`
  }
}

/**
 * Where the script may be, from the URL of the CLI's module (`dist/cli/Cli.js`,
 * or a bundle of it in a folder beside `ui/`): `../ui/page.js`; and, when that
 * module is the source (`src/cli/Cli.ts`, run through tsx), the checkout's build.
 */
const candidates = (moduleUrl: string): ReadonlyArray<string> => [
  fileURLToPath(new URL("../ui/page.js", moduleUrl)),
  fileURLToPath(new URL("../../dist/ui/page.js", moduleUrl))
]

/** The script's text: the first candidate that exists. */
export const load = (moduleUrl: string): Effect.Effect<string, DemoPageMissing> => {
  const looked = candidates(moduleUrl)
  return Effect.firstSuccessOf(
    looked.map((file) => Effect.tryPromise(() => readFile(file, "utf8")))
  ).pipe(Effect.mapError(() => new DemoPageMissing({ looked })))
}
