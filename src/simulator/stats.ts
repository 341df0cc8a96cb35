/**
 * `EngineStats`: the snapshot of one simulator instance that tests and benchmarks read (in-process through
 * `RunningSimulator.stats`, over HTTP at `GET /admin/stats`).
 *
 * Owns: the shape and its computation from the engine. Must never: mutate anything.
 */
import type { Engine } from "./engine/engine.ts"

export interface EngineStats {
  readonly running: number
  readonly waiting: number
  /** vLLM's kv_cache_usage_perc (0–1): referenced blocks only; a warm, unreferenced prefix cache is free. */
  readonly kvUsage: number
  readonly freeBlocks: number
  readonly totalBlocks: number
  /** Blocks currently registered in the prefix cache (referenced or reusable). */
  readonly cachedBlocks: number
  /** Prefix-cache hits and queries, in tokens (vllm:prefix_cache_hits / queries). */
  readonly prefixHitTokens: number
  readonly prefixQueryTokens: number
  readonly preemptions: number
  readonly aborted: number
  /** Finished normally (stop or length). */
  readonly completed: number
  /** Failed inside the engine (mid-stream error, OOM). */
  readonly failed: number
  readonly promptTokens: number
  readonly generationTokens: number
  /** Open client TCP connections. */
  readonly openConnections: number
  /** Simulated time in seconds (engine clock). */
  readonly simulatedSeconds: number
  /** Simulated seconds added because the real-time loop fell behind the wall clock (host too slow for the time scale). */
  readonly lagSeconds: number
  /** True during a cold start. */
  readonly loading: boolean
  /** P/D: KV transfers offered to decode engines (prefill side), pulled in and missed (decode side). */
  readonly kvTransfersOut: number
  readonly kvTransfersIn: number
  readonly kvTransferMisses: number
  readonly kvTransferBytes: number
  /** P/D: prompt tokens admitted with their KV transferred in (not prefilled here). */
  readonly kvTransferTokens: number
}

export const engineStats = (engine: Engine<unknown>, openConnections: number, loading: boolean): EngineStats => {
  const c = engine.counters
  return {
    running: engine.numRunning,
    waiting: engine.numWaiting,
    kvUsage: engine.kv.usage,
    freeBlocks: engine.kv.freeBlocks,
    totalBlocks: engine.kv.numBlocks,
    cachedBlocks: engine.kv.cachedBlockCount,
    prefixHitTokens: c.prefixHits,
    prefixQueryTokens: c.prefixQueries,
    preemptions: c.preemptions,
    aborted: c.aborted,
    completed: c.finishedStop + c.finishedLength,
    failed: c.failed,
    promptTokens: c.promptTokens,
    generationTokens: c.generationTokens,
    openConnections,
    simulatedSeconds: engine.now / 1000,
    lagSeconds: c.lagMs / 1000,
    loading,
    kvTransfersOut: c.kvTransfersOut,
    kvTransfersIn: c.kvTransfersIn,
    kvTransferMisses: c.kvTransferMisses,
    kvTransferBytes: c.kvTransferBytes,
    kvTransferTokens: c.kvTransferTokens
  }
}
