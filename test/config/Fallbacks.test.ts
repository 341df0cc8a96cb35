/**
 * `models[].fallbacks` in the config: names (or aliases) of declared models, resolved to ids
 * in order; an unknown name, the model itself or a repeat is a config error naming the path.
 */
import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import * as Load from "../../src/config/Load.ts"
import { ModelId } from "../../src/domain/Ids.ts"

const parse = (models: string) =>
  Effect.runSyncExit(Load.parse(`
models:
${models}
backends:
  - { id: a, url: "http://127.0.0.1:9001/v1", models: [small, large, huge] }
`, "sluice.yaml", {}))

const errorOf = (models: string): string => {
  const exit = parse(models)
  if (Exit.isSuccess(exit)) throw new Error("expected a config error")
  const reason = exit.cause.reasons[0]
  if (reason?._tag !== "Fail") throw new Error("expected a typed failure")
  return reason.error.toString()
}

describe("models[].fallbacks", () => {
  it("resolves names and aliases to model ids, in order; defaults to none", () => {
    const exit = parse(`
  - { name: small, fallbacks: [big, huge] }
  - { name: large, aliases: [big] }
  - { name: huge }`)
    if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
    expect(exit.value.models.get(ModelId("small"))?.fallbacks).toEqual(["large", "huge"])
    expect(exit.value.models.get(ModelId("large"))?.fallbacks).toEqual([])
  })

  it("refuses an unknown model, the model itself and a repeat", () => {
    expect(errorOf(`
  - { name: small, fallbacks: [nope] }
  - { name: large }
  - { name: huge }`)).toContain("models[0].fallbacks[0]")
    expect(errorOf(`
  - { name: small, fallbacks: [small] }
  - { name: large }
  - { name: huge }`)).toContain("cannot fall back to itself")
    expect(errorOf(`
  - { name: small, fallbacks: [large, large] }
  - { name: large }
  - { name: huge }`)).toContain("models[0].fallbacks[1]")
  })
})
