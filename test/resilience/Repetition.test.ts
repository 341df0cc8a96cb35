import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { RepetitionDetector } from "../../src/resilience/Repetition.ts"

const run = (tokens: ReadonlyArray<string>, d = new RepetitionDetector(64, 4, 5)) => tokens.findIndex((t) => d.push(t))

describe("RepetitionDetector", () => {
  it("flags a loop once an n-gram repeats max times inside the window", () => {
    const loop = Array.from({ length: 40 }, (_, i) => ["I", " will", " not", " stop", "."][i % 5]!)
    const at = run(loop)
    // 5 repeats of a 4-gram with period 5: the 5th occurrence ends at token 4*5+3 = 23.
    expect(at).toBe(23)
  })

  it("flags a single-token loop (newlines)", () => {
    expect(run(Array.from({ length: 20 }, () => "\n"))).toBe(7)
  })

  it("does not flag varied text", () => {
    const words = Array.from({ length: 500 }, (_, i) => ` w${(i * 7919) % 1000}`)
    expect(run(words, new RepetitionDetector(256, 8, 12))).toBe(-1)
  })

  it("forgets repeats that slid out of the window", () => {
    const d = new RepetitionDetector(16, 2, 3)
    const seq = ["a", "b", "a", "b", ...Array.from({ length: 20 }, (_, i) => `x${i}`), "a", "b"]
    expect(run(seq, d)).toBe(-1)
  })

  it("never holds more n-grams than the window", () => {
    fc.assert(fc.property(fc.array(fc.constantFrom("a", "b", "c", "d"), { maxLength: 400 }), (tokens) => {
      const d = new RepetitionDetector(32, 3, 1000)
      for (const t of tokens) d.push(t)
      const counts = (d as unknown as { counts: Map<string, number> }).counts
      const total = [...counts.values()].reduce((n, c) => n + c, 0)
      expect(total).toBeLessThanOrEqual(32)
      expect(total).toBe(Math.max(0, Math.min(tokens.length, 32) - 2))
    }))
  })
})
