/**
 * The prefix hashes and the approximate prefix index: chaining, longest-prefix match,
 * LRU order (tail evicted first), TTL, un-recording, and the bound (property test).
 */
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Estimate from "../../src/admission/Estimate.ts"
import * as Predict from "../../src/routing/Predict.ts"
import * as PrefixHash from "../../src/admission/PrefixHash.ts"
import { capacityFor, PrefixIndex } from "../../src/routing/PrefixIndex.ts"
import { text } from "./support.ts"

describe("PrefixHash", () => {
  it("hashes full blocks only, chained: a shared prefix shares exactly its leading hashes", () => {
    const system = text(640, 1) // 10 blocks of 64
    const a = PrefixHash.chain(system + "question one, about caches", 64, 512, "m")
    const b = PrefixHash.chain(system + "another question entirely here", 64, 512, "m")
    expect(a.length).toBe(10)
    expect([...a.slice(0, 10)]).toEqual([...b.slice(0, 10)])
    const c = PrefixHash.chain("x" + system, 64, 512, "m")
    expect(c[0]).not.toBe(a[0])
    // A change inside block 3 changes every hash from block 3 on (the chain).
    const edited = system.slice(0, 200) + "Z" + system.slice(201)
    const d = PrefixHash.chain(edited, 64, 512, "m")
    expect([...d.slice(0, 3)]).toEqual([...a.slice(0, 3)])
    for (let i = 3; i < 10; i++) expect(d[i]).not.toBe(a[i])
  })

  it("salts by model and bounds the number of blocks", () => {
    const t = text(64 * 20, 2)
    expect(PrefixHash.chain(t, 64, 512, "m")[0]).not.toBe(PrefixHash.chain(t, 64, 512, "n")[0])
    expect(PrefixHash.chain(t, 64, 8, "m")).toHaveLength(8)
    expect(PrefixHash.chain("short", 64, 8, "m")).toHaveLength(0)
  })

  it("the estimate carries the hashes and maps matched blocks to cached tokens", () => {
    const body = { model: "m", messages: [{ role: "user" as const, content: text(6400, 3) }] }
    const { estimate } = Estimate.estimate({ kind: "chat", body }, "chars", 16, { blockChars: 64, maxBlocks: 512, salt: "m" })
    expect(estimate.prefixHashes.length).toBe(Math.floor(estimate.promptChars / 64))
    expect(Predict.cachedTokens(estimate, 0)).toBe(0)
    const half = Predict.cachedTokens(estimate, Math.floor(estimate.prefixHashes.length / 2))
    expect(half / estimate.promptTokens).toBeGreaterThan(0.45)
    expect(half / estimate.promptTokens).toBeLessThan(0.55)
    expect(Predict.cachedTokens(estimate, 10_000)).toBe(estimate.promptTokens - 1)
  })
})

describe("PrefixIndex", () => {
  const hashes = (n: number, seed: number) => PrefixHash.chain(text(64 * n, seed), 64, 512, "m")

  it("matches the longest recorded prefix per backend", () => {
    const index = new PrefixIndex(60_000)
    const h = hashes(10, 1)
    index.record("a", h.slice(0, 6), 0, 1000)
    expect(index.match("a", h, 1)).toBe(6)
    expect(index.match("b", h, 1)).toBe(0)
  })

  it("evicts least recently used entries, the tail of a prompt before its head", () => {
    const index = new PrefixIndex(60_000)
    const h = hashes(8, 2)
    index.record("a", h, 0, 8)
    index.record("a", hashes(2, 3), 1, 8) // two new entries push out two old ones: h[7], h[6]
    expect(index.size("a")).toBe(8)
    expect(index.match("a", h, 2)).toBe(6)
  })

  it("treats entries older than the TTL as absent", () => {
    const index = new PrefixIndex(1000)
    const h = hashes(4, 4)
    index.record("a", h, 0, 100)
    expect(index.match("a", h, 999)).toBe(4)
    expect(index.match("a", h, 1001)).toBe(0)
  })

  it("forgets what an attempt added beyond what it matched, and clears a backend", () => {
    const index = new PrefixIndex(60_000)
    const h = hashes(6, 5)
    index.record("a", h.slice(0, 2), 0, 100)
    index.record("a", h, 1, 100)
    index.forget("a", h, 2)
    expect(index.match("a", h, 2)).toBe(2)
    index.clear("a")
    expect(index.size("a")).toBe(0)
  })

  it("sizes a backend's capacity from its KV cache (GIE's lru_capacity)", () => {
    expect(capacityFor(200_000, 430_000, 64)).toBe(26_875)
    expect(capacityFor(1000, 430_000, 64)).toBe(1000)
  })

  it("property: never exceeds its bound, whatever is recorded", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.record({ backend: fc.constantFrom("a", "b", "c"), blocks: fc.integer({ min: 0, max: 40 }), seed: fc.integer() }), { maxLength: 60 }),
        (capacity, ops) => {
          const index = new PrefixIndex(60_000)
          ops.forEach((op, t) => {
            index.record(op.backend, hashes(op.blocks, op.seed), t, capacity)
            for (const b of ["a", "b", "c"]) if (index.size(b) > capacity) return false
          })
          return true
        }
      ),
      { numRuns: 200 }
    )
  })
})
