/**
 * Every bad input gets the OpenAI error envelope with the right status; backend failures
 * become 502/503/504 with a message that says what happened; nothing is a 500.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body })

const expectEnvelope = async (res: Response, status: number, code?: string) => {
  expect(res.status).toBe(status)
  const json = await res.json() as { error: { message: string; type: string; param: unknown; code: unknown } }
  expect(typeof json.error.message).toBe("string")
  expect(json.error.message.length).toBeGreaterThan(0)
  expect(typeof json.error.type).toBe("string")
  expect("param" in json.error && "code" in json.error).toBe(true)
  if (code !== undefined) expect(json.error.code).toBe(code)
  return json.error
}

describe("errors on the wire", () => {
  let a: Fake.FakeEngine
  let b: Fake.FakeEngine
  let gw: TestGateway
  const chat = (model = "m", extra: Record<string, unknown> = {}) =>
    JSON.stringify({ model, messages: [{ role: "user", content: "hello" }], ...extra })

  beforeAll(async () => {
    a = await Fake.start()
    b = await Fake.start()
    gw = await startGateway(`
models:
  - name: m
  - name: small-budget
backends:
  - id: a
    url: ${a.url}
    models: [m, small-budget]
  - id: b
    url: ${b.url}
    models: [m]
timeouts: { first_token: 300ms, idle: 300ms }
limits: { max_body_bytes: 2KiB }
budgets: { tokens_per_window: 100000, window: 1m }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await a?.close()
    await b?.close()
  })

  it("400 for malformed JSON", async () => {
    await expectEnvelope(await post(`${gw.url}/v1/chat/completions`, "{\"model\": "), 400, "invalid_json")
    await expectEnvelope(await post(`${gw.url}/v1/chat/completions`, ""), 400, "invalid_json")
    await expectEnvelope(await post(`${gw.url}/v1/chat/completions`, "[1,2]"), 400)
  })

  it("400 for schema violations, naming the field", async () => {
    const e = await expectEnvelope(await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: "m" })), 400)
    expect(e.param).toBe("messages")
    const e2 = await expectEnvelope(await post(`${gw.url}/v1/chat/completions`, chat("m", { max_tokens: -3 })), 400)
    expect(e2.param).toBe("max_tokens")
    const e3 = await expectEnvelope(await post(`${gw.url}/v1/embeddings`, JSON.stringify({ model: "m", input: 42 })), 400)
    expect(e3.param).toBe("input")
  })

  it("404 for an unknown model and for an unknown path; 405 for a wrong method", async () => {
    await expectEnvelope(await post(`${gw.url}/v1/chat/completions`, chat("gpt-9")), 404, "model_not_found")
    await expectEnvelope(await fetch(`${gw.url}/v2/nothing`), 404, "unknown_url")
    const res = await fetch(`${gw.url}/v1/chat/completions`)
    await expectEnvelope(res, 405, "method_not_allowed")
  })

  it("405 on an inbound API's path is in that API's error format, with allow: POST", async () => {
    // Anthropic Messages (and its count_tokens): {"type":"error","error":{type,message}}, request-id.
    for (const [method, path] of [["GET", "/v1/messages"], ["DELETE", "/v1/messages"], ["GET", "/v1/messages/count_tokens"]] as const) {
      const res = await fetch(`${gw.url}${path}`, { method })
      expect(res.status).toBe(405)
      expect(res.headers.get("allow")).toBe("POST")
      expect(res.headers.get("content-type")).toContain("application/json")
      const body = await res.json() as { type: string; error: { type: string; message: string }; request_id: string }
      expect(body.type).toBe("error")
      expect(body.error.type).toBe("invalid_request_error")
      expect(body.error.message).toBe(`Method ${method} is not allowed on ${path}.`)
      expect("code" in body.error).toBe(false)
      expect(res.headers.get("request-id")).toBe(body.request_id)
    }
    // OpenAI Responses (and the OpenAI paths): the OpenAI envelope.
    for (const [method, path] of [["GET", "/v1/responses"], ["PUT", "/v1/responses"], ["GET", "/v1/embeddings"]] as const) {
      const res = await fetch(`${gw.url}${path}`, { method })
      expect(res.headers.get("allow")).toBe("POST")
      const e = await expectEnvelope(res, 405, "method_not_allowed")
      expect(e).toEqual({ message: `Method ${method} is not allowed on ${path}.`, type: "invalid_request_error", param: null, code: "method_not_allowed" })
    }
  })

  it("413 for a body over the limit", async () => {
    const big = chat("m", { padding: "x".repeat(4096) })
    await expectEnvelope(await post(`${gw.url}/v1/chat/completions`, big), 413, "request_too_large")
  })

  it("413 for a chunked body that grows past the limit while it is read", async () => {
    const { request } = await import("node:http")
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${gw.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      req.on("error", reject)
      // No content-length: the limit must hold while reading.
      req.write(chat("m", { padding: "" }).slice(0, -1))
      for (let i = 0; i < 8; i++) req.write(`,"p${i}":"${"x".repeat(1000)}"`)
      req.end("}")
    })
    expect(status).toBe(413)
  })

  it("a client cut off halfway through its body is let go, and the next request is served", async () => {
    const { connect } = await import("node:net")
    const { hostname, port } = new URL(gw.url)
    const body = chat("m")
    await new Promise<void>((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => {
        // The declared length is twice what is sent: the read is still waiting when the client goes.
        socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length * 2}\r\n\r\n${body}`)
        setTimeout(() => {
          socket.destroy()
          resolve()
        }, 100)
      })
      socket.on("error", reject)
    })
    const res = await post(`${gw.url}/v1/chat/completions`, chat("m"))
    expect(res.status).toBe(200)
    await res.text()
    const line = await eventually(async () => gw.lines.find((l) => l.status === 499 && l.path === "/v1/chat/completions"), (l) => l !== undefined)
    expect(line?.outcome).toBe("client_aborted")
  })

  it("429 with retry-after when the token budget is spent", async () => {
    const res = await post(`${gw.url}/v1/chat/completions`, chat("m", { max_tokens: 200_000 }))
    await expectEnvelope(res, 429, "token_budget_exceeded")
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0)
  })

  it("503 with retry-after when every backend is overloaded", async () => {
    a.script = () => ({ status: 429, headers: { "retry-after": "3" } })
    b.script = () => ({ status: 503 })
    const res = await post(`${gw.url}/v1/chat/completions`, chat("m", { stream: true }))
    const e = await expectEnvelope(res, 503)
    expect(e.message).toContain("a: Overloaded")
    expect(e.message).toContain("b: Unavailable")
    expect(res.headers.get("retry-after")).toBe("3")
  })

  it("504 when no backend produces a first token in time", async () => {
    a.script = () => ({ firstDelayMs: 2000 })
    b.script = () => ({ firstDelayMs: 2000 })
    const res = await post(`${gw.url}/v1/chat/completions`, chat("m", { stream: true }))
    const e = await expectEnvelope(res, 504, "backends_timeout")
    expect(e.message).toContain("TimeToFirstTokenExceeded")
  })

  it("502 when backends fail in other ways, and 400 passes through a context-length error without retrying", async () => {
    a.script = () => ({ status: 500 })
    b.script = () => ({ status: 500 })
    await expectEnvelope(await post(`${gw.url}/v1/chat/completions`, chat("m")), 502, "backends_exhausted")
    const seen = a.seen.length + b.seen.length
    const tooLong = () => ({
      status: 400,
      errorBody: JSON.stringify({ error: { message: "This model's maximum context length is 8192 tokens.", type: "BadRequestError", param: null, code: 400 } })
    })
    a.script = tooLong
    b.script = tooLong
    const e = await expectEnvelope(await post(`${gw.url}/v1/chat/completions`, chat("m")), 400, "context_length_exceeded")
    expect(e.message).toContain("maximum context length")
    // The client's own fault: exactly one attempt, no failover.
    expect(a.seen.length + b.seen.length).toBe(seen + 1)
  })

  it("exposes Prometheus metrics whose labels a client cannot invent", async () => {
    const res = await fetch(`${gw.url}/metrics`)
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text).toMatch(/sluice_requests_total\{[^}]*model="m"[^}]*outcome="failed"[^}]*\} \d+/)
    expect(text).toMatch(/sluice_requests_total\{[^}]*model="unknown"[^}]*outcome="rejected"/)
    expect(text).toMatch(/sluice_backend_attempt_failures_total\{[^}]*reason="Overloaded"/)
    // Backend a failed a lot above: whatever its state, exactly one state gauge is 1.
    expect(text.match(/sluice_backend_health\{backend="a",state="\w+"\} 1/g)?.length).toBe(1)
    expect(text).not.toContain("gpt-9")
  })

  it("leaves nothing held after all of it, and logs every request", async () => {
    a.script = () => ({})
    b.script = () => ({})
    const held = await eventually(() => gw.held(), (h) => JSON.stringify(h) === JSON.stringify(idle))
    expect(held).toEqual(idle)
    expect(gw.lines.every((l) => l.status !== 500)).toBe(true)
    expect(gw.lines.filter((l) => l.outcome === "rejected").length).toBeGreaterThanOrEqual(8)
  })
})
