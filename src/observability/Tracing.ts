/**
 * OpenTelemetry traces over OTLP/HTTP (JSON), on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; `OTEL_SERVICE_NAME` names the service.
 * Uses Effect's own OTLP exporter (effect/observability), which needs no OpenTelemetry SDK
 * packages. Every request is a span (`Gateway.<kind>`, with the request id, model, backend,
 * outcome and tokens as attributes) and each dispatch attempt a child span; the server
 * span continues an incoming `traceparent`. Off, tracing costs nothing on the hot path.
 */
import { Config, Effect, Layer, Option, References } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpSerialization, OtlpTracer } from "effect/observability"

export const layer = Layer.unwrap(
  Effect.gen(function*() {
    const traces = yield* Config.option(Config.String("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    const base = yield* Config.option(Config.String("OTEL_EXPORTER_OTLP_ENDPOINT"))
    const service = yield* Config.option(Config.String("OTEL_SERVICE_NAME"))
    const url = Option.isSome(traces)
      ? traces.value
      : Option.isSome(base)
      ? `${base.value.replace(/\/+$/, "")}/v1/traces`
      : undefined
    // Without an exporter spans go nowhere: turn them off so they cost nothing.
    if (url === undefined) return Layer.succeed(References.TracerEnabled, false)
    yield* Effect.logInfo("tracing to OTLP").pipe(Effect.annotateLogs({ url }))
    return OtlpTracer.layer({
      url,
      resource: { serviceName: Option.getOrElse(service, () => "sluice"), serviceVersion: "0.1.0" },
      exportInterval: "2 seconds"
    }).pipe(Layer.provide(OtlpSerialization.layerJson), Layer.provide(FetchHttpClient.layer))
  }).pipe(Effect.orElseSucceed(() => Layer.succeed(References.TracerEnabled, false)))
)
