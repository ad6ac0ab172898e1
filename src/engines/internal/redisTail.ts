/**
 * The live tail of the Redis event log in one process: one blocking connection (a
 * duplicate of the client: a blocked connection can run nothing else) doing
 * `XREAD BLOCK` over the streams that have followers here, whoever appended to them
 * (this process or another on the same Redis). A stream that got entries is named on
 * `changes`, and its hub (`fanout.ts`) reads the new events once for all its
 * followers, each with a bounded buffer.
 *
 * Adding a stream must interrupt the XREAD already blocked without it: the XREAD also
 * reads a wake stream of this process, and `watch` appends to it. Unlike
 * `CLIENT UNBLOCK`, that has no race with an XREAD not yet blocked (the entry is
 * there when it arrives) and needs no CLIENT permission.
 */
import { randomUUID } from "node:crypto"
import type { Redis } from "ioredis"
import { Chunk, Duration, Effect, Queue, type Scope, Stream } from "effect"
import { EventLogError } from "../../server/EventLogError.js"

export interface TailKeys {
  readonly events: (stream: string) => string
  readonly wake: (process: string) => string
  readonly tailConnection: string
}

export interface Tail {
  /** Reads the stream's new entries for the scope; a stream watched twice is read once. */
  readonly watch: (stream: string) => Effect.Effect<void, EventLogError, Scope.Scope>
  /** Names of watched streams that got entries (appends, an end, a deletion). */
  readonly changes: Stream.Stream<string>
}

interface Watched {
  readonly stream: string
  /** The last entry id seen: the XREAD goes on after it. */
  cursor: string
  watchers: number
}

// A crashed process's wake stream expires; a live one renews it at each wake.
const wakeTtlMillis = 3_600_000
const retryDelay = Duration.seconds(1)
const answerSlack = Duration.seconds(5)

type Options = { readonly blockTimeout: Duration.Duration; readonly batch: number }

/** What the tail knows: the watched streams, those changed since `changes` last took them, the wake stream's cursor. */
class State {
  readonly watched = new Map<string, Watched>()
  readonly changed = new Set<string>()
  wakeCursor = "0-0"

  constructor(readonly wakeKey: string, readonly signal: Queue.Queue<void>) {}
}

// --- The blocking connection: closed with the scope, the wake stream deleted ---

const openBlocking = (client: Redis, keys: TailKeys, options: Options, wakeKey: string) =>
  Effect.gen(function*() {
    // A cut connection is made again and the XREAD sent again (whatever the caller's
    // client says: its options are copied). An XREAD unanswered well past its block time
    // is on a dead connection (no RST, no keepalive yet): it times out and the
    // connection is made again.
    const commandTimeout = Duration.toMillis(options.blockTimeout) + Duration.toMillis(answerSlack)
    const blocking = yield* Effect.acquireRelease(
      Effect.sync(() =>
        client.duplicate({
          autoResendUnfulfilledCommands: true,
          enableOfflineQueue: true,
          commandTimeout,
          lazyConnect: true,
          connectionName: keys.tailConnection
        }).on("error", () => {})
      ),
      (connection) => Effect.sync(() => connection.disconnect())
    )
    yield* Effect.addFinalizer(() => Effect.ignore(Effect.tryPromise(() => client.del(wakeKey))))
    return blocking
  })

// --- Watching: a stream's followers here, counted ---

const watchOn = (client: Redis, keys: TailKeys, state: State, wake: Effect.Effect<void, unknown>) =>
(stream: string): Effect.Effect<void, EventLogError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const found = state.watched.get(stream)
      if (found !== undefined) {
        found.watchers++
        return Effect.void
      }
      const key = keys.events(stream)
      // Entries after the last one now: those before it are in storage for the follower's first read.
      return Effect.tryPromise({
        try: () => client.xrevrange(key, "+", "-", "COUNT", 1),
        catch: (cause) => new EventLogError({ operation: "follow", stream, cause })
      }).pipe(
        Effect.flatMap((last) => {
          const again = state.watched.get(stream)
          if (again !== undefined) {
            again.watchers++
            return Effect.void
          }
          state.watched.set(stream, { stream, cursor: last[0]?.[0] ?? "0-0", watchers: 1 })
          return Effect.mapError(wake, (cause) => new EventLogError({ operation: "follow", stream, cause }))
        })
      )
    }),
    () =>
      Effect.sync(() => {
        const found = state.watched.get(stream)
        if (found !== undefined && --found.watchers === 0) state.watched.delete(stream)
      })
  )

// --- Reading: one XREAD round over the wake stream and every watched stream ---

const round = (blocking: Redis, keys: TailKeys, options: Options, state: State) =>
  Effect.suspend(() => {
    const reading = new Map<string, Watched>()
    for (const entry of state.watched.values()) reading.set(keys.events(entry.stream), entry)
    const streamKeys = [state.wakeKey, ...reading.keys()]
    const cursors = [state.wakeCursor, ...[...reading.values()].map((entry) => entry.cursor)]
    return Effect.tryPromise(() =>
      blocking.xread("COUNT", options.batch, "BLOCK", Duration.toMillis(options.blockTimeout), "STREAMS", ...streamKeys, ...cursors)
    ).pipe(Effect.map((reply) => {
      for (const [key, entries] of reply ?? []) {
        const lastId = entries[entries.length - 1]?.[0]
        if (lastId === undefined) continue
        if (key === state.wakeKey) {
          state.wakeCursor = lastId
          continue
        }
        const entry = reading.get(key)
        // Unwatched meanwhile (and perhaps watched again, from its own cursor).
        if (entry === undefined || state.watched.get(entry.stream) !== entry) continue
        entry.cursor = lastId
        state.changed.add(entry.stream)
      }
      if (state.changed.size > 0) Queue.unsafeOffer(state.signal, undefined)
    }))
  })

// --- The tail: rounds forever in the scope, changes taken in batches ---

export const make = (
  client: Redis,
  keys: TailKeys,
  options: Options
): Effect.Effect<Tail, never, Scope.Scope> =>
  Effect.gen(function*() {
    const wakeKey = keys.wake(randomUUID())
    const blocking = yield* openBlocking(client, keys, options, wakeKey)
    const state = new State(wakeKey, yield* Queue.sliding<void>(1))

    const wake = Effect.asVoid(Effect.tryPromise(() =>
      client.multi().xadd(wakeKey, "MAXLEN", 1, "*", "w", "1").pexpire(wakeKey, wakeTtlMillis).exec()
    ))

    yield* round(blocking, keys, options, state).pipe(
      Effect.catchAllCause((cause) =>
        Effect.logWarning("EventLog (Redis): the live tail's XREAD failed; reconnecting", cause).pipe(
          Effect.zipRight(Effect.sync(() => blocking.disconnect(true))),
          Effect.zipRight(Effect.sleep(retryDelay))
        )
      ),
      Effect.forever,
      Effect.forkScoped
    )

    const changes = Stream.repeatEffectChunk(
      Effect.zipRight(
        Queue.take(state.signal),
        Effect.sync(() => {
          const names = Chunk.fromIterable(state.changed)
          state.changed.clear()
          return names
        })
      )
    )

    return { watch: watchOn(client, keys, state, wake), changes }
  })
