/**
 * The caller's "reconnect now" (the network changed, a token was revoked, a tab
 * came back online): each element of its stream ends the attempt in progress, or
 * cuts short the wait after one, so the next attempt starts at once.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

export class ReconnectTrigger {
  private constructor(
    /** The request of the attempt armed last; none when no request can come. */
    private current: Deferred.Deferred<void> | undefined,
    /** Whether requests can come at all: without them nothing need wait for one. */
    readonly listening: boolean
  ) {}

  /** Listens to `requests` until the current scope closes. */
  static make(requests: Stream.Stream<unknown>): Effect.Effect<ReconnectTrigger, never, Scope.Scope> {
    return Effect.gen(function*() {
      const trigger = new ReconnectTrigger(yield* Deferred.make<void>(), true)
      yield* Effect.forkScoped(Stream.runForEach(requests, () => Deferred.succeed(trigger.current!, undefined)))
      return trigger
    })
  }

  /** A trigger that never fires (no `reconnectNow`): it needs no scope, so a stream needs none of its own. */
  static readonly never: Effect.Effect<ReconnectTrigger> = Effect.sync(() => new ReconnectTrigger(undefined, false))

  /** Starts listening for a new attempt: a request made before it does not end that attempt. */
  get arm(): Effect.Effect<void> {
    if (!this.listening) return Effect.void
    return Effect.map(Deferred.make<void>(), (fresh) => {
      this.current = fresh
    })
  }

  /**
   * Completes once a reconnect is requested during the attempt armed last or the
   * wait after it (several requests in that time are one).
   */
  get requested(): Effect.Effect<void> {
    return this.current === undefined ? Effect.never : Deferred.await(this.current)
  }

  /**
   * `effect`, cut short by a request with `onRequest`; as it is without
   * `reconnectNow`, so no race forks two fibers per connection and wait.
   */
  raceRequest<A, E, B, E2>(effect: Effect.Effect<A, E>, onRequest: Effect.Effect<B, E2>): Effect.Effect<A | B, E | E2> {
    return this.listening ? Effect.raceFirst(effect, Effect.zipRight(this.requested, onRequest)) : effect
  }
}
