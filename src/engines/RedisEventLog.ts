/**
 * The event log on Redis (Redis Streams, through ioredis 5; Redis 6.2 or later for
 * `XTRIM MINID` and `ZADD LT`): its own entry point (`effect-sse-resume/redis`), so
 * only its users load the driver. Several instances on one Redis share the log: a
 * follower on one sees appends made through another live, through Redis itself.
 *
 * What is durable is what Redis keeps: with `appendonly no` and no `save`, nothing
 * survives a restart of Redis. A generation is at least Redis's time in ms when the
 * stream is created, so even then a re-created stream reissues no id a reader holds.
 * Streams, their ends and the generation counter are plain keys under `prefix`; Redis
 * Cluster is not supported (a script touches the log's counter and a stream's keys).
 */
import type { Redis } from "ioredis"
import { Config, Duration, Effect, Layer, Redacted } from "effect"
import { EventLog, type EventLogError } from "../server/EventLog.js"
import * as EventLogModule from "../server/EventLog.js"
import * as internal from "./internal/redisLog.js"
import { positiveDuration } from "../internal/settings.js"
import type { ConfigError } from "effect/ConfigError"

/** The log's settings (`EventLog.Settings`) and Redis's own. */
export interface Settings extends EventLogModule.Settings {
  /** Start of every key of this log: logs with other prefixes share a database unseen. */
  readonly prefix: string
  /**
   * How long the live tail's blocking XREAD waits before asking again: the longest a
   * silently dead connection goes unnoticed by followers.
   */
  readonly blockTimeout: Duration.Duration
}

export const defaults: Settings = {
  ...EventLogModule.defaults,
  prefix: "sse-resume",
  blockTimeout: Duration.seconds(5)
}

/** The settings from the environment, each with its default. */
export const config: Config.Config<Settings> = Config.all({
  log: EventLogModule.config,
  prefix: Config.withDefault(Config.nonEmptyString("SSE_EVENT_LOG_REDIS_PREFIX"), defaults.prefix).pipe(
    Config.withDescription("Start of every Redis key of the event log")
  ),
  blockTimeout: positiveDuration(
    "SSE_EVENT_LOG_REDIS_BLOCK_TIMEOUT",
    defaults.blockTimeout,
    "How long the live tail's XREAD blocks before asking again"
  )
}).pipe(Config.map(({ blockTimeout, log, prefix }): Settings => ({ ...log, prefix, blockTimeout })))

/**
 * The log in the Redis at `url` (`redis://[:password@]host:port/db`, `rediss://` for
 * TLS), with its own connections, closed with the layer. A malformed URL or an
 * unreachable server fails with an `EventLogError` of operation "open" naming the URL
 * without its password.
 */
export const layer = (url: string | Redacted.Redacted, options: Partial<Settings> = {}): Layer.Layer<EventLog, EventLogError> =>
  Layer.scoped(
    EventLog,
    internal.make(internal.connect(Redacted.isRedacted(url) ? Redacted.value(url) : url), { ...defaults, ...options })
  )

/**
 * The log on an existing ioredis client, which stays the caller's (not closed with the
 * layer); the live tail opens one connection of its own (`client.duplicate()`).
 */
export const layerClient = (client: Redis, options: Partial<Settings> = {}): Layer.Layer<EventLog, EventLogError> =>
  Layer.scoped(EventLog, internal.make(Effect.succeed(client), { ...defaults, ...options }))

/** The log in the Redis at `SSE_EVENT_LOG_REDIS_URL`, with the settings from the environment (`config`). */
export const layerConfig: Layer.Layer<EventLog, EventLogError | ConfigError> = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      url: Config.redacted("SSE_EVENT_LOG_REDIS_URL").pipe(
        Config.withDescription("The event log's Redis, redis://[:password@]host:port/db")
      ),
      settings: config
    }),
    ({ settings, url }) => layer(url, settings)
  )
)
