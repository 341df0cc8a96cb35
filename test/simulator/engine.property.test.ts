/**
 * Property: under arbitrary interleavings of submit, abort and step, the KV pool stays consistent
 * (free + used = total, refcounts ≥ 0 and equal to block-table entries, no running sequence without blocks),
 * and once everything has finished or been aborted no block is held.
 */
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { Engine, type EngineConfig } from "../../src/simulator/engine/engine.ts"
import type { Sequence } from "../../src/simulator/engine/sequence.ts"

const config: EngineConfig = {
  c0Ms: 1,
  prefillMsPerToken: 0.01,
  decodeMsPerSeq: 0.1,
  kvMsPerContextToken: 0.001,
  numGpuBlocks: 24,
  blockSize: 16,
  maxNumBatchedTokens: 64,
  maxNumSeqs: 4,
  maxModelLen: 256
}

type Op =
  | { readonly op: "submit"; readonly prefix: number; readonly len: number; readonly out: number; readonly ids: boolean }
  | { readonly op: "abort"; readonly pick: number }
  | { readonly op: "step"; readonly n: number }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constant("submit" as const),
    prefix: fc.integer({ min: 0, max: 3 }), // few distinct prefixes ⇒ many prefix-cache hits
    len: fc.integer({ min: 1, max: 120 }),
    out: fc.integer({ min: 1, max: 100 }),
    ids: fc.boolean()
  }),
  fc.record({ op: fc.constant("abort" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("step" as const), n: fc.integer({ min: 1, max: 8 }) })
)

describe("engine property: block accounting invariants", () => {
  it("hold under random submit/abort/step sequences", () => {
    let preemptions = 0
    let hits = 0
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 80 }), fc.integer({ min: 1, max: 1000 }), (ops, seed) => {
        const engine = new Engine<number>(config, { jitter: 0.1, seed })
        const live: Array<Sequence<number>> = []
        let n = 0
        for (const o of ops) {
          if (o.op === "submit") {
            const prompt = Uint32Array.from({ length: o.len }, (_, i) => (i < 48 ? o.prefix * 1000 + i : n * 7919 + i))
            const outputIds = o.ids ? Uint32Array.from({ length: o.out }, (_, i) => 50_000 + i) : undefined
            live.push(engine.submit({ prompt, outputTokens: o.out, outputIds, finish: "stop" }, n++))
          } else if (o.op === "abort") {
            if (live.length > 0) engine.abort(live[o.pick % live.length]!)
          } else {
            for (let i = 0; i < o.n && engine.hasWork; i++) engine.step()
          }
          expect(engine.checkInvariants()).toEqual([])
          const kv = engine.kv
          expect(kv.freeBlocks + kv.usedBlocks).toBe(config.numGpuBlocks)
        }
        for (let guard = 0; engine.hasWork && guard < 100_000; guard++) engine.step()
        expect(engine.hasWork).toBe(false)
        expect(engine.checkInvariants()).toEqual([])
        expect(engine.kv.usedBlocks).toBe(0)
        preemptions += engine.counters.preemptions
        hits += engine.counters.prefixHits
        for (const s of live) {
          expect(s.done).toBe(true)
          if (s.status === "finished") expect(s.outputCount).toBe(s.spec.outputTokens)
        }
      }),
      { numRuns: 300 }
    )
    // the generated workloads do exercise preemption and prefix hits
    expect(preemptions).toBeGreaterThan(0)
    expect(hits).toBeGreaterThan(0)
  })
})
