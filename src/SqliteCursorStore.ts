/**
 * The embedded default cursor store: a SQLite file (WAL mode) through
 * `@effect/sql-sqlite-node`. Its own entry point (`effect-sse-resume/sqlite`), so
 * only users of it load the native driver.
 */
import { SqliteClient } from "@effect/sql-sqlite-node"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Layer } from "effect"
import type { ConfigError } from "effect/ConfigError"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { CursorStore, CursorStoreError, layerSql } from "./CursorStore.js"

/** Where the embedded store lives unless told otherwise. */
export const defaultFilename = "./.sse-resume/cursors.db"

/** The store in the SQLite file `filename`, its directory created if missing. */
export const layer = (
  filename: string = defaultFilename
): Layer.Layer<CursorStore, SqlError | ConfigError | CursorStoreError> =>
  Layer.provide(
    layerSql,
    Layer.unwrapEffect(
      Effect.try({
        try: () => mkdirSync(dirname(filename), { recursive: true }),
        catch: (cause) => new CursorStoreError({ operation: "open", cause })
      }).pipe(Effect.as(SqliteClient.layer({ filename })))
    )
  )
