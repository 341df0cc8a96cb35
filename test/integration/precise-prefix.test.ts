/**
 * Precise prefix routing through the real gateway: two simulated engines with small KV caches publish their
 * KV events; the backend actors subscribe, and the `prefix_cache` scorer follows where the blocks actually
 * are: to the engine that holds a prompt's blocks even when the gateway never sent it there, and away from the
 * engine the gateway did send it to once that engine has evicted them (where the approximate index, which only
 * knows what the gateway sent where, would still point).
 */
import { Effect, Layer, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { EngineLauncher, FleetError } from "../../src/backends/Fleet.ts"
import * as Simulator from "../../src/simulator/Simulator.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

const KV_BLOCKS = 96 // 1,536 tokens: a handful of ~200-token prompts evicts

describe("precise prefix routing from engine KV events", () => {
  const scope = Effect.runSync(Scope.make())
  const sims = new Map<string, Simulator.RunningSimulator>()
  let gw: TestGateway

  const launcher = Layer.succeed(EngineLauncher, EngineLauncher.of({
    launch: (backend) =>
      Simulator.start({
        profile: "llama-3.1-8b-fp8-h100",
        model: "m",
        timeScale: 20,
        jitter: 0,
        seed: backend.id === "a" ? 1 : 2,
        kvBlocks: KV_BLOCKS
      }).pipe(
        Effect.tap((sim) => Effect.sync(() => sims.set(backend.id, sim))),
        Effect.map((sim) => `${sim.url}/v1`),
        Effect.mapError((e) => new FleetError({ backend: backend.id, message: e.message })),
        Scope.provide(scope)
      )
  }))

  const doc = (name: string) => `Document ${name}. ` + `The ${name} river keeps its own counsel in the valley below the hills. `.repeat(12)
  const body = (content: string) => ({ model: "m", messages: [{ role: "user", content }], max_tokens: 1 })

  /** Through the gateway; returns the backend that served it. */
  const viaGateway = async (content: string): Promise<string> => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body(content))
    })
    expect(res.status).toBe(200)
    await res.text()
    return res.headers.get("x-sluice-backend")!
  }
  /** Straight to one engine, behind the gateway's back. */
  const direct = async (id: string, content: string): Promise<void> => {
    const res = await fetch(`${sims.get(id)!.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body(content))
    })
    expect(res.status).toBe(200)
    await res.text()
  }
  const index = (id: string) => gw.fleet.byId(id as never)!.kvBlocks!
  const batchesApplied = (id: string) => index(id).batches

  beforeAll(async () => {
    gw = await startGateway(`
models:
  - { name: m }
backends:
  - { id: a, simulate: { profile: llama-3.1-8b-fp8-h100 }, models: [m], gpu: H100, max_concurrency: 16 }
  - { id: b, simulate: { profile: llama-3.1-8b-fp8-h100 }, models: [m], gpu: H100, max_concurrency: 16 }
routing:
  policy: inference
  scorers: { prefix_cache: 1 }
  picker: max_score
`, { launcher })
    await eventually(async () => [index("a").live, index("b").live], (xs) => xs.every(Boolean), 5000)
  }, 30_000)
  afterAll(async () => {
    await gw?.close()
    await Effect.runPromise(Scope.close(scope, Effect.void as never))
  })

  it("simulated backends subscribe by default and learn the engine's block size", () => {
    expect(gw.plan.backends.every((b) => b.kvEvents)).toBe(true)
    expect(index("a").blockSizeTokens).toBe(16)
  })

  it("goes where the blocks are, even when the gateway never sent the prompt there", async () => {
    const before = batchesApplied("b")
    await direct("b", doc("alpha"))
    await eventually(async () => batchesApplied("b"), (n) => n > before, 5000)
    for (let i = 0; i < 3; i++) expect(await viaGateway(doc("alpha"))).toBe("b")
    const beforeA = batchesApplied("a")
    await direct("a", doc("beta"))
    await eventually(async () => batchesApplied("a"), (n) => n > beforeA, 5000)
    expect(await viaGateway(doc("beta"))).toBe("a")
  })

  it("follows an eviction: once the engine it sent a prompt to has evicted it, the prompt goes where it now lives", async () => {
    // The gateway sends gamma somewhere (X); the approximate index records it there.
    const x = await viaGateway(doc("gamma"))
    const y = x === "a" ? "b" : "a"
    expect(await viaGateway(doc("gamma"))).toBe(x)
    // X evicts gamma: its small cache is filled with other prompts sent behind the gateway's back.
    for (let i = 0; i < 10; i++) await direct(x, doc(`filler-${i}`))
    // Y gets gamma behind the gateway's back.
    const beforeY = batchesApplied(y)
    await direct(y, doc("gamma"))
    await eventually(async () => batchesApplied(y), (n) => n > beforeY, 5000)
    await eventually(async () => index(x).size, (n) => n > 0, 5000)
    expect(await viaGateway(doc("gamma"))).toBe(y)
  })

  it("an engine reset (its connections, the event stream included, cut) empties that engine's index after the reconnect's replay", async () => {
    await direct("a", doc("delta"))
    await eventually(async () => index("a").size, (n) => n > 0, 5000)
    const resyncs = index("a").resyncs
    const res = await fetch(`${sims.get("a")!.url}/admin/crash`, { method: "POST", body: JSON.stringify({ mode: "reset" }) })
    expect(res.status).toBe(202)
    await eventually(async () => index("a").size, (n) => n === 0, 5000)
    // The stream comes back on the same engine incarnation: a replay, not a resync.
    await eventually(async () => index("a").live, (live) => live, 5000)
    expect(index("a").resyncs).toBe(resyncs)
    // Routing follows: b holds delta now, a does not.
    await direct("b", doc("delta"))
    await eventually(async () => index("b").size, (n) => n > 0, 5000)
    expect(await viaGateway(doc("delta"))).toBe("b")
  })

  it("exposes each engine's precise index on /metrics", async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text()
    expect(text).toMatch(/sluice_kv_index_live\{[^}]*backend="a"[^}]*\} 1\b/)
    expect(text).toMatch(/sluice_kv_index_blocks\{[^}]*backend="b"[^}]*\} [1-9]/)
    expect(text).toMatch(/sluice_kv_index_resyncs\{[^}]*backend="b"[^}]*\} 0\b/)
  })
})
