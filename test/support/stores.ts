/** Store layers for the test suites: SQLite in a fresh temp dir, and PostgreSQL when `PG_URL` is set. */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { PlatformError } from "@effect/platform/Error"
import * as NodeKeyValueStore from "@effect/platform-node/NodeKeyValueStore"
import { CursorStore } from "../../src/store/CursorStore.js"
import * as Cursors from "../../src/store/CursorStore.js"
import type { LeaseStore } from "../../src/store/LeaseStore.js"
import * as PgCursorStore from "../../src/engines/PgCursorStore.js"
import * as SqliteCursorStore from "../../src/engines/SqliteCursorStore.js"
import { Effect, Layer } from "effect"

export const pgUrl = process.env.PG_URL

/** Logs once why the PostgreSQL suites are skipped. */
export const notePgSkip = (suite: string): void => {
  if (pgUrl === undefined) console.log(`[${suite}] PostgreSQL tests skipped: set PG_URL (e.g. postgres://postgres@127.0.0.1:5432/test)`)
}

/** A temp dir removed when the layer's scope closes. */
export const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), prefix))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

export const sqliteStore: Layer.Layer<CursorStore | LeaseStore, unknown> = Layer.unwrapScoped(
  Effect.map(tempDir("sse-cursors-"), (dir) => SqliteCursorStore.layer(join(dir, "nested", "cursors.db")))
)

export const pgStore = (): Layer.Layer<CursorStore | LeaseStore, unknown> => PgCursorStore.layer(pgUrl!)

/** Session ids unique to this run, so suites sharing one database never see each other's rows. */
export const runId = `${process.pid}-${Date.now().toString(36)}`

/** The key-value store on files (`NodeKeyValueStore.layerFileSystem`) in `dir`. */
export const keyValueFileStore = (dir: string): Layer.Layer<CursorStore | LeaseStore, PlatformError> =>
  Layer.provide(Cursors.layerKeyValueStore, NodeKeyValueStore.layerFileSystem(dir))

/** The key-value store on files in a fresh temp dir. */
export const keyValueTempStore: Layer.Layer<CursorStore | LeaseStore, unknown> = Layer.unwrapScoped(
  Effect.map(tempDir("sse-kv-"), keyValueFileStore)
)
