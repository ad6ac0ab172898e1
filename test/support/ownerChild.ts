/**
 * An instance process for the ownership tests: holds sessions through
 * SessionManager (one with `hold`, or many with SessionGroup) and tails a loopback
 * server's numbered events for each, printing what it handles with the time.
 *
 *   node --import tsx test/support/ownerChild.ts hold <store> <url> <session> <max events> <wait|nowait>
 *   node --import tsx test/support/ownerChild.ts group <store> <url> <session,session,...> <max owned>
 *
 * <store> is a SQLite file or a postgres:// URL. Lines on stdout:
 * `claim <session> <epoch> <resume-from or -> <ms>` when a session is taken and
 * `event <session> <id> <ms>` right after `recordEvent` said the event is new.
 * A busy session in hold mode exits 3 with the SessionBusy message on stderr.
 * Environment: OWNER_CHILD_LEASE_MS (the lease, 1.5 s by default) and OWNER_CHILD_OWNER (the owner name, `LeaseStore.processOwner()`
 * by default).
 */
import { Duration, Effect, Layer, Option } from "effect"
import { SessionBusy } from "../../src/store/CursorStore.js"
import { createParser, type EventSourceMessage } from "eventsource-parser"
import { writeSync } from "node:fs"
import * as PersistenceWorker from "../../src/session/PersistenceWorker.js"
import * as PgCursorStore from "../../src/engines/PgCursorStore.js"
import * as SessionGroup from "../../src/session/SessionGroup.js"
import * as SessionManager from "../../src/session/SessionManager.js"
import * as SqliteCursorStore from "../../src/engines/SqliteCursorStore.js"
import { SseEvent } from "../../src/wire/SseEvent.js"

const [mode, store, url, sessions, limit, wait] = process.argv.slice(2) as [string, string, string, string, string, string]
const say = (line: string) => writeSync(1, `${line} ${Date.now()}\n`)

/** Tails one session until the server ends its feed or `max` events were handled. */
const tail = (session: SessionManager.Session, max: number) =>
  Effect.gen(function*() {
    const resumeFrom = yield* session.tracker.lastEventId
    say(`claim ${session.sessionId} ${Option.getOrElse(yield* session.epoch, () => 0)} ${Option.getOrElse(resumeFrom, () => "-")}`)
    const response = yield* Effect.promise(() =>
      fetch(`${url}/${session.sessionId}`, { headers: Option.isSome(resumeFrom) ? { "last-event-id": resumeFrom.value } : {} })
    )
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    let parsed: Array<EventSourceMessage> = []
    const parser = createParser({ onEvent: (message) => parsed.push(message) })
    let handled = 0
    while (handled < max) {
      const { done, value } = yield* Effect.promise(() => reader.read())
      if (done) return
      parser.feed(value)
      const batch = parsed
      parsed = []
      for (const message of batch) {
        // One read can bring several events: stop at `max` exactly, not at the read's end.
        if (handled >= max) break
        const result = yield* session.tracker.recordEvent(new SseEvent({ id: message.id, data: message.data }))
        if (result === "new") {
          say(`event ${session.sessionId} ${message.id}`)
          handled++
        }
      }
    }
    yield* Effect.promise(() => reader.cancel())
  })

// OWNER_CHILD_LEASE_MS lengthens the lease, to show a takeover did not wait it out.
const leaseMillis = Number(process.env.OWNER_CHILD_LEASE_MS ?? 1_500)
const ownership = {
  leaseTtl: Duration.millis(leaseMillis),
  renewInterval: Duration.millis(400),
  pollInterval: Duration.millis(100),
  // OWNER_CHILD_OWNER names the process without what shows it dead, so its leases are waited out.
  ...(process.env.OWNER_CHILD_OWNER === undefined ? {} : { owner: process.env.OWNER_CHILD_OWNER })
}

const program: Effect.Effect<unknown, unknown, SessionManager.SessionManager> = mode === "hold"
  ? Effect.scoped(Effect.gen(function*() {
    const manager = yield* SessionManager.SessionManager
    const session = yield* manager.hold(sessions, { wait: wait === "wait" })
    yield* Effect.raceFirst(tail(session, Number(limit)), session.lost)
  }))
  : SessionGroup.run(sessions.split(","), (session) => tail(session, Infinity), {
    maxOwned: Number(limit),
    claimInterval: Duration.millis(100)
  })

const layer = SessionManager.layer(ownership).pipe(
  Layer.provideMerge(PersistenceWorker.layer({ flushInterval: Duration.millis(20) })),
  Layer.provideMerge(store.startsWith("postgres") ? PgCursorStore.layer(store) : SqliteCursorStore.layer(store))
)

Effect.runPromise(program.pipe(Effect.provide(layer), Effect.either)).then(
  (result) => {
    if (result._tag === "Right") process.exit(0)
    console.error(result.left instanceof Error ? result.left.message : String(result.left))
    process.exit(result.left instanceof SessionBusy ? 3 : 1)
  },
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
