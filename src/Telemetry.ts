/**
 * Exports the library's spans and metrics through OpenTelemetry: OTLP over HTTP
 * when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, to the console when
 * `SSE_TELEMETRY=console`, otherwise nothing (and no SDK is started).
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import type * as Resource from "@effect/opentelemetry/Resource"
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { ConsoleMetricExporter, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor, ConsoleSpanExporter } from "@opentelemetry/sdk-trace-base"
import { Config, Duration, Effect, Layer, Option } from "effect"
import type { ConfigError } from "effect/ConfigError"

export type Exporter = "otlp" | "console" | "off"

export interface Settings {
  readonly exporter: Exporter
  readonly serviceName: string
  /** How often metrics are exported. */
  readonly metricInterval: Duration.Duration
}

/** OTEL_EXPORTER_OTLP_ENDPOINT (turns on OTLP), SSE_TELEMETRY (otlp | console | off), OTEL_SERVICE_NAME, SSE_METRIC_INTERVAL. */
export const config: Config.Config<Settings> = Config.all({
  endpoint: Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_ENDPOINT")),
  exporter: Config.option(Config.literal("otlp", "console", "off")("SSE_TELEMETRY")),
  serviceName: Config.withDefault(Config.string("OTEL_SERVICE_NAME"), "effect-sse-resume"),
  metricInterval: Config.withDefault(Config.duration("SSE_METRIC_INTERVAL"), Duration.seconds(10))
}).pipe(Config.map(({ endpoint, exporter, metricInterval, serviceName }) => ({
  exporter: Option.getOrElse(exporter, () => Option.isSome(endpoint) ? "otlp" as const : "off" as const),
  serviceName,
  metricInterval
})))

/** The SDK for explicit settings; the OTLP exporters read the standard OTEL_* variables. */
export const layerWith = (settings: Settings): Layer.Layer<Resource.Resource> => {
  if (settings.exporter === "off") return NodeSdk.layerEmpty
  const console = settings.exporter === "console"
  return NodeSdk.layer(() => ({
    resource: { serviceName: settings.serviceName },
    spanProcessor: new BatchSpanProcessor(console ? new ConsoleSpanExporter() : new OTLPTraceExporter()),
    metricReader: new PeriodicExportingMetricReader({
      exporter: console ? new ConsoleMetricExporter() : new OTLPMetricExporter(),
      exportIntervalMillis: Duration.toMillis(settings.metricInterval)
    })
  }))
}

/** The SDK as the environment configures it. */
export const layer: Layer.Layer<Resource.Resource, ConfigError> = Layer.unwrapEffect(Effect.map(config, layerWith))
