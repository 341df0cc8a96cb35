/**
 * The engine launcher in a cluster worker: it reuses the engine the primary started for a
 * `simulate:` backend only while the backend still asks for that engine; after a reload
 * that changes the engine (profile, seed, models), the worker starts its own.
 */
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { EngineLauncher } from "../../src/backends/Fleet.ts"
import * as SimulatedFleet from "../../src/SimulatedFleet.ts"
import { planFromYaml } from "../support/Gateway.ts"

const backendOf = async (seed: number) =>
  (await planFromYaml(`backends:\n  - { id: s, simulate: { profile: llama-3.1-8b-fp8-h100, seed: ${seed}, time_scale: 0.1 }, models: [m] }\n`))
    .backends[0]!

const launch = (backend: Awaited<ReturnType<typeof backendOf>>) =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(EngineLauncher, (l) => l.launch(backend)).pipe(Effect.provide(SimulatedFleet.layer))))

describe("simulated engines shared by a cluster primary", () => {
  afterEach(() => {
    delete process.env["SLUICE_SIMULATED_URLS"]
  })

  it("reuses the primary's engine for the same backend, and starts a new one once the reload changed it", async () => {
    const started = await backendOf(1)
    process.env["SLUICE_SIMULATED_URLS"] = JSON.stringify({ s: { url: "http://127.0.0.1:9/v1", key: SimulatedFleet.engineKey(started) } })
    expect(await launch(await backendOf(1))).toBe("http://127.0.0.1:9/v1")
    const changed = await launch(await backendOf(2))
    expect(changed).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/)
    expect(changed).not.toBe("http://127.0.0.1:9/v1")
  }, 60_000)
})
