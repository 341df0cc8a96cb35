/**
 * The engine's own statistics: monotonic counters and fixed-bucket histograms, in engine (simulated) time.
 *
 * Owns: the numbers `/metrics` exposes (vLLM and SGLang names are chosen by the wire, not here) and the
 * bucket boundaries, which are vLLM's.
 * Must never: format text or know about HTTP; reset a counter (Prometheus counters only go up).
 */

export class Histogram {
  readonly counts: Float64Array
  sum = 0
  count = 0
  constructor(readonly buckets: ReadonlyArray<number>) {
    this.counts = new Float64Array(buckets.length)
  }
  observe(value: number): void {
    this.sum += value
    this.count++
    const b = this.buckets
    for (let i = 0; i < b.length; i++) {
      if (value <= b[i]!) {
        this.counts[i]!++
        return
      }
    }
  }
}

// vLLM v1 bucket boundaries (seconds), vllm/v1/metrics/loggers.py.
export const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0,
  640.0, 2560.0
]
export const ITL_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0
]
export const E2E_BUCKETS = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
  1920.0, 7680.0
]

export class EngineCounters {
  promptTokens = 0
  generationTokens = 0
  prefixQueries = 0
  prefixHits = 0
  preemptions = 0
  finishedStop = 0
  finishedLength = 0
  aborted = 0
  failed = 0
  steps = 0
  /** P/D: transfers served to decode engines (prefill side) and received (decode side), and their size. */
  kvTransfersOut = 0
  kvTransfersIn = 0
  kvTransferMisses = 0
  kvTransferBytes = 0
  /** Prompt tokens admitted as already computed because their KV was transferred in. */
  kvTransferTokens = 0
  /**
   * Simulated ms the real-time driver added because it fell behind the wall clock (the host could not keep up
   * with the time scale). 0 under the virtual-time driver.
   */
  lagMs = 0
  /** Exponentially smoothed generation throughput (tokens per simulated second). */
  genThroughput = 0
  readonly ttft = new Histogram(TTFT_BUCKETS)
  readonly itl = new Histogram(ITL_BUCKETS)
  readonly e2e = new Histogram(E2E_BUCKETS)
}
