/**
 * The caller's "reconnect now" (the network changed, a token was revoked, a tab
 * came back online): each element of its stream ends the attempt in progress, or
 * cuts short the wait after one, so the next attempt starts at once.
 */
import { Deferred, Effect, type Scope, Stream } from "effect"

export class ReconnectTrigger {
  private constructor(
    private current: Deferred.Deferred<void>,
    /** Whether requests can come at all: without them nothing need wait for one. */
    readonly listening: boolean
  ) {}

  /**
   * Listens to `requests` until the current scope closes; without them the
   * trigger never fires.
   */
  static make(requests: Stream.Stream<unknown> | undefined): Effect.Effect<ReconnectTrigger, never, Scope.Scope> {
    return Effect.gen(function*() {
      const trigger = new ReconnectTrigger(yield* Deferred.make<void>(), requests !== undefined)
      if (requests !== undefined) {
        yield* Effect.forkScoped(Stream.runForEach(requests, () => Deferred.succeed(trigger.current, undefined)))
      }
      return trigger
    })
  }

  /** A trigger that never fires (no `reconnectNow`): it needs no scope, so a stream needs none of its own. */
  static readonly never: Effect.Effect<ReconnectTrigger> = Effect.suspend(() =>
    Effect.map(Deferred.make<void>(), (deferred) => new ReconnectTrigger(deferred, false))
  )

  /** Starts listening for a new attempt: a request made before it does not end that attempt. */
  readonly arm: Effect.Effect<void> = Effect.map(Deferred.make<void>(), (fresh) => {
    this.current = fresh
  })

  /**
   * Completes once a reconnect is requested during the attempt armed last or the
   * wait after it (several requests in that time are one).
   */
  get requested(): Effect.Effect<void> {
    return Deferred.await(this.current)
  }
}
