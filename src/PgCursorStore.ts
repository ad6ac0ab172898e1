/**
 * The shared cursor store for several instances: a PostgreSQL database through
 * `@effect/sql-pg`. Its own entry point (`effect-sse-resume/pg`), so only users
 * of it load the driver.
 */
import { PgClient } from "@effect/sql-pg"
import type { SqlError } from "@effect/sql/SqlError"
import { Layer, Redacted } from "effect"
import { type CursorStore, layerSql } from "./CursorStore.js"

/** The store in the PostgreSQL database at `url`. */
export const layer = (url: string | Redacted.Redacted): Layer.Layer<CursorStore, SqlError> =>
  Layer.provide(layerSql, PgClient.layer({ url: typeof url === "string" ? Redacted.make(url) : url }))
