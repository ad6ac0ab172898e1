/**
 * The shared cursor store for several instances: a PostgreSQL database through
 * `@effect/sql-pg`. Its own entry point (`effect-sse-resume/pg`), so only users
 * of it load the driver.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { type CursorStore, type CursorTransactions, layerSql } from "../store/CursorStore.js"
import type { LeaseStore } from "../store/LeaseStore.js"
import { type CursorStoreError, mapStoreFailure } from "../store/StoreError.js"

/**
 * The store in the PostgreSQL database at `url` (`postgres://user:password@host:port/database`).
 * A malformed URL, an unreachable server or a refused login fails with a
 * `CursorStoreError` of operation "open" that names the reason (never the password).
 */
export const layer = (url: string | Redacted.Redacted): Layer.Layer<CursorStore | LeaseStore | CursorTransactions, CursorStoreError> => {
  const redacted = typeof url === "string" ? Redacted.make(url) : url
  return Layer.provide(
    layerSql,
    Layer.scopedContext(
      checkUrl(Redacted.value(redacted)).pipe(
        Effect.zipRight(Layer.build(PgClient.layer({ url: redacted }))),
        mapStoreFailure("open")
      )
    )
  )
}

// The driver reads anything as a connection string ("not a url" becomes host "base"):
// a typo would fail later as a misleading DNS error.
const checkUrl = (url: string) =>
  URL.canParse(url) && ["postgres:", "postgresql:"].includes(new URL(url).protocol)
    ? Effect.void
    : Effect.fail("not a PostgreSQL URL (postgres://user@host:port/database)")
