import { Effect, Exit, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import * as Load from "../../src/config/Load.ts"

const parse = (yaml: string, env: Record<string, string> = {}) => Effect.runSyncExit(Load.parse(yaml, "sluice.yaml", env))

const errorOf = (yaml: string, env: Record<string, string> = {}): string => {
  const exit = parse(yaml, env)
  if (Exit.isSuccess(exit)) throw new Error("expected a config error")
  const reason = exit.cause.reasons[0]
  if (reason?._tag !== "Fail") throw new Error("expected a typed failure")
  return reason.error.toString()
}

const plan = (yaml: string, env: Record<string, string> = {}) => {
  const exit = parse(yaml, env)
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return exit.value
}

const base = `
models:
  - name: llama-3.1-8b
    aliases: [llama3]
backends:
  - id: a
    url: http://127.0.0.1:9001/v1
    models: [llama-3.1-8b]
    gpu: H100
    quantization: fp8
    max_concurrency: 8
`

describe("config", () => {
  it("decodes a file into an immutable plan with defaults", () => {
    const p = plan(base)
    expect(p.server).toEqual({
      host: "127.0.0.1",
      port: 8080,
      headersTimeoutMs: 10_000,
      bodyTimeoutMs: 30_000,
      maxConnections: 10_000,
      maxConnectionsPerAddress: 1_000,
      idleGcAfterMs: 0
    })
    expect(p.modelNames.get("llama3")).toBe("llama-3.1-8b")
    const b = p.backends[0]!
    expect(b.maxConcurrency).toBe(8)
    expect(b.gpu).toBe("H100")
    expect(b.models.get("llama-3.1-8b" as never)).toBe("llama-3.1-8b")
    expect(p.timeouts.firstTokenMs).toBe(60_000)
    expect(p.limits.maxBodyBytes).toBe(4 * 1024 * 1024)
  })

  it("parses durations and sizes", () => {
    const p = plan(`${base}
timeouts: { connect: 250ms, first_token: 2s, idle: 1.5s, total: 5m }
limits: { max_body_bytes: 512KiB }
`)
    expect(p.timeouts).toMatchObject({ connectMs: 250, firstTokenMs: 2000, idleMs: 1500, totalMs: 300_000 })
    expect(p.limits.maxBodyBytes).toBe(512 * 1024)
  })

  it("reads the listener's deadlines and connection caps, 0 switching one off", () => {
    const p = plan(`${base}
server: { headers_timeout: 2s, body_timeout: 1m, max_connections: 0, max_connections_per_address: 64, idle_gc_after: 0 }
`)
    expect(p.server).toMatchObject({ headersTimeoutMs: 2000, bodyTimeoutMs: 60_000, maxConnections: 0, maxConnectionsPerAddress: 64, idleGcAfterMs: 0 })
    expect(errorOf(`${base}
server: { headers_timeout: 40s, body_timeout: 30s }`)).toContain("server.headers_timeout")
    expect(errorOf(`${base}
server: { max_connections: -1 }`)).toContain("server.max_connections")
    expect(plan(`${base}
server: { headers_timeout: 40s, body_timeout: 0 }`).server.bodyTimeoutMs).toBe(0)
  })

  it("sizes the upstream pool from the slots, and refuses a pool smaller than them", () => {
    expect(plan(base).backends[0]).toMatchObject({ maxConcurrency: 8, connections: 8 })
    expect(plan(base.replace("max_concurrency: 8", "max_concurrency: 300")).backends[0]!.connections).toBe(300)
    expect(plan(base.replace("max_concurrency: 8", "max_concurrency: 8\n    connections: 20")).backends[0]!.connections).toBe(20)
    const error = errorOf(base.replace("max_concurrency: 8", "max_concurrency: 8\n    connections: 4"))
    expect(error).toContain("backends[0].connections")
    expect(error).toContain("at least max_concurrency (8)")
    // The default slot limit (256) with no pool size: the pool follows it.
    expect(plan(base.replace("    max_concurrency: 8\n", "")).backends[0]).toMatchObject({ maxConcurrency: 256, connections: 256 })
  })

  it("rejects unknown keys naming the path", () => {
    expect(errorOf(base.replace("max_concurrency: 8", "max_concurency: 8"))).toContain("backends[0].max_concurency")
    expect(errorOf(`${base}\ntimeouts: { frist_token: 2s }`)).toContain("timeouts.frist_token")
  })

  it("rejects duplicate backend ids", () => {
    const yaml = `${base}
  - id: a
    url: http://127.0.0.1:9002/v1
    models: [llama-3.1-8b]
`
    expect(errorOf(yaml)).toContain("backends[1].id: duplicate backend id \"a\"")
  })

  it("rejects a model no backend serves", () => {
    const yaml = base.replace("    aliases: [llama3]", "    aliases: [llama3]\n  - name: orphan")
    expect(errorOf(yaml)).toContain("models[1]: model \"orphan\" is not served by any backend")
  })

  it("rejects a backend model that is not declared", () => {
    expect(errorOf(base.replace("models: [llama-3.1-8b]", "models: [llama-3.1-8b, mistral]"))).toContain(
      "backends[0].models[1]: model \"mistral\" is not declared"
    )
  })

  it("rejects bad values with the path and the expectation", () => {
    expect(errorOf(base.replace("max_concurrency: 8", "max_concurrency: -1"))).toContain("backends[0].max_concurrency")
    expect(errorOf(`${base}\ntimeouts: { idle: soon }`)).toContain("timeouts.idle")
    expect(errorOf(base.replace("http://127.0.0.1:9001/v1", "ftp://x"))).toContain("backends[0].url")
  })

  it("reports YAML syntax errors with a line", () => {
    expect(errorOf("backends: [\n  - id: a\n")).toMatch(/YAML at line \d+/)
  })

  it("reads API keys from the environment as redacted values", () => {
    const p = plan(base.replace("max_concurrency: 8", "max_concurrency: 8\n    api_key_env: UPSTREAM_KEY"), { UPSTREAM_KEY: "sk-secret" })
    const key = p.backends[0]!.apiKey!
    expect(Redacted.value(key)).toBe("sk-secret")
    expect(String(key)).not.toContain("sk-secret")
    expect(errorOf(base.replace("max_concurrency: 8", "max_concurrency: 8\n    api_key_env: MISSING_KEY"))).toContain(
      "backends[0].api_key_env: environment variable MISSING_KEY is not set"
    )
  })

  it("declares models implicitly when the file has no models section", () => {
    const p = plan(`
backends:
  - id: a
    url: http://127.0.0.1:9001/v1
    models: [m1, { name: m2, upstream: org/model-2 }]
`)
    expect([...p.models.keys()]).toEqual(["m1", "m2"])
    expect(p.backends[0]!.models.get("m2" as never)).toBe("org/model-2")
  })

  it("decodes the health, panic, repetition and unary-retry keys, with defaults", () => {
    const d = plan(base)
    expect(d.health).toMatchObject({
      windowMs: 30_000,
      minSamples: 10,
      unhealthyAt: 0.5,
      degradeAt: 0.2,
      unhealthyAfter: 3,
      probeBackoffMs: 250,
      probeBackoffMaxMs: 1_000,
      repetitionMinRun: 320,
      repetitionMaxPeriod: 128,
      repetitionMinRepeats: 4
    })
    expect(d.routing.panicThreshold).toBe(0.5)
    const model = d.models.get("llama-3.1-8b" as never)!
    expect(model.repetition).toBe("observe")
    expect(model.retryUnaryAfterResponse).toBe(false)
    const p = plan(`${base.replace("    aliases: [llama3]", "    aliases: [llama3]\n    repetition: end_stream\n    retry_unary_after_response: true")}
routing: { panic_threshold: 0 }
health: { window: 10s, min_samples: 4, unhealthy_at: 0.8, degrade_at: 0.3, probe_backoff: 100ms, probe_backoff_max: 2s, repetition_min_run: 200, repetition_max_period: 64, repetition_min_repeats: 3 }
`)
    expect(p.models.get("llama-3.1-8b" as never)).toMatchObject({ repetition: "end_stream", retryUnaryAfterResponse: true })
    expect(p.routing.panicThreshold).toBe(0)
    expect(p.health).toMatchObject({
      windowMs: 10_000,
      minSamples: 4,
      unhealthyAt: 0.8,
      degradeAt: 0.3,
      probeBackoffMs: 100,
      probeBackoffMaxMs: 2_000,
      repetitionMinRun: 200,
      repetitionMaxPeriod: 64,
      repetitionMinRepeats: 3
    })
  })

  it("rejects inconsistent health thresholds and the retired repetition keys", () => {
    expect(errorOf(`${base}\nhealth: { degrade_at: 0.6 }`)).toContain("health.degrade_at")
    expect(errorOf(`${base}\nhealth: { repetition_window: 256 }`)).toContain("health.repetition_window")
    expect(errorOf(`${base}\nhealth: { repetition_min_repeats: 1 }`)).toContain("health.repetition_min_repeats")
    expect(errorOf(`${base}\nrouting: { panic_threshold: 1.5 }`)).toContain("routing.panic_threshold")
    expect(errorOf(base.replace("    aliases: [llama3]", "    aliases: [llama3]\n    repetition: cut"))).toContain("models[0].repetition")
  })

  it("decodes the decode-time limits, max_n and CORS, with their defaults", () => {
    const p = plan(base)
    expect(p.limits).toEqual({
      maxBodyBytes: 4 * 1024 * 1024,
      maxJsonDepth: 64,
      maxJsonValues: 300_000,
      maxJsonKeys: 50_000,
      maxMessages: 4096,
      maxTools: 128,
      maxStopSequences: 16,
      maxInputs: 2048,
      maxResponseBytes: 64 * 1024 * 1024
    })
    expect(p.models.get("llama-3.1-8b" as never)!.maxN).toBe(8)
    expect(p.server.cors).toBeUndefined()
    const q = plan(`${base}
server:
  cors: { allowed_origins: ["https://app.example.com", "*"], max_age: 1m }
limits: { max_json_depth: 32, max_inputs: 10, max_response_bytes: 1MiB }
`.replace("    aliases: [llama3]", "    aliases: [llama3]\n    max_n: 2"))
    expect(q.server.cors).toEqual({
      allowedOrigins: ["https://app.example.com", "*"],
      allowedHeaders: ["authorization", "content-type", "x-request-id", "x-session-id"],
      maxAgeSeconds: 60
    })
    expect(q.limits.maxJsonDepth).toBe(32)
    expect(q.limits.maxInputs).toBe(10)
    expect(q.limits.maxResponseBytes).toBe(1024 * 1024)
    expect(q.models.get("llama-3.1-8b" as never)!.maxN).toBe(2)
    expect(errorOf(`${base}\nserver: { cors: { allowed_origins: ["app.example.com"] } }`)).toContain("server.cors.allowed_origins[0]")
    expect(errorOf(`${base}\nlimits: { max_json_depth: 100000 }`)).toContain("limits.max_json_depth")
    expect(errorOf(`${base}\nlimits: { max_jsn_depth: 3 }`)).toContain("limits.max_jsn_depth")
  })
})
