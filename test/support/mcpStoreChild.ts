/**
 * The MCP server process the McpEventStore restart test kills: the SDK's server
 * (mcpStoreServer.ts) with McpEventStore on a SQLite file, restoring any session
 * it is asked about, as an app that keeps its sessions does after a restart.
 *
 *   node mcpStoreChild.mjs <db file> <port> <notifications>
 *
 * Prints `ready` once it listens.
 */
import { Effect } from "effect"
import { writeSync } from "node:fs"
import * as SqliteEventLog from "../../src/engines/SqliteEventLog.js"
import * as McpEventStore from "../../src/server/McpEventStore.js"
import { start } from "./mcpStoreServer.js"

const [db, port, notifications] = process.argv.slice(2) as [string, string, string]

Effect.runPromise(
  Effect.gen(function*() {
    const storeFor = yield* McpEventStore.forSessions
    yield* Effect.promise(() =>
      start({ eventStoreFor: storeFor, notifications: Number(notifications), restoreSessions: true, port: Number(port) })
    )
    writeSync(1, "ready\n")
    yield* Effect.never
  }).pipe(Effect.scoped, Effect.provide(SqliteEventLog.layer(db)))
).catch((error) => {
  console.error(error)
  process.exit(1)
})
