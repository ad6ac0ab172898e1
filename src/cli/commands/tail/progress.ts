/**
 * What a run has done so far, and its periodic report: counts a person watches
 * (delivered, duplicates, reconnects, backpressure timeouts) and the rate.
 */
import { Duration, Effect } from "effect"
import type * as EventTracker from "../../../client/EventTracker.js"
import type * as PersistenceWorker from "../../../session/PersistenceWorker.js"

/** What this run saw: another run in the same process never adds to it. */
export interface Counts {
  readonly delivered: number
  readonly duplicatesDropped: number
  readonly reconnects: number
  readonly backpressureTimeouts: number
}

/**
 * The run's own account: `delivered` and `reconnects` from what it handles and its
 * client reports, duplicates from the client's tracker, timeouts from its own worker.
 */
export class Account {
  delivered = 0
  reconnects = 0
  readonly counts: Effect.Effect<Counts>
  constructor(clientTracker: EventTracker.EventTracker, worker: PersistenceWorker.PersistenceWorker["Type"]) {
    this.counts = Effect.zipWith(clientTracker.counts, worker.stats, (tracker, stats) => ({
      delivered: this.delivered,
      duplicatesDropped: tracker.duplicates,
      reconnects: this.reconnects,
      backpressureTimeouts: stats.timedOut
    }))
  }
}

const sameCounts = (a: Counts, b: Counts) =>
  a.delivered === b.delivered && a.duplicatesDropped === b.duplicatesDropped && a.reconnects === b.reconnects &&
  a.backpressureTimeouts === b.backpressureTimeouts

/**
 * `report` gets the counts and the rate every `every` when they changed (a stream
 * waiting on a dead server prints nothing new, not a line a second), until the
 * scope closes.
 */
export const reportProgress = (
  account: Account,
  report: (counts: Counts, eventsPerSecond: number) => Effect.Effect<void>,
  every: Duration.Duration
) => {
  let last: Counts = { delivered: 0, duplicatesDropped: 0, reconnects: 0, backpressureTimeouts: 0 }
  let lastRate = 0
  return account.counts.pipe(
    Effect.flatMap((counts) => {
      const eventsPerSecond = (counts.delivered - last.delivered) / Duration.toSeconds(every)
      if (sameCounts(counts, last) && eventsPerSecond === lastRate) return Effect.void
      last = counts
      lastRate = eventsPerSecond
      return report(counts, eventsPerSecond)
    }),
    Effect.delay(every),
    Effect.forever,
    Effect.forkScoped
  )
}
