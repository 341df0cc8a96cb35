/**
 * Traces leave over OTLP/HTTP when an endpoint is configured: a request is a span with the
 * request id and model, and its upstream attempt a child span. The collector is an in-test
 * HTTP server on a real socket.
 */
import { ConfigProvider, Layer } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Tracing from "../../src/observability/Tracing.ts"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

interface OtlpSpan {
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: Record<string, unknown> }>
}

describe("OpenTelemetry traces", () => {
  const spans: Array<OtlpSpan> = []
  const collector = createServer((req, res) => {
    let body = ""
    req.on("data", (c) => (body += c))
    req.on("end", () => {
      const json = JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<OtlpSpan> }> }> }
      for (const rs of json.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans)
      res.writeHead(200, { "content-type": "application/json" })
      res.end("{}")
    })
  })
  let engine: Fake.FakeEngine
  let gw: TestGateway

  beforeAll(async () => {
    await new Promise<void>((r) => collector.listen(0, "127.0.0.1", () => r()))
    const port = (collector.address() as AddressInfo).port
    engine = await Fake.start()
    const env = ConfigProvider.layer(ConfigProvider.fromUnknown({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` }))
    gw = await startGateway(`
backends:
  - { id: a, url: ${engine.url}, models: [m] }
`, { extra: Tracing.layer.pipe(Layer.provide(env)) })
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
    collector.close()
  })

  it("exports a request span with its attempt as a child", async () => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "trace-me-1" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], stream: true })
    })
    await res.text()
    const found = await eventually(async () => spans.find((s) => s.name === "Gateway.chat"), (s) => s !== undefined, 6000)
    expect(found).toBeDefined()
    const attr = (s: OtlpSpan, key: string) => s.attributes.find((a) => a.key === key)?.value
    expect(attr(found!, "sluice.request_id")).toEqual({ stringValue: "trace-me-1" })
    expect(attr(found!, "sluice.model")).toEqual({ stringValue: "m" })
    expect(attr(found!, "sluice.tenant")).toEqual({ stringValue: "default" })
    const attempt = spans.find((s) => s.name === "Dispatch.attempt" && s.traceId === found!.traceId)
    expect(attempt).toBeDefined()
    expect(attr(attempt!, "sluice.backend")).toEqual({ stringValue: "a" })
    expect(attr(attempt!, "sluice.tenant")).toEqual({ stringValue: "default" })
  })
})
