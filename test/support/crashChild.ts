/**
 * The process the crash test kills: tails a loopback SSE server into a SQLite
 * cursor store through SessionManager, printing each delivered event id.
 *
 *   node --import tsx test/support/crashChild.ts <db file> <url> <session id> <last id>
 *
 * It reads with plain fetch and records one event at a time, printing an id right
 * after `recordEvent` says it is new: that keeps the gap between "the cursor may be
 * durable" and "the event is delivered" to a few operations, so a SIGKILL landing
 * in it is practically impossible (a chunked reader widens that gap).
 */
import { Duration, Effect, Layer, Option } from "effect"
import { createParser, type EventSourceMessage } from "eventsource-parser"
import { writeSync } from "node:fs"
import * as SqliteCursorStore from "../../src/engines/SqliteCursorStore.js"
import * as PersistenceWorker from "../../src/session/PersistenceWorker.js"
import * as SessionManager from "../../src/session/SessionManager.js"
import { SseEvent } from "../../src/wire/SseEvent.js"

const [db, url, sessionId, lastId] = process.argv.slice(2) as [string, string, string, string]

const program = Effect.gen(function*() {
  const sessions = yield* SessionManager.SessionManager
  const session = yield* sessions.open(sessionId)
  const resumeFrom = yield* session.tracker.lastEventId
  const response = yield* Effect.promise(() =>
    fetch(url, { headers: Option.isSome(resumeFrom) ? { "last-event-id": resumeFrom.value } : {} })
  )
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  let parsed: Array<EventSourceMessage> = []
  const parser = createParser({ onEvent: (message) => parsed.push(message) })
  while (true) {
    const { done, value } = yield* Effect.promise(() => reader.read())
    if (done) return yield* Effect.dieMessage("server closed the stream early")
    parser.feed(value)
    const batch = parsed
    parsed = []
    for (const message of batch) {
      const result = yield* session.tracker.recordEvent(new SseEvent({ id: message.id, data: message.data }))
      if (result === "new") writeSync(1, `${message.id}\n`)
      if (message.id === lastId) return yield* sessions.close(sessionId)
    }
  }
})

const layer = SessionManager.layer().pipe(
  Layer.provideMerge(PersistenceWorker.layer({ flushInterval: Duration.millis(20) })),
  Layer.provideMerge(SqliteCursorStore.layer(db))
)

Effect.runPromise(program.pipe(Effect.provide(layer))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
