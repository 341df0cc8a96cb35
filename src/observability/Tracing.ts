/**
 * OpenTelemetry over OTLP/HTTP (JSON): traces, metrics and logs, each on when its endpoint
 * is known. `OTEL_EXPORTER_OTLP_ENDPOINT` turns on all three (`<endpoint>/v1/traces`,
 * `/v1/metrics`, `/v1/logs`); `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT` set one
 * signal's full URL; `OTEL_SERVICE_NAME` names the service; `OTEL_METRIC_EXPORT_INTERVAL`
 * (ms, default 10000) paces metrics.
 *
 * Uses Effect's own OTLP exporters (effect/observability), which need no OpenTelemetry SDK
 * packages (the project carries none). Traces follow the GenAI semantic conventions
 * (GenAiSpans.ts): every request is a server span `Gateway.<kind>` that lives as long as
 * the request's scope (a stream's span ends with its last byte) and carries the request
 * id, `gen_ai.operation.name`, the requested and served model, the input and output tokens,
 * the finish reasons, `server.address` of the backend that answered, the outcome and the
 * status; each dispatch attempt is a child span with its backend, attempt number and
 * outcome. The request span is a child of the HTTP server span, which continues an incoming
 * `traceparent`. Metrics are the same series `/metrics` serves (the backend, breaker,
 * budget and ledger gauges refreshed at the export's pace by http/Routes.ts). Logs are the gateway's own log
 * records (not the per-request line, which the spans carry), beside stdout.
 *
 * Must never: start an exporter without an endpoint. Off, tracing costs nothing on the hot
 * path (no span is opened at all).
 */
import { Config, Effect, Layer, Option, References } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpLogger, OtlpMetrics, OtlpSerialization, OtlpTracer } from "effect/observability"

/** Where each signal goes; undefined: that signal is off. */
export interface Endpoints {
  readonly traces: string | undefined
  readonly metrics: string | undefined
  readonly logs: string | undefined
}

const endpoints = Effect.gen(function*() {
  const base = Option.getOrUndefined(yield* Config.option(Config.String("OTEL_EXPORTER_OTLP_ENDPOINT")))
  const signal = (name: "TRACES" | "METRICS" | "LOGS", path: string) =>
    Effect.map(
      Config.option(Config.String(`OTEL_EXPORTER_OTLP_${name}_ENDPOINT`)),
      (specific): string | undefined =>
        Option.isSome(specific) ? specific.value : base === undefined ? undefined : `${base.replace(/\/+$/, "")}/v1/${path}`
    )
  return {
    traces: yield* signal("TRACES", "traces"),
    metrics: yield* signal("METRICS", "metrics"),
    logs: yield* signal("LOGS", "logs")
  } satisfies Endpoints
})

/** How often the gauges need a refresh for OTLP metrics; undefined when OTLP metrics are off. */
export const metricsRefreshMs: Effect.Effect<number | undefined> = Effect.gen(function*() {
  const to = yield* endpoints
  if (to.metrics === undefined) return undefined
  const interval = yield* Config.option(Config.Int("OTEL_METRIC_EXPORT_INTERVAL"))
  return exportIntervalMs(Option.getOrUndefined(interval))
}).pipe(Effect.orElseSucceed(() => undefined))

const exportIntervalMs = (configured: number | undefined): number => Math.max(100, configured ?? 10_000)

export const layer = Layer.unwrap(
  Effect.gen(function*() {
    const to = yield* endpoints
    const service = yield* Config.option(Config.String("OTEL_SERVICE_NAME"))
    const interval = yield* Config.option(Config.Int("OTEL_METRIC_EXPORT_INTERVAL"))
    const resource = { serviceName: Option.getOrElse(service, () => "sluice"), serviceVersion: "0.1.0" }
    // Without a trace exporter spans go nowhere: turn them off so they cost nothing.
    const traces = to.traces === undefined
      ? Layer.succeed(References.TracerEnabled, false)
      : OtlpTracer.layer({ url: to.traces, resource, exportInterval: "2 seconds" })
    const metrics = to.metrics === undefined ? Layer.empty : OtlpMetrics.layer({
      url: to.metrics,
      resource,
      exportInterval: exportIntervalMs(Option.getOrUndefined(interval))
    })
    // Merged with the stdout logger (built under this layer), never instead of it.
    const logs = to.logs === undefined ? Layer.empty : OtlpLogger.layer({ url: to.logs, resource, mergeWithExisting: true })
    if (to.traces !== undefined || to.metrics !== undefined || to.logs !== undefined) {
      yield* Effect.logInfo("OpenTelemetry over OTLP").pipe(Effect.annotateLogs({ ...to }))
    }
    return Layer.mergeAll(traces, metrics, logs).pipe(
      Layer.provide(OtlpSerialization.layerJson),
      Layer.provide(FetchHttpClient.layer)
    )
  }).pipe(Effect.orElseSucceed(() => Layer.succeed(References.TracerEnabled, false)))
)
