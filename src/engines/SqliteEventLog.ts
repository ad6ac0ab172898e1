/**
 * The embedded event log: a SQLite file (WAL mode) through `@effect/sql-sqlite-node`.
 * Its tables sit beside the cursor store's, so one file can hold both:
 *
 *   const storage = SqliteClient.layer({ filename: "./.sse-resume/cursors.db" })
 *   const both = Layer.mergeAll(EventLog.layerSql(), CursorStore.layerSql).pipe(Layer.provideMerge(storage))
 *
 * and then "read an upstream, append to the log, move the upstream's cursor" is one
 * `sql.withTransaction`. Followers in this process see appends at once; appends by
 * another process on the same file are seen by a poll of each followed stream's last
 * id every `pollInterval`, shared by all the followers of the process.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect, Layer } from "effect"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { type EventLog, EventLogError, layerSql, type Settings } from "../server/EventLog.js"

/** Where the embedded log lives unless told otherwise. */
export const defaultFilename = "./.sse-resume/events.db"

/**
 * The log in the SQLite file `filename`, its directory created if missing, with the
 * client its appends use (for the caller's `withTransaction`). A path that cannot
 * hold a database fails with an `EventLogError` of operation "open".
 */
export const layer = (
  filename: string = defaultFilename,
  options: Partial<Settings> = {}
): Layer.Layer<EventLog | SqlClient.SqlClient, EventLogError> =>
  Layer.provideMerge(
    layerSql(options),
    Layer.scopedContext(
      Effect.try({ try: () => mkdirSync(dirname(filename), { recursive: true }), catch: (cause) => cause }).pipe(
        // The driver opens the file and sets WAL mode while the layer is built, and throws there.
        Effect.zipRight(Layer.build(SqliteClient.layer({ filename }))),
        Effect.mapError((cause) => new EventLogError({ operation: "open", stream: "", cause })),
        Effect.catchAllDefect((cause) => Effect.fail(new EventLogError({ operation: "open", stream: "", cause })))
      )
    )
  )
