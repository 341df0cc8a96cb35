/**
 * Every failure mode of the engine simulator's fault injection, through the real gateway:
 * the typed reason, the retry decision, the breaker and health transitions, and what the
 * client sees. Two simulated engines on different GPU SKUs (so each has its own
 * (model, SKU) breaker); engine `a` is faulty, `b` is healthy; routing is config order.
 */
import { Effect, Exit, Layer, Scope } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { EngineLauncher, FleetError } from "../../src/backends/Fleet.ts"
import * as Simulator from "../../src/simulator/Simulator.ts"
import { streamChat } from "../support/Client.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

const TIME_SCALE = 20

describe("failure modes against the simulator's fault injection", () => {
  const scope = Effect.runSync(Scope.make())
  const sims = new Map<string, Simulator.RunningSimulator>()
  let gw: TestGateway

  /** Starts the simulators the plan asks for, kept by backend id so tests can inject faults. */
  const launcher = Layer.succeed(EngineLauncher, EngineLauncher.of({
    launch: (backend) =>
      Simulator.start({
        profile: "llama-3.1-8b-fp8-h100",
        model: "m",
        timeScale: TIME_SCALE,
        jitter: 0,
        seed: backend.id === "a" ? 1 : 2
      }).pipe(
        Effect.tap((sim) => Effect.sync(() => sims.set(backend.id, sim))),
        Effect.map((sim) => `${sim.url}/v1`),
        Effect.mapError((e) => new FleetError({ backend: backend.id, message: e.message })),
        Scope.provide(scope)
      )
  }))

  const faults = (id: string, f: Partial<Simulator.Faults>) => Effect.runPromise(sims.get(id)!.setFaults(f))
  const healthy: Partial<Simulator.Faults> = {
    errorRate: 0,
    midStreamErrorRate: 0,
    stallRate: 0,
    malformedRate: 0,
    degenerateRate: 0,
    oomRate: 0,
    resetRate: 0,
    coldStartSeconds: 0,
    slow: 1
  }
  const body = (extra: Record<string, unknown> = {}) => ({
    model: "m",
    messages: [{ role: "user", content: "Tell me about the sea." }],
    stream: true,
    max_tokens: 64,
    sim_output_tokens: 40,
    ...extra
  })
  const lastRecord = () => eventually(() => gw.run(gw.sink.snapshot), (s) => s.records > 0).then((s) => s.recent.at(-1)!)
  const breakerOf = (id: string) => gw.run(Effect.sync(() => gw.breakers.state("m" as never, (id === "a" ? "H100" : "A100") as never, Date.now())))

  /** A gateway over two simulated engines; breakers stay out of the way unless asked. */
  const makeGateway = (breakers = "{ min_requests: 1000 }", probes = false) =>
    startGateway(`
models:
  - { name: m, repetition: end_stream }
backends:
  - { id: a, simulate: { profile: llama-3.1-8b-fp8-h100 }, models: [m], gpu: H100, max_concurrency: 16 }
  - { id: b, simulate: { profile: llama-3.1-8b-fp8-h100 }, models: [m], gpu: A100, max_concurrency: 16 }
routing: { policy: ordered }
timeouts: { first_token: 2s, idle: 400ms }
retries: { max_attempts: 2, budget_ratio: 1, min_per_second: 1000 }
breakers: ${breakers}
health: { unhealthy_after: 3, min_tokens_per_second: 1, probe_interval: 100ms, probe_timeout: 1s }
`, { launcher, probes })

  beforeAll(async () => {
    gw = await makeGateway()
  })
  afterAll(async () => {
    await gw?.close()
    await Effect.runPromise(Scope.close(scope, Exit.void))
  })
  beforeEach(async () => {
    await faults("a", healthy)
    await faults("b", healthy)
  })

  it.each([
    [429, "Overloaded"],
    [503, "Unavailable"],
    [500, "UpstreamError"]
  ] as const)("an HTTP %i before the first token is %s: retried on the next backend", async (status, reason) => {
    await faults("a", { errorRate: 1, errorStatus: status, retryAfterSeconds: 0 })
    const result = await streamChat(gw.url, body())
    expect(result.status).toBe(200)
    expect(result.headers["x-sluice-backend"]).toBe("b")
    expect(result.events.at(-1)).toBe("[DONE]")
    const record = await lastRecord()
    expect(record.attempts.map((x) => [x.backend, x.reason])).toEqual([["a", reason]])
    expect(record.outcome).toBe("completed")
    // A 500 may come after the prefill ran: its prompt is attempt waste (never charged to the tenant).
    expect(record.attempts[0]!.wastedPromptTokens > 0).toBe(reason === "UpstreamError")
  })

  const midStream = [
    ["a mid-stream error event", { midStreamErrorRate: 1, midStreamAfterTokens: 3 }, "MidStreamError", "backend_error"],
    ["a malformed chunk", { malformedRate: 1, malformedAfterTokens: 3 }, "MalformedChunk", "backend_error"],
    ["a stall", { stallRate: 1, stallAfterTokens: 3, stallSeconds: 60 }, "StreamStalled", "backend_timeout"],
    ["degenerate output", { degenerateRate: 1 }, "DegenerateOutput", "backend_error"],
    ["a connection reset", { resetRate: 1, resetAfterTokens: 3 }, "*", "\"error\""]
  ] as const

  it.each(midStream)("%s after the first token ends the stream with an error event, partial, never retried", async (_, f, reason, code) => {
    await faults("a", f)
    const seenB = (await Effect.runPromise(sims.get("b")!.stats)).completed
    const result = await streamChat(gw.url, body(reason === "DegenerateOutput" ? { max_tokens: 600, sim_output_tokens: undefined } : {}))
    expect(result.status).toBe(200)
    expect(result.headers["x-sluice-backend"]).toBe("a")
    const last = result.events.at(-1)!
    expect(last).toContain(code === "\"error\"" ? code : `"code":"${code}"`)
    expect(result.events).not.toContain("[DONE]")
    const record = await eventually(lastRecord, (r) => r.outcome === "partial")
    expect(record.outcome).toBe("partial")
    if (reason !== "*") expect(gw.lines.at(-1)?.error).toBe(reason)
    // Never retried: b served nothing new.
    expect((await Effect.runPromise(sims.get("b")!.stats)).completed).toBe(seenB)
    expect(await eventually(() => gw.held(), (h) => JSON.stringify(h) === JSON.stringify(idle))).toEqual(idle)
  })

  it("an out-of-memory crash fails every running sequence: OutOfMemory, partial", async () => {
    await faults("a", { oomRate: 1 })
    const result = await streamChat(gw.url, body())
    const last = result.events.at(-1) ?? ""
    if (result.status === 200 && result.headers["x-sluice-backend"] === "a") {
      expect(last).toContain("out of memory")
    } else {
      // The OOM hit before the first token: failed over.
      expect(result.headers["x-sluice-backend"]).toBe("b")
      const record = await lastRecord()
      expect(record.attempts[0]?.reason).toBe("OutOfMemory")
    }
  })

  it("a cold start (503 while loading) fails over", async () => {
    await faults("a", { coldStartSeconds: 600 })
    const result = await streamChat(gw.url, body())
    expect(result.headers["x-sluice-backend"]).toBe("b")
    const record = await lastRecord()
    expect(record.attempts[0]).toMatchObject({ backend: "a", reason: "Unavailable" })
  })

  it("opens the (model, H100) breaker after repeated failures, then skips it without spending attempts", async () => {
    await gw.close()
    sims.clear()
    gw = await makeGateway("{ min_requests: 4, degrade_at: 0.25, open_at: 0.5, open_for: 60s, window: 60s }")
    await faults("a", { errorRate: 1, errorStatus: 500 })
    for (let i = 0; i < 6; i++) await streamChat(gw.url, body())
    expect(await breakerOf("a")).toBe("open")
    expect(await breakerOf("b")).toBe("closed")
    const transitions = gw.breakers.transitions().filter((t) => t.key === "m|H100").map((t) => t.to)
    expect(transitions).toContain("open")
    const result = await streamChat(gw.url, body())
    expect(result.headers["x-sluice-backend"]).toBe("b")
    const record = await lastRecord()
    // Skipped, not attempted: no request reached a.
    expect(record.attempts.map((x) => x.reason)).toEqual(["BreakerOpen"])
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(metrics).toMatch(/sluice_breaker_state\{model="m",gpu="H100",state="open"\} 1/)
  })

  it("probes with a 1-token generation: a loading engine is cold (excluded), then healthy once loaded", async () => {
    await gw.close()
    sims.clear()
    gw = await makeGateway(undefined, true)
    const a = gw.fleet.all.find((x) => x.id === "a")!
    await faults("a", { coldStartSeconds: 600 })
    expect(await eventually(async () => a.health, (h) => h === "cold")).toBe("cold")
    await faults("a", { coldStartSeconds: 0 })
    expect(await eventually(async () => a.health, (h) => h === "healthy")).toBe("healthy")
  })

  it("marks a backend degraded, then unhealthy once enough of its streams fail after HTTP 200", async () => {
    await gw.close()
    sims.clear()
    gw = await makeGateway()
    await faults("a", { midStreamErrorRate: 1, midStreamAfterTokens: 2 })
    const backend = gw.fleet.all.find((x) => x.id === "a")!
    await streamChat(gw.url, body())
    expect(backend.health).toBe("degraded")
    // A failure rate of 100%, but unhealthy only with the minimum of evidence (health.min_samples).
    const { minSamples } = gw.plan.health
    for (let i = 1; i < minSamples - 1; i++) await streamChat(gw.url, body())
    expect(backend.health).toBe("degraded")
    await streamChat(gw.url, body())
    expect(backend.health).toBe("unhealthy")
  })
})
