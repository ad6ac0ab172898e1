/**
 * The embedded default cursor store: a SQLite file (WAL mode) through
 * `@effect/sql-sqlite-node`. Its own entry point (`effect-sse-resume/sqlite`), so
 * only users of it load the native driver.
 */
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect, Layer } from "effect"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { type CursorStore, type CursorTransactions, layerSql } from "../store/CursorStore.js"
import type { LeaseStore } from "../store/LeaseStore.js"
import { type CursorStoreError, mapStoreFailure } from "../store/StoreError.js"

/** Where the embedded store lives unless told otherwise. */
export const defaultFilename = "./.sse-resume/cursors.db"

/**
 * The store in the SQLite file `filename`, its directory created if missing. A path
 * that cannot hold a database (a directory, a corrupt or unreadable file, a parent
 * that is a file) fails with a `CursorStoreError` of operation "open".
 */
export const layer = (filename: string = defaultFilename): Layer.Layer<CursorStore | LeaseStore | CursorTransactions, CursorStoreError> =>
  Layer.provide(
    layerSql,
    Layer.scopedContext(
      Effect.try({ try: () => mkdirSync(dirname(filename), { recursive: true }), catch: (cause) => cause }).pipe(
        // The driver opens the file and sets WAL mode while the layer is built, and throws there.
        Effect.zipRight(Layer.build(SqliteClient.layer({ filename }))),
        mapStoreFailure("open")
      )
    )
  )
