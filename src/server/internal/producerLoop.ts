/**
 * The producer's machinery: the source drained into a bounded mailbox, one append
 * per take (everything buffered while the last append ran), raced with a watch for
 * an end written by someone else.
 */
import { Cause, Chunk, Effect, Exit, Fiber, FiberSet, Mailbox, Metric, MetricBoundaries, Option, type Scope, Stream } from "effect"
import {
  EventLog,
  type EventInput,
  type EndError,
  type EventLogError,
  type InvalidRequest,
  type Producer
} from "../EventLog.js"
import type { SettingsError } from "../../Settings.js"
import type * as StreamProducer from "../StreamProducer.js"

export const running = Metric.gauge("sse_producers_running", { description: "Producers running now" })

export const eventsAppended = Metric.counter("sse_producer_events_appended", {
  description: "Events appended by producers",
  incremental: true
})

export const stopped = Metric.counter("sse_producers_stopped", {
  description: "Producers stopped, by outcome",
  incremental: true
})

export const batchSize = Metric.histogram(
  "sse_producer_batch_size",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 12 }),
  "Events per append"
)

export const cancelledReason = "cancelled"

export const interruptedReason = "producer interrupted"

const oneLine = (text: string): string => {
  const line = text.replace(/[\r\n]+/g, " ").trim()
  return line.length > 1_000 ? `${line.slice(0, 1_000)}…` : line
}

/** The error's message, else its tag, else its text. */
const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  if (error instanceof Error && error.message !== "") return error.message
  if (typeof error === "object" && error !== null && "_tag" in error) return String(error._tag)
  return String(error)
}

type Outcome = StreamProducer.Outcome

/** The log's refusals of a write, and what each means for the producer; the log failing stays an error. */
const stoppedBy = (error: EndError, events: number): Effect.Effect<Outcome, EventLogError | InvalidRequest> => {
  switch (error._tag) {
    case "StreamEnded":
      return Effect.succeed({ _tag: "Ended", end: error.end, events })
    case "ProducerFenced":
      return Effect.succeed({ _tag: "Fenced", current: error.current, events })
    case "StreamNotFound":
      return Effect.succeed({ _tag: "Deleted", events })
    default:
      return Effect.fail(error)
  }
}

const run = <E>(
  log: EventLog["Type"],
  stream: string,
  source: Stream.Stream<EventInput, E>,
  settings: StreamProducer.Settings,
  options: StreamProducer.Options<E>
): Effect.Effect<Outcome, EventLogError | InvalidRequest> => {
  const producer: Producer = { epoch: options.epoch }
  let events = 0
  // Set when this producer writes the stream's end itself, so the watch does not take it for a cancel.
  let ending = false
  const reason = (cause: Cause.Cause<E>) => oneLine(options.reason === undefined ? describe(cause) : options.reason(cause))
  const failWith = (why: string) => {
    ending = true
    return log.fail(stream, why, producer).pipe(
      Effect.as<Outcome>({ _tag: "Failed", reason: why, events }),
      Effect.catchAll((error) => stoppedBy(error, events))
    )
  }

  const pump = Effect.gen(function*() {
    const mailbox = yield* Mailbox.fromStream(source, { capacity: settings.maxBatch })
    while (true) {
      const taken = yield* Effect.exit(mailbox.takeAll)
      if (Exit.isFailure(taken)) return yield* failWith(reason(taken.cause))
      const [batch, done] = taken.value
      if (batch.length > 0) {
        const refused = yield* log.append(stream, Chunk.toReadonlyArray(batch), producer).pipe(
          Effect.as(undefined),
          // An event the log refuses (a type with a line break) fails the stream: readers must not wait for it.
          Effect.catchTag("InvalidRequest", (error) => failWith(error.reason)),
          Effect.catchAll((error) => stoppedBy(error, events))
        )
        if (refused !== undefined) return refused
        events += batch.length
        yield* Metric.incrementBy(eventsAppended, batch.length)
        yield* Metric.update(batchSize, batch.length)
      }
      if (done) break
    }
    ending = true
    return yield* log.complete(stream, producer).pipe(
      Effect.as<Outcome>({ _tag: "Completed", events }),
      Effect.catchAll((error) => stoppedBy(error, events))
    )
  }).pipe(Effect.scoped)

  // An end written by someone else (a cancel) while the source is silent: no append would meet it.
  const watch: Effect.Effect<Outcome> = Effect.sleep(settings.cancelPollInterval).pipe(
    Effect.zipRight(Effect.option(log.info(stream))),
    Effect.flatMap((info): Effect.Effect<Outcome> => {
      if (ending || Option.isNone(info)) return watch
      if (Option.isNone(info.value)) return Effect.succeed({ _tag: "Deleted", events })
      const end = info.value.value.end
      return Option.isSome(end) ? Effect.succeed({ _tag: "Ended", end: end.value, events }) : watch
    })
  )

  return Effect.raceFirst(pump, watch).pipe(
    Effect.onInterrupt(() =>
      ending
        ? Effect.void
        : log.fail(stream, interruptedReason, producer).pipe(Effect.ignore, Effect.timeoutOption(settings.shutdownTimeout))
    ),
    Effect.tap((outcome) => Metric.increment(Metric.tagged(stopped, "outcome", outcome._tag))),
    Effect.tapErrorCause((cause) =>
      Metric.increment(Metric.tagged(stopped, "outcome", Cause.isInterruptedOnly(cause) ? "Interrupted" : "LogFailed"))
    ),
    Effect.ensuring(Metric.incrementBy(running, -1)),
    Effect.withSpan("sse.producer", { attributes: { "sse.stream": stream, "sse.epoch": options.epoch } })
  )
}

export const cancel = (stream: string): Effect.Effect<void, EventLogError, EventLog> =>
  Effect.flatMap(EventLog, (log) =>
    log.fail(stream, cancelledReason).pipe(
      // Already ended or gone: nothing runs to cancel.
      Effect.catchAll((error) => error._tag === "EventLogError" ? Effect.fail(error) : Effect.void)
    ))

export const make = (
  resolveSettings: (
    options: Partial<StreamProducer.Settings> & { readonly epoch: number }
  ) => Effect.Effect<StreamProducer.Settings, SettingsError>
): Effect.Effect<StreamProducer.StreamProducer["Type"], never, EventLog | Scope.Scope> =>
  Effect.gen(function*() {
    const log = yield* EventLog
    const fibers = yield* FiberSet.make<Outcome, EventLogError | InvalidRequest>()
    return {
      start: <E, R>(stream: string, source: Stream.Stream<EventInput, E, R>, options: StreamProducer.Options<E>) =>
        Effect.gen(function*() {
          const settings = yield* resolveSettings(options)
          // Created before `start` returns, so a reader sent right after finds the stream.
          yield* log.create(stream, { retention: options.retention })
          const context = yield* Effect.context<R>()
          yield* Metric.increment(running)
          const fiber = yield* FiberSet.run(fibers, run(log, stream, Stream.provideContext(source, context), settings, options))
          const running_: StreamProducer.Running = {
            stream,
            epoch: options.epoch,
            await: Effect.flatMap(Fiber.await(fiber), (exit) =>
              Exit.isInterrupted(exit) ? Effect.succeed<Outcome>({ _tag: "Interrupted" }) : exit),
            interrupt: Effect.asVoid(Fiber.interrupt(fiber))
          }
          return running_
        }),
      cancel: (stream: string) => Effect.provideService(cancel(stream), EventLog, log)
    }
  })
