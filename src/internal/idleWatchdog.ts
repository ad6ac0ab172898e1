/**
 * The idle watchdog of one connection: a pass-through channel that notes when a
 * read is outstanding, and a fiber that runs `onIdle` (aborting the connection)
 * once a read has waited `idleTimeout` for a byte.
 *
 * Only a read that is outstanding counts. While the consumer is busy nobody
 * reads, so a consumer slower than `idleTimeout` never looks like a silent
 * server. One fiber per connection rather than a timer per read: `Stream.timeout`'s
 * fiber per pull cost a third of the throughput (measured).
 */
import { type Cause, Channel, type Chunk, Duration, Effect, type Scope } from "effect"
import { maxSleepMillis } from "./reconnect.js"

export class IdleWatchdog<A, E> {
  /** True while a read waits for the upstream; false while the chunk read last is handed on. */
  private waiting = true
  /** When the current read started. */
  private since: number
  private firedFlag = false

  private constructor(
    private readonly idleMillis: number,
    private readonly now: () => number
  ) {
    this.since = now()
  }

  /**
   * Starts the watchdog in the current scope; it stops with the scope. `onIdle`
   * runs at most once.
   */
  static make<A, E>(
    idleTimeout: Duration.DurationInput,
    onIdle: Effect.Effect<void>
  ): Effect.Effect<IdleWatchdog<A, E>, never, Scope.Scope> {
    return Effect.flatMap(Effect.clock, (clock) => {
      const watchdog = new IdleWatchdog<A, E>(Duration.toMillis(idleTimeout), () => clock.unsafeCurrentTimeMillis())
      return Effect.as(Effect.forkScoped(watchdog.watch(onIdle)), watchdog)
    })
  }

  /** Whether the watchdog found the connection idle and ran `onIdle`. */
  get fired(): boolean {
    return this.firedFlag
  }

  /** Passes every chunk and the upstream's end or failure through unchanged. */
  readonly channel: Channel.Channel<Chunk.Chunk<A>, Chunk.Chunk<A>, E, E, unknown, unknown> = Channel.readWithCause({
    onInput: (chunk: Chunk.Chunk<A>) => {
      this.waiting = false
      // What follows the write runs when downstream pulls again: only then does
      // the next read start.
      return Channel.zipRight(
        Channel.write(chunk),
        Channel.suspend(() => {
          this.waiting = true
          this.since = this.now()
          return this.channel
        })
      )
    },
    onFailure: (cause: Cause.Cause<E>) => Channel.failCause(cause),
    onDone: () => Channel.void
  })

  private watch(onIdle: Effect.Effect<void>): Effect.Effect<void> {
    return Effect.suspend(() => {
      const now = this.now()
      if (this.waiting && now - this.since >= this.idleMillis) {
        this.firedFlag = true
        return onIdle
      }
      const wait = this.waiting ? this.since + this.idleMillis - now : this.idleMillis
      return Effect.zipRight(Effect.sleep(Math.min(wait, maxSleepMillis)), this.watch(onIdle))
    })
  }
}
