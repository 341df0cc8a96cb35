/**
 * The dependency rules of ARCHITECTURE.md §7, enforced: dependency-cruiser runs the rules in
 * `.dependency-cruiser.cjs` over src/ and examples/ (every import, type-only ones included),
 * and the folder graph derived from the same cruise must be acyclic.
 */
import { cruise, type ICruiseResult, type IConfiguration } from "dependency-cruiser"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { describe, expect, it } from "vitest"

const require = createRequire(import.meta.url)
const rules = require("../../.dependency-cruiser.cjs") as IConfiguration

const run = async (): Promise<ICruiseResult> => {
  // examples/ is cruised whenever it exists (a clean clone before the examples land has none).
  const result = await cruise(["src", "examples"].filter((dir) => existsSync(dir)), {
    validate: true,
    ruleSet: { forbidden: rules.forbidden ?? [] },
    ...rules.options,
    outputType: "json"
  })
  const output = result.output
  if (typeof output === "string") return JSON.parse(output) as ICruiseResult
  return output
}

/**
 * The folder of a module under src/, or undefined outside src/. Root files and cli/ are one
 * layer, the composition root (main.ts runs the command line, which starts the graph).
 */
const folderOf = (path: string): string | undefined => {
  const m = /^src\/(?:([^/]+)\/)?[^/]*$/.exec(path) ?? /^src\/([^/]+)\//.exec(path)
  if (m === null) return undefined
  const folder = m[1] ?? "<root>"
  return folder === "cli" ? "<root>" : folder
}

describe("dependency rules", () => {
  let result: ICruiseResult

  it("has no violation of the rules file", async () => {
    result = await run()
    const violations = result.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)
    expect(violations).toEqual([])
    // A cruise that saw nothing would pass vacuously.
    expect(result.summary.totalCruised).toBeGreaterThan(100)
  }, 60_000)

  it("has an acyclic folder graph", async () => {
    result ??= await run()
    const edges = new Map<string, Set<string>>()
    for (const m of result.modules) {
      const from = folderOf(m.source)
      if (from === undefined) continue
      for (const d of m.dependencies) {
        const to = folderOf(d.resolved)
        if (to === undefined || to === from) continue
        let set = edges.get(from)
        if (set === undefined) edges.set(from, set = new Set())
        set.add(to)
      }
    }
    // Depth-first search for a back edge; reports the cycle it finds.
    const state = new Map<string, "open" | "done">()
    const stack: Array<string> = []
    let cycle: Array<string> | undefined
    const visit = (node: string): void => {
      if (cycle !== undefined) return
      state.set(node, "open")
      stack.push(node)
      for (const next of edges.get(node) ?? []) {
        if (state.get(next) === "open") {
          cycle = [...stack.slice(stack.indexOf(next)), next]
          return
        }
        if (state.get(next) === undefined) visit(next)
      }
      stack.pop()
      state.set(node, "done")
    }
    for (const node of edges.keys()) if (state.get(node) === undefined) visit(node)
    expect(cycle?.join(" → ")).toBeUndefined()
    expect(edges.size).toBeGreaterThan(5)
  }, 60_000)
})
