/**
 * `tail`'s cursor store, from `--store FILE` or `--pg URL`. Each driver is loaded
 * only when chosen: the SQLite driver's native module and pg cost most of a
 * start-up that needs neither (issue 20).
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { mkdir, stat } from "node:fs/promises"
import { dirname, resolve } from "node:path"
import type * as CursorStore from "../../../store/CursorStore.js"

export type StoreChoice =
  | { readonly _tag: "sqlite"; readonly filename: string }
  | { readonly _tag: "pg"; readonly url: string }

/** How messages name the store: the file, or "PostgreSQL" (never the URL, which may hold a password). */
export const storeName = (choice: StoreChoice): string => choice._tag === "sqlite" ? choice.filename : "PostgreSQL"

/** What `--pg` accepts: the driver reads anything else as a host name, failing later as a misleading DNS error. */
export const isPgUrl = (url: string): boolean =>
  URL.canParse(url) && ["postgres:", "postgresql:"].includes(new URL(url).protocol)

const isMissing = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code === "ENOENT"

/**
 * Creates the directory of `filename` one level at a time, from its nearest
 * existing ancestor. Not `mkdir(…, { recursive: true })`: on a path under /proc
 * Node's recursive mkdir retries forever, at 100% CPU and deaf to SIGTERM (the
 * synchronous one holds the event loop). Each level here is one call that fails
 * with the system's reason.
 */
const prepareDirectory = (filename: string): Effect.Effect<void, unknown> =>
  Effect.tryPromise({
    try: async () => {
      const missing: Array<string> = []
      let dir = dirname(resolve(filename))
      for (;;) {
        try {
          await stat(dir)
          break
        } catch (error) {
          if (!isMissing(error) || dirname(dir) === dir) throw error
          missing.unshift(dir)
          dir = dirname(dir)
        }
      }
      for (const level of missing) await mkdir(level)
    },
    catch: (cause) => cause instanceof Error ? new Error(`open failed: ${cause.message}`) : cause
  })

/** The chosen store, its driver imported when the layer is built. */
export const layer = (
  choice: StoreChoice
): Layer.Layer<CursorStore.CursorStore | CursorStore.CursorTransactions, unknown> =>
  choice._tag === "pg"
    ? Layer.unwrapEffect(Effect.promise(() => import("../../../engines/PgCursorStore.js")).pipe(
      Effect.map((PgCursorStore) => PgCursorStore.layer(choice.url))
    ))
    : Layer.unwrapEffect(prepareDirectory(choice.filename).pipe(
      Effect.zipRight(Effect.promise(() => import("../../../engines/SqliteCursorStore.js"))),
      Effect.map((SqliteCursorStore) => SqliteCursorStore.layer(choice.filename))
    ))
