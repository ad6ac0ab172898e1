/**
 * Offering to a bounded queue without pretending: the caller learns whether the
 * item was queued, whether backpressure held past the timeout, or whether the
 * queue is shut down.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"

/** What became of an offer. Only `"queued"` means the queue holds the item. */
export type OfferResult = "queued" | "timedOut" | "shutdown"

/** Offers the queue took (`"queued"`), at once or after waiting. */
export const queued = Metric.counter("backpressure_offers_queued", {
  description: "Offers a bounded queue accepted, at once or after waiting",
  incremental: true
})
/** Offers withdrawn after waiting their timeout on a full queue (`"timedOut"`). */
export const backpressureTimeouts = Metric.counter("backpressure_offer_timeouts", {
  description: "Offers that waited longer than their timeout on a full queue",
  incremental: true
})
/** Offers refused because the queue was shut down (`"shutdown"`). */
export const channelClosed = Metric.counter("backpressure_offers_shutdown", {
  description: "Offers refused because the queue was shut down",
  incremental: true
})

/**
 * Offers `item` to `queue`, waiting at most `timeout` while the queue is full.
 * A timed-out offer is withdrawn from the queue, so the item is not queued.
 */
export const offer = <A>(
  queue: Queue.Enqueue<A>,
  item: A,
  options: { readonly timeout: Duration.DurationInput }
): Effect.Effect<OfferResult> =>
  Effect.suspend(() => {
    if (queue.unsafeOffer(item)) return Effect.as(Metric.increment(queued), "queued" as const)
    return Queue.isShutdown(queue).pipe(
      Effect.flatMap((isShutdown) =>
        isShutdown
          ? closed
          : Queue.offer(queue, item).pipe(
            Effect.timeoutOption(options.timeout),
            Effect.flatMap((accepted) =>
              accepted._tag === "Some" && accepted.value
                ? Effect.as(Metric.increment(queued), "queued" as const)
                : Effect.as(Metric.increment(backpressureTimeouts), "timedOut" as const)
            ),
            // A queue shut down while we wait interrupts the offer; that is a
            // result here, not an interruption of the caller.
            Effect.catchAllCause((cause) => Cause.isInterruptedOnly(cause) ? closed : Effect.failCause(cause))
          )
      )
    )
  })

const closed: Effect.Effect<OfferResult> = Effect.as(Metric.increment(channelClosed), "shutdown" as const)
