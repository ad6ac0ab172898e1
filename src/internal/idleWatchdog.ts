/**
 * The idle watchdog of one connection: the body's reader tells it when a read
 * starts and when its chunk arrives, and a fiber runs `onIdle` (aborting the
 * connection) once a read has waited `idleTimeout` for a byte. Calls, not a
 * channel of its own: each channel stage costs about a microsecond per chunk,
 * more than parsing a one-event chunk (measured).
 *
 * Only a read that is outstanding counts. While the consumer is busy nobody
 * reads, so a consumer slower than `idleTimeout` never looks like a silent
 * server. One fiber per connection rather than a timer per read: `Stream.timeout`'s
 * fiber per pull cost a third of the throughput (measured).
 */
import { Duration, Effect, type Scope } from "effect"
import { maxSleepMillis } from "./reconnect.js"

export class IdleWatchdog {
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
  static make(
    idleTimeout: Duration.DurationInput,
    onIdle: Effect.Effect<void>
  ): Effect.Effect<IdleWatchdog, never, Scope.Scope> {
    return Effect.flatMap(Effect.clock, (clock) => {
      const watchdog = new IdleWatchdog(Duration.toMillis(idleTimeout), () => clock.unsafeCurrentTimeMillis())
      return Effect.as(Effect.forkScoped(watchdog.watch(onIdle)), watchdog)
    })
  }

  /** Whether the watchdog found the connection idle and ran `onIdle`. */
  get fired(): boolean {
    return this.firedFlag
  }

  /**
   * A chunk arrived: the read that waited for it is over. Until `reading`, the
   * consumer has the chunk, and no time counts.
   */
  received(): void {
    this.waiting = false
  }

  /** The next read starts: the consumer asked for more. */
  reading(): void {
    this.waiting = true
    this.since = this.now()
  }

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
