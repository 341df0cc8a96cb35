/**
 * The configuration example in README.md is a real config: it must decode into a plan.
 */
import { Effect, Exit } from "effect"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import * as Load from "../../src/config/Load.ts"

describe("README configuration example", () => {
  it("is accepted by the loader", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8")
    const section = readme.slice(readme.indexOf("## Configuration"))
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1]
    expect(yaml).toBeDefined()
    const exit = Effect.runSyncExit(Load.parse(yaml!, "README.md", { VLLM_KEY: "sk-test" }))
    if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
    expect(exit.value.backends.map((b) => b.id)).toEqual(["vllm-h100-a", "sim-a100"])
  })
})
