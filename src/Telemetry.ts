/**
 * Exports the library's spans and metrics through OpenTelemetry: OTLP over HTTP
 * when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, to stderr when `SSE_TELEMETRY=console`,
 * otherwise nothing (and no SDK is started).
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import type * as Resource from "@effect/opentelemetry/Resource"
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { PeriodicExportingMetricReader, type PushMetricExporter, type ResourceMetrics } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base"
import { Config, Duration, Effect, Layer, Option } from "effect"
import type { ConfigError } from "effect/ConfigError"
import { duration, oneOf, positiveDuration, resolve } from "./internal/settings.js"
import type { SettingsError } from "./Settings.js"

export type Exporter = "otlp" | "console" | "off"

export interface Settings {
  /**
   * Where spans and metrics go: OTLP over HTTP (to the standard OTEL_* endpoint), the
   * console's stderr, one JSON object a line (stdout is left to the program's data), or nowhere.
   */
  readonly exporter: Exporter
  /** The `service.name` of everything exported. */
  readonly serviceName: string
  /** How often metrics are exported. */
  readonly metricInterval: Duration.Duration
}

export const defaults: Settings = {
  exporter: "off",
  serviceName: "effect-sse-resume",
  metricInterval: Duration.seconds(10)
}

/** The settings from the environment, each with its default. */
export const config: Config.Config<Settings> = Config.all({
  endpoint: Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_ENDPOINT")).pipe(
    Config.withDescription("OTLP collector URL; when set, the exporter defaults to otlp")
  ),
  exporter: Config.option(Config.literal("otlp", "console", "off")("SSE_TELEMETRY")).pipe(
    Config.withDescription("otlp, console (stderr) or off; default otlp if OTEL_EXPORTER_OTLP_ENDPOINT is set, else off")
  ),
  serviceName: Config.withDefault(Config.string("OTEL_SERVICE_NAME"), defaults.serviceName).pipe(
    Config.withDescription("service.name of the exported spans and metrics")
  ),
  metricInterval: positiveDuration("SSE_METRIC_INTERVAL", defaults.metricInterval, "How often metrics are exported")
}).pipe(Config.map(({ endpoint, exporter, metricInterval, serviceName }): Settings => ({
  exporter: Option.getOrElse(exporter, () => Option.isSome(endpoint) ? "otlp" as const : "off" as const),
  serviceName,
  metricInterval
})))

type ExportResult = Parameters<Parameters<SpanExporter["export"]>[1]>[0]
// ExportResultCode.SUCCESS, without depending on @opentelemetry/core for one constant.
const exported: ExportResult = { code: 0 }

const writeLine = (record: unknown) => process.stderr.write(JSON.stringify(record) + "\n")

const micros = (time: readonly [number, number]) => time[0] * 1e6 + Math.round(time[1] / 1e3)

/** Spans as JSON lines on stderr (the SDK's ConsoleSpanExporter writes objects to stdout). */
class StderrSpanExporter implements SpanExporter {
  export(spans: Array<ReadableSpan>, done: (result: ExportResult) => void): void {
    for (const span of spans) {
      const context = span.spanContext()
      writeLine({
        name: span.name,
        traceId: context.traceId,
        id: context.spanId,
        parentId: span.parentSpanContext?.spanId,
        kind: span.kind,
        timestamp: micros(span.startTime),
        duration: micros(span.duration),
        attributes: span.attributes,
        status: span.status,
        events: span.events
      })
    }
    done(exported)
  }
  shutdown() {
    return Promise.resolve()
  }
}

/** Metrics as JSON lines on stderr, one per metric (the SDK's ConsoleMetricExporter writes to stdout). */
class StderrMetricExporter implements PushMetricExporter {
  export(metrics: ResourceMetrics, done: (result: ExportResult) => void): void {
    for (const scope of metrics.scopeMetrics) {
      for (const metric of scope.metrics) {
        writeLine({ descriptor: metric.descriptor, dataPointType: metric.dataPointType, dataPoints: metric.dataPoints })
      }
    }
    done(exported)
  }
  forceFlush() {
    return Promise.resolve()
  }
  shutdown() {
    return Promise.resolve()
  }
}

/**
 * The SDK for the given settings (defaults for the rest); the OTLP exporters read the
 * standard OTEL_* variables. An unknown exporter or a zero `metricInterval` fails with `SettingsError`.
 */
export const layer = (options: Partial<Settings> = {}): Layer.Layer<Resource.Resource, SettingsError> =>
  Layer.unwrapEffect(Effect.map(
    resolve("Telemetry", defaults, options, { exporter: oneOf("otlp", "console", "off"), metricInterval: duration }),
    sdk
  ))

const sdk = (settings: Settings): Layer.Layer<Resource.Resource> => {
  if (settings.exporter === "off") return NodeSdk.layerEmpty
  const console = settings.exporter === "console"
  return NodeSdk.layer(() => ({
    resource: { serviceName: settings.serviceName },
    spanProcessor: new BatchSpanProcessor(console ? new StderrSpanExporter() : new OTLPTraceExporter()),
    metricReader: new PeriodicExportingMetricReader({
      exporter: console ? new StderrMetricExporter() : new OTLPMetricExporter(),
      exportIntervalMillis: Duration.toMillis(settings.metricInterval)
    })
  }))
}

/** The SDK with its settings read from the environment (`config`), which holds them to the same rules. */
export const layerConfig: Layer.Layer<Resource.Resource, ConfigError> = Layer.unwrapEffect(
  Effect.map(config, (settings) => Layer.orDie(layer(settings)))
)
