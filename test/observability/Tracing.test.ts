/**
 * Traces leave over OTLP/HTTP when an endpoint is configured, to the OpenTelemetry GenAI
 * semantic conventions: the request span carries the operation, the requested and served
 * model, the usage, the finish reasons and the serving backend's address (`server.address`),
 * and each dispatch attempt is a child span with its backend, number and outcome. Checked on
 * a streamed, a unary, a failed-over and an aborted stream. The collector is an in-test
 * HTTP server on a real socket.
 */
import { ConfigProvider, Layer } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Tracing from "../../src/observability/Tracing.ts"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

interface OtlpValue {
  readonly stringValue?: string
  readonly intValue?: number | string
  readonly arrayValue?: { readonly values: ReadonlyArray<OtlpValue> }
}
interface OtlpSpan {
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly kind?: number
  readonly status?: { readonly code?: number }
  readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: OtlpValue }>
}

const attr = (s: OtlpSpan, key: string): unknown => {
  const v = s.attributes.find((a) => a.key === key)?.value
  if (v === undefined) return undefined
  if (v.stringValue !== undefined) return v.stringValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (v.arrayValue !== undefined) return v.arrayValue.values.map((x) => x.stringValue)
  return v
}

describe("OpenTelemetry traces (GenAI conventions)", () => {
  const spans: Array<OtlpSpan> = []
  /** Every metrics and logs export, as the collector received it (JSON text). */
  const metricExports: Array<string> = []
  const logExports: Array<string> = []
  const collector = createServer((req, res) => {
    let body = ""
    req.on("data", (c) => (body += c))
    req.on("end", () => {
      if (req.url === "/v1/metrics") metricExports.push(body)
      else if (req.url === "/v1/logs") logExports.push(body)
      else {
        const json = JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<OtlpSpan> }> }> }
        for (const rs of json.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans)
      }
      res.writeHead(200, { "content-type": "application/json" })
      res.end("{}")
    })
  })
  let engine: Fake.FakeEngine
  let broken: Fake.FakeEngine
  let gw: TestGateway
  let enginePort: string

  beforeAll(async () => {
    await new Promise<void>((r) => collector.listen(0, "127.0.0.1", () => r()))
    const port = (collector.address() as AddressInfo).port
    engine = await Fake.start((_model, body) =>
      body["stream"] === true && JSON.stringify(body).includes("hang up")
        ? { tokens: ["a", "b", "c", "d"], holdAfter: 2 }
        : { tokens: ["Hello", " world"], finishReason: "stop", usage: { prompt_tokens: 11, completion_tokens: 2 } }
    )
    broken = await Fake.start(() => ({ status: 503, errorBody: "{}" }))
    enginePort = new URL(engine.url).port
    const env = ConfigProvider.layer(ConfigProvider.fromUnknown({
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_METRIC_EXPORT_INTERVAL: "300"
    }))
    gw = await startGateway(`
routing: { policy: ordered }
backends:
  - { id: z, url: ${broken.url}, models: [f] }
  - { id: a, url: ${engine.url}, models: [{ name: m, upstream: served-m }, f] }
`, { extra: Tracing.layer.pipe(Layer.provideMerge(env)) })
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
    await broken?.close()
    collector.close()
  })

  const post = (id: string, body: Record<string, unknown>, signal?: AbortSignal) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": id },
      body: JSON.stringify(body),
      ...(signal === undefined ? {} : { signal })
    })

  const spansOf = async (id: string, attempts: number) => {
    const request = await eventually(
      async () => spans.find((s) => s.name === "Gateway.chat" && attr(s, "sluice.request_id") === id),
      (s) => s !== undefined,
      8000
    )
    expect(request, `request span of ${id}`).toBeDefined()
    const children = await eventually(
      async () => spans.filter((s) => s.name === "Dispatch.attempt" && s.parentSpanId === request!.spanId),
      (c) => c.length >= attempts,
      4000
    )
    return { request: request!, attempts: children }
  }

  it("a streamed request: GenAI attributes on the request span, its attempt a child", async () => {
    const res = await post("trace-stream", { model: "m", messages: [{ role: "user", content: "hi" }], stream: true })
    expect(await res.text()).toContain("Hello")
    const { request, attempts } = await spansOf("trace-stream", 1)
    expect(attr(request, "gen_ai.operation.name")).toBe("chat")
    expect(attr(request, "gen_ai.request.model")).toBe("m")
    expect(attr(request, "gen_ai.response.model")).toBe("served-m")
    expect(attr(request, "gen_ai.usage.input_tokens")).toBe(11)
    expect(attr(request, "gen_ai.usage.output_tokens")).toBe(2)
    expect(attr(request, "gen_ai.response.finish_reasons")).toEqual(["stop"])
    expect(attr(request, "server.address")).toBe("127.0.0.1")
    expect(attr(request, "server.port")).toBe(Number(enginePort))
    expect(attr(request, "sluice.outcome")).toBe("completed")
    expect(request.kind).toBe(2)
    expect(attempts).toHaveLength(1)
    expect(attr(attempts[0]!, "sluice.backend")).toBe("a")
    expect(attr(attempts[0]!, "sluice.attempt")).toBe(1)
    expect(attr(attempts[0]!, "sluice.attempt.outcome")).toBe("committed")
    expect(attr(attempts[0]!, "server.address")).toBe("127.0.0.1")
    expect(attr(attempts[0]!, "gen_ai.operation.name")).toBe("chat")
    expect(attr(attempts[0]!, "gen_ai.request.model")).toBe("m")
    expect(attr(attempts[0]!, "gen_ai.response.model")).toBe("served-m")
    expect(attempts[0]!.kind).toBe(3)
  })

  it("a unary request", async () => {
    const res = await post("trace-unary", { model: "m", messages: [{ role: "user", content: "hi" }] })
    expect(res.status).toBe(200)
    await res.text()
    const { request, attempts } = await spansOf("trace-unary", 1)
    expect(attr(request, "gen_ai.operation.name")).toBe("chat")
    expect(attr(request, "gen_ai.request.model")).toBe("m")
    expect(attr(request, "gen_ai.response.model")).toBe("served-m")
    expect(attr(request, "gen_ai.usage.input_tokens")).toBe(11)
    expect(attr(request, "gen_ai.usage.output_tokens")).toBe(2)
    expect(attr(request, "gen_ai.response.finish_reasons")).toEqual(["stop"])
    expect(attr(request, "server.address")).toBe("127.0.0.1")
    expect(attr(request, "sluice.tenant")).toBe("default")
    expect(attr(attempts[0]!, "sluice.attempt.outcome")).toBe("committed")
  })

  it("a failed attempt then a committed one: two child spans, each with its outcome", async () => {
    const res = await post("trace-failover", { model: "f", messages: [{ role: "user", content: "hi" }], stream: true })
    expect(await res.text()).toContain("Hello")
    const { request, attempts } = await spansOf("trace-failover", 2)
    const byNumber = [...attempts].sort((x, y) => Number(attr(x, "sluice.attempt")) - Number(attr(y, "sluice.attempt")))
    expect(byNumber.map((s) => [attr(s, "sluice.backend"), attr(s, "sluice.attempt.outcome")])).toEqual([
      ["z", "Unavailable"],
      ["a", "committed"]
    ])
    expect(attr(byNumber[0]!, "error.type")).toBe("Unavailable")
    expect(byNumber[0]!.status?.code).toBe(2)
    expect(attr(request, "sluice.backend")).toBe("a")
    expect(attr(request, "sluice.attempts")).toBe(2)
  })

  it("an aborted stream: the span ends when the client leaves, with what was streamed and an error status", async () => {
    const controller = new AbortController()
    const res = await post("trace-abort", {
      model: "m",
      messages: [{ role: "user", content: "hang up" }],
      stream: true
    }, controller.signal)
    const reader = res.body!.getReader()
    let seen = ""
    while (!seen.includes('"b"')) {
      const { value, done } = await reader.read()
      if (done) break
      seen += new TextDecoder().decode(value)
    }
    controller.abort()
    const { request, attempts } = await spansOf("trace-abort", 1)
    expect(attr(request, "gen_ai.request.model")).toBe("m")
    expect(attr(request, "gen_ai.usage.output_tokens")).toBe(2)
    expect(attr(request, "gen_ai.response.finish_reasons")).toBeUndefined()
    expect(attr(request, "sluice.outcome")).toBe("client_aborted")
    expect(attr(request, "http.response.status_code")).toBe(200)
    expect(request.status?.code).toBe(2)
    expect(attr(attempts[0]!, "sluice.attempt.outcome")).toBe("committed")
  })

  it("metrics and logs go to the same collector (/v1/metrics, /v1/logs)", async () => {
    const res = await post("trace-metrics", { model: "m", messages: [{ role: "user", content: "hi" }] })
    await res.text()
    const metrics = await eventually(
      async () =>
        metricExports.find((m) =>
          m.includes("sluice_requests_total") && m.includes("sluice_tokens_total") && m.includes("sluice_backend_health")
        ),
      (m) => m !== undefined,
      6000
    )
    // The backend gauges too, which only a refresh sets (no /metrics scrape happened).
    expect(metrics, "an OTLP metrics export with Sluice's counters and backend gauges").toBeDefined()
    expect(JSON.parse(metrics!)).toHaveProperty("resourceMetrics")
    const logs = await eventually(async () => logExports.find((l) => l.includes("sluice listening")), (l) => l !== undefined, 6000)
    expect(logs, "the gateway's own log records over OTLP").toBeDefined()
    expect(JSON.parse(logs!)).toHaveProperty("resourceLogs")
  })
})
