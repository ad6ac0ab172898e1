import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { FetchHttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { AggregationTemporality, MetricReader, type ResourceMetrics } from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ConfigProvider, Duration, Effect, Exit, Layer, Option, Schedule, Stream } from "effect"
import * as CursorStore from "../src/store/CursorStore.js"
import * as DemoServer from "../src/cli/demo/DemoServer.js"
import * as PersistenceWorker from "../src/session/PersistenceWorker.js"
import * as SessionManager from "../src/session/SessionManager.js"
import * as SseClient from "../src/client/SseClient.js"
import * as Telemetry from "../src/Telemetry.js"

/** Collects on demand, so the test reads metrics when it wants, not on a timer. */
class OnDemandReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE })
  }
  protected override onForceFlush() {
    return Promise.resolve()
  }
  protected override onShutdown() {
    return Promise.resolve()
  }
}

const metricValue = (metrics: ResourceMetrics, name: string): number => {
  for (const scope of metrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name === name) {
        return metric.dataPoints.reduce((sum, point) => sum + Number(point.value as number), 0)
      }
    }
  }
  throw new Error(`metric ${name} was not exported`)
}

const attributesOf = (spans: ReadonlyArray<ReadableSpan>, name: string) =>
  spans.filter((span) => span.name === name).map((span) => span.attributes)

describe("Telemetry", () => {
  it.effect("the environment picks the exporter", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) =>
        Effect.withConfigProvider(Telemetry.config, ConfigProvider.fromJson(env))
      expect((yield* read({})).exporter).toBe("off")
      expect((yield* read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" })).exporter).toBe("otlp")
      expect((yield* read({ SSE_TELEMETRY: "console" })).exporter).toBe("console")
      expect(Exit.isFailure(yield* Effect.exit(read({ SSE_TELEMETRY: "loud" })))).toBe(true)
      // Zero would make the periodic reader spin.
      expect(Exit.isFailure(yield* Effect.exit(read({ SSE_METRIC_INTERVAL: "0 seconds" })))).toBe(true)
      expect((yield* read({ SSE_METRIC_INTERVAL: "250 millis" })).metricInterval).toEqual(Duration.millis(250))
    }))

  it.live("a run with a reconnect exports sse.connect, sse.reconnect and persistence batch spans, and the metrics", () => {
    const spans = new InMemorySpanExporter()
    const reader = new OnDemandReader()
    const sdk = NodeSdk.layer(() => ({
      resource: { serviceName: "telemetry-test" },
      spanProcessor: new SimpleSpanProcessor(spans),
      metricReader: reader
    }))
    const persistence = SessionManager.layer().pipe(
      Layer.provideMerge(PersistenceWorker.layer({ flushInterval: Duration.millis(5) })),
      Layer.provideMerge(CursorStore.layerMemory)
    )
    return Effect.gen(function*() {
      const server = yield* DemoServer.make({ dropEvery: 30, eventsPerSecond: 2_000, retryMillis: 10 })
      const manager = yield* SessionManager.SessionManager
      const session = yield* manager.open("otel")
      const events = yield* SseClient.stream(HttpClientRequest.get(server.url), {
        tracker: session.tracker,
        initialDelay: "10 millis"
      }).pipe(Stream.take(45), Stream.runCollect)
      expect(events.length).toBe(45)
      // The worker writes on its own schedule; wait (bounded) until its batch span is out.
      yield* Effect.sync(() => spans.getFinishedSpans().some((span) => span.name === "persistence.batch")).pipe(
        Effect.repeat({ until: (done) => done, schedule: Schedule.spaced("10 millis") }),
        Effect.timeout("5 seconds")
      )
      yield* manager.close("otel")

      const { resourceMetrics } = yield* Effect.promise(() => reader.collect())
      const finished = spans.getFinishedSpans()

      const connects = attributesOf(finished, "sse.connect")
      expect(connects.length).toBe(2)
      expect(connects[0]).toMatchObject({ "sse.attempt": 1, "sse.status": 200, "sse.last_event_id": "" })
      expect(connects[1]).toMatchObject({ "sse.attempt": 2, "sse.status": 200, "sse.last_event_id": "30" })

      const reconnects = attributesOf(finished, "sse.reconnect")
      expect(reconnects.length).toBe(1)
      expect(reconnects[0]).toMatchObject({ "sse.reason": "transport", "sse.attempt": 1 })
      expect(reconnects[0]!["sse.delay_ms"]).toBeGreaterThanOrEqual(10)

      const batches = attributesOf(finished, "persistence.batch")
      expect(batches.length).toBeGreaterThan(0)
      expect(batches.every((a) => Number(a["persistence.cursors"]) >= 1)).toBe(true)

      // Counters are process-wide, so other tests in this file may add to them:
      // these are lower bounds set by this run alone.
      expect(metricValue(resourceMetrics, "sse_reconnects")).toBeGreaterThanOrEqual(1)
      expect(metricValue(resourceMetrics, "sse_events_received")).toBeGreaterThanOrEqual(45)
      expect(metricValue(resourceMetrics, "sse_duplicate_events")).toBeGreaterThanOrEqual(3)
      expect(metricValue(resourceMetrics, "persistence_batches")).toBeGreaterThanOrEqual(batches.length)
      const stored = yield* Effect.flatMap(CursorStore.CursorStore, (store) => store.load("otel"))
      // The session tracker commits whole chunks as the client records them.
      expect(Option.map(stored, (c) => c.lastEventId)).toEqual(yield* session.tracker.lastEventId)
      // The SDK goes under the library's layers, so their long-running fibers trace too.
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(persistence, FetchHttpClient.layer).pipe(Layer.provideMerge(sdk))))
  })
})
