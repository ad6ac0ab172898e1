import { join } from "node:path"
import { Effect, Layer } from "effect"
import * as PgEventLog from "../src/engines/PgEventLog.js"
import * as SqliteEventLog from "../src/engines/SqliteEventLog.js"
import * as EventLog from "../src/server/EventLog.js"
import { eventLogContract } from "./support/eventLogContract.js"
import { notePgSkip, pgUrl, tempDir } from "./support/stores.js"

eventLogContract("EventLog memory", EventLog.layerMemory)

eventLogContract(
  "EventLog SQLite",
  (settings) => Layer.unwrapScoped(Effect.map(tempDir("sse-log-"), (dir) => SqliteEventLog.layer(join(dir, "nested", "log.db"), settings))),
  { transactional: true }
)

notePgSkip("EventLog")
if (pgUrl !== undefined) {
  eventLogContract("EventLog PostgreSQL", (settings) => PgEventLog.layer(pgUrl!, settings), { transactional: true })
}
