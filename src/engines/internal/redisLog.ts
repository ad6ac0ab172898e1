/**
 * The Redis backend of the event log (Redis Streams through ioredis): storage for the
 * backend-independent half (`eventLog.ts`), which checks requests, positions reads,
 * fans events out to followers and trims in the background. Every change of a stream
 * is one Lua script (`redisScripts.ts`); followers of this process are woken by one
 * shared blocking XREAD (`redisTail.ts`), whichever process appended.
 */
import { Redis } from "ioredis"
import { Clock, Effect, Option, type Scope, Stream } from "effect"
import type * as RedisEventLog from "../RedisEventLog.js"
import { durationRule, isPositiveDuration } from "../../internal/settings.js"
import type { Head, Storage } from "../../server/EventLog.js"
import * as EventLog from "../../server/EventLog.js"
import { EventLogError, ProducerFenced, StreamEnded, StreamNotFound } from "../../server/EventLogError.js"
import * as scripts from "./redisScripts.js"
import * as RedisTail from "./redisTail.js"

// --- Keys ---

/**
 * A stream name as a key part: `:` separates key parts and `%` starts an escape, so
 * both are escaped, as is anything outside printable ASCII, to `%` and the four hex
 * digits of the UTF-16 unit. Every escape has the same width, so no two names share
 * a key, lone surrogates included (a UTF-8 form would merge them into U+FFFD).
 */
const escapeName = (name: string): string => {
  let escaped = ""
  for (let i = 0; i < name.length; i++) {
    const unit = name.charCodeAt(i)
    escaped += unit > 0x20 && unit < 0x7f && unit !== 0x25 && unit !== 0x3a
      ? name[i]
      : `%${unit.toString(16).padStart(4, "0")}`
  }
  return escaped
}

/** The name `escapeName` gave. */
const unescapeName = (escaped: string): string =>
  escaped.replace(/%([0-9a-f]{4})/g, (_, unit: string) => String.fromCharCode(parseInt(unit, 16)))

/** @internal The keys of the log under `prefix`: exported for the tests, which inspect them. */
export const keysOf = (prefix: string) => ({
  meta: (stream: string) => `${prefix}:meta:${escapeName(stream)}`,
  events: (stream: string) => `${prefix}:events:${escapeName(stream)}`,
  /** The log's generation counter, one for all its streams. */
  counter: `${prefix}:generation`,
  /**
   * Streams with retention (escaped names: Redis keeps strings as UTF-8, which has no
   * lone surrogates), scored by when their next trim is due.
   */
  retained: `${prefix}:retained`,
  wake: (process: string) => `${prefix}:wake:${process}`,
  /** The tail connection's CLIENT SETNAME, to find it in CLIENT LIST (no spaces allowed there). */
  tailConnection: `sse-resume-tail:${escapeName(prefix)}`
})

// --- Connecting ---

/** The URL as errors may show it: without its password. */
const safeUrl = (url: string): string => {
  if (!URL.canParse(url)) return "(not a URL)"
  const parsed = new URL(url)
  if (parsed.password !== "") parsed.password = "***"
  return parsed.toString()
}

/**
 * A client connected to `url`, closed with the scope. Connection errors surface here,
 * at layer start, as an "open" error naming the URL without its password; ioredis
 * would otherwise retry in the background and queue commands forever.
 */
export const connect = (url: string): Effect.Effect<Redis, EventLogError, Scope.Scope> => {
  const opened = (cause: string) => new EventLogError({ operation: "open", stream: "", cause: `Redis at ${safeUrl(url)}: ${cause}` })
  if (!URL.canParse(url) || !["redis:", "rediss:"].includes(new URL(url).protocol)) {
    return Effect.fail(opened("not a Redis URL (redis://[:password@]host:port/db)"))
  }
  return Effect.acquireRelease(
    Effect.suspend(() => {
      let lastError: unknown
      const client = new Redis(url, { lazyConnect: true }).on("error", (error) => {
        lastError = error
      })
      return Effect.tryPromise({
        try: () => client.connect(),
        catch: (cause) => {
          client.disconnect()
          return opened(String(lastError ?? cause))
        }
      }).pipe(Effect.as(client))
    }),
    (client) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
  )
}

// --- Storage ---

const fail = (operation: EventLogError["operation"], stream: string) => (cause: unknown) =>
  new EventLogError({ operation, stream, cause })

const damaged = (operation: EventLogError["operation"], stream: string, reply: unknown) =>
  new EventLogError({ operation, stream, cause: `unexpected reply from Redis: ${JSON.stringify(reply)?.slice(0, 200)}` })

const endOf = (tag: unknown, reason: unknown): EventLog.StreamEnd =>
  tag === "Failed" ? { _tag: "Failed", reason: String(reason ?? "") } : { _tag: "Completed" }

const parseHead = (reply: unknown): Option.Option<Head> | undefined => {
  if (reply === null) return Option.none()
  if (!Array.isArray(reply) || reply.length < 3) return undefined
  const [generation, lastSeq, trimmedThrough, end, reason, maxEvents, maxAgeMillis] = reply
  if (typeof generation !== "number" || typeof lastSeq !== "number" || typeof trimmedThrough !== "number") return undefined
  const retention: { maxEvents?: number; maxAgeMillis?: number } = {}
  if (maxEvents != null) retention.maxEvents = Number(maxEvents)
  if (maxAgeMillis != null) retention.maxAgeMillis = Number(maxAgeMillis)
  return Option.some({
    generation,
    lastSeq,
    trimmedThrough,
    end: end == null ? Option.none() : Option.some(endOf(end, reason)),
    retention
  })
}

const refusal = (stream: string, epoch: number | undefined, reply: ReadonlyArray<unknown>) =>
  reply[0] === "fenced"
    ? new ProducerFenced({ stream, epoch: epoch ?? 0, current: Number(reply[1]) })
    : new StreamEnded({ stream, end: endOf(reply[1], reply[2]) })

// A deleted stream's tombstone must outlive one XREAD round of every tail: minutes, not hours.
const tombstoneTtlMillis = 60_000
// Entries one trim script looks at: Redis runs nothing else meanwhile.
const trimBatch = 1_000

type Keys = ReturnType<typeof keysOf>

const runScript = (
  client: Redis,
  operation: EventLogError["operation"],
  stream: string,
  script: scripts.Script,
  keyList: ReadonlyArray<string>,
  args: ReadonlyArray<string | number>
) => Effect.tryPromise({ try: () => script.run(client, keyList, args), catch: fail(operation, stream) })

const headOf = (operation: EventLogError["operation"], stream: string, reply: unknown) => {
  const head = parseHead(reply)
  return head === undefined ? Effect.fail(damaged(operation, stream, reply)) : Effect.succeed(head)
}

/** The changes of a stream: creation, appends, its end and its deletion, each one script. */
const writes = (client: Redis, keys: Keys): Pick<Storage, "create" | "append" | "end" | "delete"> => ({
  create: (stream, retention) =>
    runScript(client, "create", stream, scripts.create, [keys.meta(stream), keys.events(stream), keys.counter], [
      escapeName(stream),
      retention.maxEvents ?? "",
      retention.maxAgeMillis ?? ""
    ]).pipe(
      Effect.flatMap((reply) => headOf("create", stream, reply)),
      Effect.flatMap(Option.match({
        onNone: () => Effect.fail(damaged("create", stream, null)),
        onSome: Effect.succeed
      }))
    ),

  append: (stream, events, epoch) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const args: Array<string | number> = [escapeName(stream), epoch ?? "", now]
      for (const event of events) args.push(event.event ?? "message", event.data)
      const reply = yield* runScript(client, "append", stream, scripts.append, [
        keys.meta(stream),
        keys.events(stream),
        keys.counter,
        keys.retained
      ], args)
      if (!Array.isArray(reply)) return yield* damaged("append", stream, reply)
      if (reply[0] !== "ok") return yield* refusal(stream, epoch, reply)
      const [, generation, first, appendedAt] = reply as [string, number, number, number]
      return events.map((event, i): EventLog.LoggedEvent => ({
        id: EventLog.formatId(generation, first + i),
        event: event.event ?? "message",
        data: event.data,
        appendedAt
      }))
    }),

  end: (stream, streamEnd, epoch) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const reply = yield* runScript(client, "end", stream, scripts.end, [keys.meta(stream), keys.events(stream)], [
        epoch ?? "",
        now,
        streamEnd._tag,
        streamEnd._tag === "Failed" ? streamEnd.reason : ""
      ])
      if (!Array.isArray(reply)) return yield* damaged("end", stream, reply)
      if (reply[0] === "ok") return
      if (reply[0] === "missing") return yield* new StreamNotFound({ stream })
      return yield* refusal(stream, epoch, reply)
    }),

  delete: (stream) =>
    Effect.asVoid(
      runScript(client, "delete", stream, scripts.remove, [keys.meta(stream), keys.events(stream), keys.retained], [
        escapeName(stream),
        tombstoneTtlMillis
      ])
    )
})

/** The reads of a stream (its head, its events) and the trim of retention. */
const readsAndTrims = (client: Redis, keys: Keys): Pick<Storage, "head" | "readAfter" | "trim" | "retained"> => ({
  head: (stream) =>
    runScript(client, "info", stream, scripts.head, [keys.meta(stream), keys.events(stream)], []).pipe(
      Effect.flatMap((reply) => headOf("info", stream, reply))
    ),

  readAfter: (stream, generation, afterSeq, limit) =>
    Effect.tryPromise({
      // An end id of the generation alone is its last possible id: nothing of another generation.
      try: () => client.xrange(keys.events(stream), EventLog.formatId(generation, afterSeq + 1), String(generation), "COUNT", limit),
      catch: fail("read", stream)
    }).pipe(Effect.map((entries) => {
      const events: Array<EventLog.LoggedEvent> = []
      for (const [id, fields] of entries) {
        if (fields[0] !== "e") continue
        events.push({ id, event: fields[1]!, data: fields[3]!, appendedAt: Number(fields[5]) })
      }
      return events
    })),

  trim: (stream) =>
    Effect.gen(function*() {
      let removed = 0
      while (true) {
        const now = yield* Clock.currentTimeMillis
        const reply = yield* runScript(client, "trim", stream, scripts.trim, [keys.meta(stream), keys.events(stream), keys.retained], [
          escapeName(stream),
          now,
          trimBatch
        ])
        if (!Array.isArray(reply)) return yield* damaged("trim", stream, reply)
        removed += Number(reply[0])
        if (reply[1] !== 1) return removed
      }
    }),

  // Only the streams due (over their count, or their oldest kept event expired): the others have nothing to trim.
  retained: Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.tryPromise({
      try: () => client.zrangebyscore(keys.retained, "-inf", now),
      catch: fail("trim", "")
    }).pipe(Effect.map((members) => members.map(unescapeName))))
})

/** Storage on `client`, with the live tail's blocking connection (closed with the scope). */
const makeStorage = (
  client: Redis,
  settings: RedisEventLog.Settings
): Effect.Effect<{ readonly storage: Storage; readonly tail: RedisTail.Tail }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const keys = keysOf(settings.prefix)
    const tail = yield* RedisTail.make(client, keys, { blockTimeout: settings.blockTimeout, batch: settings.maxReadLimit })
    const storage: Storage = {
      ...readsAndTrims(client, keys),
      ...writes(client, keys),
      changes: tail.changes,
      // The live tail names every watched stream another process changes.
      pollsOthers: false
    }
    return { storage, tail }
  })

// The core checks its own settings; these are Redis's.
const checkSettings = (settings: RedisEventLog.Settings) =>
  settings.prefix === ""
    ? Effect.fail(new EventLogError({ operation: "open", stream: "", cause: "prefix: must not be empty" }))
    : !isPositiveDuration(settings.blockTimeout)
    ? Effect.fail(
      new EventLogError({ operation: "open", stream: "", cause: `blockTimeout: ${String(settings.blockTimeout)} ${durationRule}` })
    )
    : Effect.void

/**
 * The log's service on the client `acquire` gives (once the settings are checked): the
 * backend-independent half over Redis storage, each follower watching its stream on
 * the live tail while it follows.
 */
export const make = <E>(
  acquire: Effect.Effect<Redis, E, Scope.Scope>,
  settings: RedisEventLog.Settings
): Effect.Effect<EventLog.EventLog["Type"], EventLogError | E, Scope.Scope> =>
  Effect.gen(function*() {
    yield* checkSettings(settings)
    const { storage, tail } = yield* makeStorage(yield* acquire, settings)
    const service = yield* EventLog.make(storage, settings)
    return {
      ...service,
      // Watching starts before the follower reads storage: entries after that read wake its hub.
      follow: (stream, request) => Stream.unwrapScoped(Effect.as(tail.watch(stream), service.follow(stream, request)))
    }
  })
