/**
 * The shared event log for several instances: a PostgreSQL database through
 * `@effect/sql-pg`. Every append, end and delete sends a `NOTIFY` in its own
 * transaction (so it is delivered at commit, never before the rows are visible), and
 * each instance holds one `LISTEN` (`PgClient.listen`) that wakes the followers of
 * the named stream: a live tail across instances without a poll per reader. A slow
 * poll (`pollInterval`, 10 seconds here unless set) only covers notifications lost
 * with the listening connection.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { PgClient } from "@effect/sql-pg"
import { Deferred, Duration, Effect, Layer, Option, Redacted, Stream } from "effect"
import { defaults, EventLog, EventLogError, make, makeSqlStorage, type Settings, sqlChannel } from "../server/EventLog.js"

/** The poll behind the notifications: only a safety net. */
export const defaultPollInterval = Duration.seconds(10)

/** The log on the `PgClient` in context, live across instances through `LISTEN`/`NOTIFY`. */
export const layerClient = (options: Partial<Settings> = {}): Layer.Layer<EventLog, EventLogError, PgClient.PgClient> =>
  Layer.scoped(
    EventLog,
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      const listening = yield* Deferred.make<void>()
      const probe = `effect-sse-resume/listening/${crypto.randomUUID()}`
      const changes = pg.listen(sqlChannel).pipe(
        Stream.tap((payload) => payload === probe ? Deferred.succeed(listening, undefined) : Effect.void)
      )
      const storage = yield* makeSqlStorage({ changes }).pipe(Effect.provideService(SqlClient.SqlClient, pg))
      const log = yield* make(storage, { ...defaults, pollInterval: defaultPollInterval, ...options })
      // Built means listening: an append made right after, by any instance, reaches this
      // one's followers by notification rather than after a poll. A server that never
      // answers the probe leaves the poll to do it.
      yield* pg.notify(sqlChannel, probe).pipe(
        Effect.zipRight(Effect.timeoutOption(Deferred.await(listening), Duration.millis(200))),
        Effect.repeat({ until: Option.isSome }),
        Effect.timeoutOption(Duration.seconds(10)),
        Effect.ignore
      )
      return log
    })
  )

/**
 * The log in the PostgreSQL database at `url` (`postgres://user:password@host:port/database`),
 * with the client its appends use (for the caller's `withTransaction`). A malformed
 * URL, an unreachable server or a refused login fails with an `EventLogError` of
 * operation "open".
 */
export const layer = (
  url: string | Redacted.Redacted,
  options: Partial<Settings> = {}
): Layer.Layer<EventLog | SqlClient.SqlClient, EventLogError> => {
  const redacted = typeof url === "string" ? Redacted.make(url) : url
  return Layer.provideMerge(
    layerClient(options),
    Layer.scopedContext(
      checkUrl(Redacted.value(redacted)).pipe(
        Effect.zipRight(Layer.build(PgClient.layer({ url: redacted }))),
        Effect.mapError((cause) => new EventLogError({ operation: "open", stream: "", cause })),
        Effect.catchAllDefect((cause) => Effect.fail(new EventLogError({ operation: "open", stream: "", cause })))
      )
    )
  )
}

// The driver reads anything as a connection string ("not a url" becomes host "base").
const checkUrl = (url: string) =>
  URL.canParse(url) && ["postgres:", "postgresql:"].includes(new URL(url).protocol)
    ? Effect.void
    : Effect.fail("not a PostgreSQL URL (postgres://user@host:port/database)")
