/**
 * Engine core: block accounting, prefix cache, preemption, abort, FCFS, chunked prefill and the step-time formula.
 */
import { describe, expect, it } from "vitest"
import { Engine, type EngineConfig } from "../../src/simulator/engine/engine.ts"
import type { Sequence, SequenceSpec } from "../../src/simulator/engine/sequence.ts"

const tiny: EngineConfig = {
  c0Ms: 1,
  prefillMsPerToken: 0.01,
  decodeMsPerSeq: 0.1,
  kvMsPerContextToken: 0.001,
  numGpuBlocks: 64,
  blockSize: 16,
  maxNumBatchedTokens: 256,
  maxNumSeqs: 8,
  maxModelLen: 1024
}

const tokens = (n: number, base: number): Uint32Array => Uint32Array.from({ length: n }, (_, i) => base + i)

const spec = (prompt: Uint32Array, out: number, withIds = true): SequenceSpec => ({
  prompt,
  outputTokens: out,
  outputIds: withIds ? tokens(out, 900_000 + prompt[0]!) : undefined,
  finish: "stop"
})

const runToIdle = <S>(engine: Engine<S>, limit = 100_000): number => {
  let steps = 0
  while (engine.hasWork && steps < limit) {
    engine.step()
    steps++
    expect(engine.checkInvariants()).toEqual([])
  }
  return steps
}

describe("engine: block accounting", () => {
  it("frees every block after all sequences finish or abort, keeping cached blocks reusable", () => {
    const engine = new Engine<number>(tiny, { jitter: 0, seed: 1 })
    const seqs: Array<Sequence<number>> = []
    for (let i = 0; i < 10; i++) seqs.push(engine.submit(spec(tokens(20 + i * 7, i * 1000), 5 + i), i))
    engine.step()
    engine.step()
    engine.abort(seqs[3]!)
    engine.abort(seqs[9]!)
    runToIdle(engine)
    expect(engine.kv.usedBlocks).toBe(0)
    expect(engine.kv.freeBlocks).toBe(tiny.numGpuBlocks)
    expect(engine.kv.usage).toBe(0)
    expect(engine.kv.cachedBlockCount).toBeGreaterThan(0)
    expect(engine.counters.aborted).toBe(2)
    expect(engine.counters.finishedStop).toBe(8)
    // the warm cache is reusable: the same prompt again hits it
    const again = engine.submit(spec(tokens(20 + 4 * 7, 4 * 1000), 3), 99)
    engine.step()
    expect(again.cachedPromptTokens).toBe(Math.floor((48 - 1) / 16) * 16)
  })
})

describe("engine: prefix cache", () => {
  for (const isl of [17, 32, 33, 100, 257]) {
    it(`a second identical prompt of ${isl} tokens gets floor((ISL−1)/16)·16 cached tokens`, () => {
      const engine = new Engine<number>(tiny, { jitter: 0, seed: 1 })
      const first = engine.submit(spec(tokens(isl, 5), 4), 1)
      runToIdle(engine)
      expect(first.cachedPromptTokens).toBe(0)
      const second = engine.submit(spec(tokens(isl, 5), 4), 2)
      runToIdle(engine)
      const expected = Math.floor((isl - 1) / 16) * 16
      expect(second.cachedPromptTokens).toBe(expected)
      expect(engine.counters.prefixHits).toBe(expected)
      expect(engine.counters.prefixQueries).toBe(2 * isl)
    })
  }

  it("shares a common prefix between different prompts, block by block", () => {
    const engine = new Engine<number>(tiny, { jitter: 0, seed: 1 })
    const shared = tokens(40, 7)
    engine.submit(spec(Uint32Array.from([...shared, 1, 2, 3]), 2), 1)
    runToIdle(engine)
    const b = engine.submit(spec(Uint32Array.from([...shared, 9, 9, 9, 9, 9]), 2), 2)
    runToIdle(engine)
    expect(b.cachedPromptTokens).toBe(32) // two full shared blocks; the third differs
  })

  it("evicts least-recently-freed blocks first, the tail block of a finished request before its head", () => {
    const small: EngineConfig = { ...tiny, numGpuBlocks: 8, maxModelLen: 128 }
    const engine = new Engine<number>(small, { jitter: 0, seed: 1 })
    engine.submit(spec(tokens(64, 1), 1, false), 1) // 4 full prompt blocks cached, 5 blocks used
    runToIdle(engine)
    expect(engine.kv.cachedBlockCount).toBe(4)
    engine.submit(spec(tokens(48, 500), 1, false), 2) // needs 4 blocks: 3 never-used free blocks + 1 eviction
    runToIdle(engine)
    const again = engine.submit(spec(tokens(64, 1), 1, false), 3)
    engine.step()
    // the evicted block was the tail (4th) block, so the first three still hit
    expect(again.cachedPromptTokens).toBe(48)
  })
})

describe("engine: preemption", () => {
  it("preempts the newest running sequence by recompute when blocks run out, and everything still finishes", () => {
    const small: EngineConfig = { ...tiny, numGpuBlocks: 12, maxModelLen: 192 }
    const engine = new Engine<number>(small, { jitter: 0, seed: 1 })
    const seqs = [0, 1, 2].map((i) => engine.submit(spec(tokens(48, i * 10_000), 64), i))
    runToIdle(engine)
    expect(engine.counters.preemptions).toBeGreaterThan(0)
    expect(seqs[0]!.preemptions).toBe(0) // the oldest is never the victim
    expect(seqs[2]!.preemptions).toBeGreaterThan(0)
    for (const s of seqs) {
      expect(s.status).toBe("finished")
      expect(s.outputCount).toBe(64)
    }
    expect(engine.kv.usedBlocks).toBe(0)
  })
})

describe("engine: abort", () => {
  it("frees a running sequence's slot and blocks at once; a queued request takes the slot on the next step", () => {
    const cfg: EngineConfig = { ...tiny, maxNumSeqs: 1 }
    const engine = new Engine<number>(cfg, { jitter: 0, seed: 1 })
    const a = engine.submit(spec(tokens(40, 1), 100), 1)
    const b = engine.submit(spec(tokens(40, 2), 100), 2)
    engine.step()
    expect(engine.numRunning).toBe(1)
    expect(engine.kv.usedBlocks).toBe(3)
    expect(engine.abort(a)).toBe(true)
    expect(engine.numRunning).toBe(0)
    expect(engine.kv.usedBlocks).toBe(0)
    expect(engine.abort(a)).toBe(false)
    const r = engine.step()
    expect(r.emitted).toContain(b)
    expect(engine.counters.aborted).toBe(1)
  })

  it("removes a waiting sequence from the queue", () => {
    const engine = new Engine<number>({ ...tiny, maxNumSeqs: 1 }, { jitter: 0, seed: 1 })
    engine.submit(spec(tokens(10, 1), 3), 1)
    const queued = engine.submit(spec(tokens(10, 2), 3), 2)
    engine.step()
    expect(engine.numWaiting).toBe(1)
    engine.abort(queued)
    expect(engine.numWaiting).toBe(0)
    expect(queued.status).toBe("aborted")
  })
})

describe("engine: scheduling", () => {
  it("admits waiting requests first-come first-served under the sequence cap", () => {
    const engine = new Engine<number>({ ...tiny, maxNumSeqs: 2 }, { jitter: 0, seed: 1 })
    const seqs = [0, 1, 2, 3].map((i) => engine.submit(spec(tokens(10, i * 100), 3 + i), i))
    const firstTokenStep = new Map<number, number>()
    for (let step = 0; engine.hasWork; step++) {
      for (const s of engine.step().emitted) if (!firstTokenStep.has(s.sink)) firstTokenStep.set(s.sink, step)
    }
    expect([...firstTokenStep.keys()]).toEqual([0, 1, 2, 3])
    expect(firstTokenStep.get(2)!).toBeGreaterThan(firstTokenStep.get(1)!)
    expect(seqs.every((s) => s.status === "finished")).toBe(true)
  })

  it("chunks a long prefill over the token budget", () => {
    const engine = new Engine<number>(tiny, { jitter: 0, seed: 1 })
    const s = engine.submit(spec(tokens(600, 1), 2), 1)
    const prefill: Array<number> = []
    while (s.firstTokenMs < 0) prefill.push(engine.step().prefillTokens)
    expect(prefill).toEqual([256, 256, 88])
  })

  it("times a step with c0 + c_pf·P + c_dec·D + c_kv·Σctx", () => {
    const engine = new Engine<number>(tiny, { jitter: 0, seed: 1 })
    engine.submit(spec(tokens(100, 1), 3), 1)
    const prefill = engine.step()
    expect(prefill.durationMs).toBeCloseTo(1 + 0.01 * 100 + 0.001 * 100, 9)
    const decode = engine.step() // context 101
    expect(decode.decodeSeqs).toBe(1)
    expect(decode.durationMs).toBeCloseTo(1 + 0.1 + 0.001 * 101, 9)
    engine.slow = 3
    expect(engine.step().durationMs).toBeCloseTo(3 * (1 + 0.1 + 0.001 * 102), 9)
  })

  it("keeps jitter within ±jitter and reproducible under the seed", () => {
    const durations = (seed: number) => {
      const engine = new Engine<number>(tiny, { jitter: 0.1, seed })
      engine.submit(spec(tokens(10, 1), 200), 1)
      const out: Array<number> = []
      while (engine.hasWork) out.push(engine.step().durationMs)
      return out
    }
    const a = durations(7)
    expect(durations(7)).toEqual(a)
    expect(durations(8)).not.toEqual(a)
    const base = 1 + 0.1 + 0.001 * 15 // a typical decode step
    for (const d of a.slice(1)) {
      expect(d).toBeGreaterThan(base * 0.89)
      expect(d).toBeLessThan((1 + 0.1 + 0.001 * 215) * 1.11)
    }
  })

  it("reports KV usage as 1 − free/total, with unreferenced cached blocks counted free", () => {
    const engine = new Engine<number>(tiny, { jitter: 0, seed: 1 })
    engine.submit(spec(tokens(64, 1), 10), 1)
    engine.step() // 64 prompt tokens computed: 4 blocks (the sampled token's slot comes with the next step)
    expect(engine.kv.usage).toBeCloseTo(4 / 64, 9)
    engine.step()
    expect(engine.kv.usage).toBeCloseTo(5 / 64, 9)
    runToIdle(engine)
    expect(engine.kv.usage).toBe(0)
  })
})
