/**
 * Virtual-time driver: runs the engine as a discrete-event loop with no clock and no sleeping, for tests,
 * calibration and offline what-if runs.
 *
 * Owns: closed-loop clients (each of `concurrency` clients submits a request, waits for its last token, and
 * submits the next one at once) and the per-request measurements (TTFT, NIM-style inter-token latency
 * `(e2e − TTFT)/(out − 1)`, output throughput over a measurement window).
 * Must never: sleep, read a clock, or do I/O. Time advances only by step durations.
 */
import { Engine, type EngineConfig } from "./engine.ts"
import type { SequenceSpec } from "./sequence.ts"

export interface ClosedLoopOptions {
  readonly concurrency: number
  /** Simulated ms before measuring starts (lets the initial burst settle). */
  readonly warmupMs: number
  /** Length of the measurement window in simulated ms. */
  readonly measureMs: number
  /** Builds request `i` (0-based, in submission order). */
  readonly makeRequest: (i: number) => SequenceSpec
  readonly jitter?: number
  readonly seed?: number
}

export interface RequestRecord {
  readonly arrivalMs: number
  readonly ttftMs: number
  readonly e2eMs: number
  readonly outputTokens: number
  /** Mean gap between tokens after the first: (e2e − TTFT)/(out − 1); NaN for one-token outputs. */
  readonly itlMs: number
  readonly cachedTokens: number
  readonly preemptions: number
}

export interface ClosedLoopResult {
  /** Requests that arrived after warm-up and finished inside the window. */
  readonly records: ReadonlyArray<RequestRecord>
  readonly meanTtftMs: number
  readonly meanItlMs: number
  /** Output tokens generated inside the window per simulated second. */
  readonly outputTokensPerSecond: number
  readonly preemptions: number
  readonly steps: number
  readonly meanRunning: number
}

const mean = (xs: ReadonlyArray<number>): number => {
  let s = 0
  let n = 0
  for (const x of xs) {
    if (!Number.isNaN(x)) {
      s += x
      n++
    }
  }
  return n === 0 ? Number.NaN : s / n
}

/** Runs closed-loop clients against a fresh engine built from `config`. */
export const runClosedLoop = (config: EngineConfig, options: ClosedLoopOptions): ClosedLoopResult => {
  const engine = new Engine<number>(config, { jitter: options.jitter ?? 0, seed: options.seed ?? 1 })
  const endMs = options.warmupMs + options.measureMs
  let submitted = 0
  const submit = (at: number) => {
    engine.submit(options.makeRequest(submitted), submitted, at)
    submitted++
  }
  for (let c = 0; c < options.concurrency; c++) submit(0)
  const records: Array<RequestRecord> = []
  let windowTokens = 0
  let steps = 0
  let runningSum = 0
  let preemptionsAtWarmup = -1
  while (engine.now < endMs && engine.hasWork) {
    const r = engine.step()
    if (r.scheduled === 0) break
    if (r.startMs >= options.warmupMs) {
      if (preemptionsAtWarmup < 0) preemptionsAtWarmup = engine.counters.preemptions
      windowTokens += r.emitted.length
      steps++
      runningSum += engine.numRunning + r.finished.length
    }
    for (const seq of r.finished) {
      if (seq.arrivalMs >= options.warmupMs && seq.finishMs <= endMs) {
        const ttft = seq.firstTokenMs - seq.arrivalMs
        const e2e = seq.finishMs - seq.arrivalMs
        records.push({
          arrivalMs: seq.arrivalMs,
          ttftMs: ttft,
          e2eMs: e2e,
          outputTokens: seq.outputCount,
          itlMs: seq.outputCount > 1 ? (e2e - ttft) / (seq.outputCount - 1) : Number.NaN,
          cachedTokens: seq.cachedPromptTokens,
          preemptions: seq.preemptions
        })
      }
      submit(seq.finishMs)
    }
  }
  const windowMs = Math.min(engine.now, endMs) - options.warmupMs
  return {
    records,
    meanTtftMs: mean(records.map((r) => r.ttftMs)),
    meanItlMs: mean(records.map((r) => r.itlMs)),
    outputTokensPerSecond: windowMs > 0 ? (windowTokens * 1000) / windowMs : Number.NaN,
    preemptions: engine.counters.preemptions - Math.max(0, preemptionsAtWarmup),
    steps,
    meanRunning: steps > 0 ? runningSum / steps : 0
  }
}
