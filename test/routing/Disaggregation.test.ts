/**
 * Prefill/decode disaggregation end to end: the real gateway in front of two simulated
 * engines, one `role: prefill` and one `role: decode`. A long prompt runs as two legs (the
 * prefill engine offers the KV, the decode engine pulls it and skips that prefill); a short
 * one runs on the decode engine alone; a failed prefill leg falls back to a local prefill.
 */
import { Effect, Exit, Layer, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { EngineLauncher, FleetError } from "../../src/backends/Fleet.ts"
import * as Simulator from "../../src/simulator/Simulator.ts"
import { streamChat } from "../support/Client.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"
import { text } from "./support.ts"

describe("prefill/decode disaggregation", () => {
  const scope = Effect.runSync(Scope.make())
  const sims = new Map<string, Simulator.RunningSimulator>()
  let gw: TestGateway

  const launcher = Layer.succeed(EngineLauncher, EngineLauncher.of({
    launch: (backend) =>
      Simulator.start({ profile: "llama-3.1-8b-fp8-h100", model: "m", timeScale: 20, jitter: 0, kvTransferGBps: 25 }).pipe(
        Effect.tap((sim) => Effect.sync(() => sims.set(backend.id, sim))),
        Effect.map((sim) => `${sim.url}/v1`),
        Effect.mapError((e) => new FleetError({ backend: backend.id, message: e.message })),
        Scope.provide(scope)
      )
  }))
  const stats = (id: string) => Effect.runPromise(sims.get(id)!.stats)
  const body = (content: string) => ({
    model: "m",
    messages: [{ role: "system", content }, { role: "user", content: "Summarise." }],
    stream: true,
    max_tokens: 32,
    sim_output_tokens: 16,
    stream_options: { include_usage: true }
  })
  const usageOf = (events: ReadonlyArray<string>) => {
    const last = events.filter((e) => e.includes("\"usage\"") && e.includes("prompt_tokens")).at(-1)
    return last === undefined ? undefined : (JSON.parse(last) as { usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } } }).usage
  }

  beforeAll(async () => {
    gw = await startGateway(`
backends:
  - { id: p, simulate: { profile: llama-3.1-8b-fp8-h100 }, models: [m], role: prefill, gpu: H100 }
  - { id: d, simulate: { profile: llama-3.1-8b-fp8-h100 }, models: [m], role: decode, gpu: H100 }
routing: { pd_min_prompt_tokens: 256 }
health: { probe_interval: 1h }
`, { launcher })
  })
  afterAll(async () => {
    await gw?.close()
    await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  it("runs a long prompt as two legs: the decode engine receives the KV instead of prefilling it", async () => {
    const result = await streamChat(gw.url, body(text(8000, 1)))
    expect(result.status).toBe(200)
    expect(result.headers["x-sluice-backend"]).toBe("d")
    const usage = usageOf(result.events)!
    expect(usage.prompt_tokens).toBeGreaterThan(1000)
    // The decode engine reports the transferred prompt as cached (it did not compute it).
    expect(usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(usage.prompt_tokens - 32)
    const [p, d] = [await stats("p"), await stats("d")]
    expect(p.kvTransfersOut).toBe(1)
    expect(d.kvTransfersIn).toBe(1)
    expect(d.kvTransferBytes).toBe(usage.prompt_tokens * 64 * 1024)
    expect(d.kvTransferTokens).toBeGreaterThan(1000)
    expect(await eventually(() => gw.held(), (h) => JSON.stringify(h) === JSON.stringify(idle))).toEqual(idle)
  })

  it("serves a short prompt on the decode engine alone", async () => {
    const before = await stats("p")
    const result = await streamChat(gw.url, body("Be brief."))
    expect(result.status).toBe(200)
    expect(result.headers["x-sluice-backend"]).toBe("d")
    expect((await stats("p")).kvTransfersOut).toBe(before.kvTransfersOut)
  })

  it("falls back to a local prefill when the prefill leg fails", async () => {
    await Effect.runPromise(sims.get("p")!.setFaults({ errorRate: 1, errorStatus: 500 }))
    const before = await stats("d")
    const result = await streamChat(gw.url, body(text(8000, 2)))
    expect(result.status).toBe(200)
    expect(result.headers["x-sluice-backend"]).toBe("d")
    const after = await stats("d")
    expect(after.kvTransfersIn).toBe(before.kvTransfersIn)
    expect(usageOf(result.events)!.prompt_tokens_details.cached_tokens).toBe(0)
    await Effect.runPromise(sims.get("p")!.setFaults({ errorRate: 0 }))
  })
})
