/**
 * Standalone configuration: CLI flags and the fleet YAML file (including the example in config/simulator).
 */
import { NodeFileSystem } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Result } from "effect"
import { fleetOptions, loadFleetFile, parseCli } from "../../src/simulator/fleet.ts"

describe("simulator CLI flags", () => {
  it("parses a single instance", () => {
    const r = parseCli(["--profile", "llama-3.3-70b-fp8-2xh100", "--model=big", "--port", "9001", "--time-scale", "10",
      "--faults", `{"errorRate":0.5}`])
    assert.isTrue(Result.isSuccess(r))
    if (Result.isSuccess(r) && r.success._tag === "Single") {
      expect(r.success.options).toMatchObject({ profile: "llama-3.3-70b-fp8-2xh100", model: "big", port: 9001, timeScale: 10 })
      expect(r.success.options.faults).toEqual({ errorRate: 0.5 })
    } else assert.fail("expected a single instance")
  })

  it("rejects unknown flags, profiles and fault keys", () => {
    assert.isTrue(Result.isFailure(parseCli(["--nope", "1"])))
    assert.isTrue(Result.isFailure(parseCli(["--profile", "gpt-5-on-a-toaster"])))
    assert.isTrue(Result.isFailure(parseCli(["--faults", `{"explode":true}`])))
    expect(parseCli(["--fleet", "x.yaml"])).toEqual(Result.succeed({ _tag: "Fleet", path: "x.yaml" }))
  })

  it("merges fleet defaults into instances and rejects unknown keys with their path", () => {
    const ok = fleetOptions({
      defaults: { timeScale: 5, faults: { slow: 2 } },
      instances: [{ profile: "llama-3.1-8b-fp8-h100", model: "a", faults: { errorRate: 0.1 } }]
    })
    assert.isTrue(Result.isSuccess(ok))
    if (Result.isSuccess(ok)) expect(ok.success[0]).toMatchObject({ timeScale: 5, faults: { slow: 2, errorRate: 0.1 } })
    const bad = fleetOptions({ instances: [{ profile: "llama-3.1-8b-fp8-h100", model: "a", colour: "red" }] })
    assert.isTrue(Result.isFailure(bad))
    if (Result.isFailure(bad)) expect(bad.failure).toContain("colour")
  })

  it.effect("loads the example fleet file", () =>
    Effect.gen(function*() {
      const options = yield* loadFleetFile("config/simulator/fleet.yaml")
      expect(options.length).toBeGreaterThanOrEqual(4)
      expect(new Set(options.map((o) => o.dialect ?? "openai"))).toEqual(new Set(["openai", "sglang", "anthropic", "ollama"]))
      const missing = yield* Effect.exit(loadFleetFile("config/simulator/does-not-exist.yaml"))
      assert.isTrue(Exit.isFailure(missing))
    }).pipe(Effect.provide(NodeFileSystem.layer)))
})
