/**
 * The simulated serving engine: vLLM V1-style continuous batching over a paged KV cache, in pure TypeScript.
 *
 * Owns: the running list and the FCFS waiting queue, one scheduling step at a time (token budget, sequence cap,
 * chunked prefill, prefix-cache admission, preemption by recompute of the newest running sequence), the step's
 * duration from the cost model `c0 + c_pf·P + c_dec·D + c_kv·Σctx` (backends.md §5.4) with seeded jitter, and
 * the counters behind `/metrics`.
 * Must never: read a clock, sleep, do I/O or touch Effect. Time is a number the driver advances (`now`, in
 * simulated milliseconds); the same core runs under the virtual-time driver (tests, calibration) and the
 * real-time driver (HTTP). The hot path reuses its arrays: a `StepResult` is valid until the next `step()`.
 */
import { rootHash } from "../../domain/KvBlocks.ts"
import { KvCache } from "./blocks.ts"
import { KvEventLog } from "./kvEvents.ts"
import { EngineCounters } from "./counters.ts"
import { Deque } from "./deque.ts"
import { makeRng, type Rng } from "./random.ts"
import { Sequence, type SequenceSpec } from "./sequence.ts"

/** The numbers the engine needs from a profile (see profiles.ts for the named ones). */
export type { EngineConfig } from "../../profiles/Profiles.ts"
import type { EngineConfig } from "../../profiles/Profiles.ts"

export interface EngineOptions {
  /** Relative step-time jitter: each step is scaled by a uniform factor in [1 − jitter, 1 + jitter]. */
  readonly jitter: number
  readonly seed: number
  /** Salt of the block-hash chain (e.g. the served model name), so different models never share blocks. */
  readonly cacheSalt?: string
}

export interface StepResult<S> {
  startMs: number
  endMs: number
  durationMs: number
  /** Prefill tokens computed this step (after prefix-cache hits), decoding sequences, context tokens read. */
  prefillTokens: number
  decodeSeqs: number
  contextTokens: number
  scheduled: number
  preempted: number
  /** Sequences that produced one token at the end of this step (token index = `outputCount − 1`). */
  readonly emitted: Array<Sequence<S>>
  /** Sequences that reached their target length this step (their blocks are already released). */
  readonly finished: Array<Sequence<S>>
}

export interface EngineSnapshot {
  readonly running: number
  readonly waiting: number
  readonly kvUsage: number
  readonly freeBlocks: number
  readonly totalBlocks: number
  readonly cachedBlocks: number
}

export class Engine<S> {
  readonly kv: KvCache
  /** The prefix cache's stores, evictions and clears since the last drain (vLLM KV events). */
  readonly kvEvents: KvEventLog
  readonly counters = new EngineCounters()
  /** Simulated time in ms (end of the last step, or later if the driver advanced it while idle). */
  now = 0
  /** Step-time multiplier (the "slow" fault). */
  slow = 1
  private readonly running: Array<Sequence<S>> = []
  private readonly waiting = new Deque<Sequence<S>>()
  private nextId = 1
  private readonly rng: Rng
  private readonly result: StepResult<S>
  private readonly scheduled: Array<Sequence<S>> = []
  private readonly scheduledNew: Array<number> = []

  constructor(
    readonly config: EngineConfig,
    readonly options: EngineOptions
  ) {
    if (config.maxModelLen > config.numGpuBlocks * config.blockSize) {
      throw new Error(
        `maxModelLen ${config.maxModelLen} exceeds the KV capacity ${config.numGpuBlocks * config.blockSize} tokens`
      )
    }
    this.kvEvents = new KvEventLog(config.blockSize)
    this.kv = new KvCache(config.numGpuBlocks, config.blockSize, rootHash(options.cacheSalt ?? ""), this.kvEvents)
    this.rng = makeRng(options.seed ^ 0x5eed1e55)
    this.result = {
      startMs: 0,
      endMs: 0,
      durationMs: 0,
      prefillTokens: 0,
      decodeSeqs: 0,
      contextTokens: 0,
      scheduled: 0,
      preempted: 0,
      emitted: [],
      finished: []
    }
  }

  get numRunning(): number {
    return this.running.length
  }

  get numWaiting(): number {
    return this.waiting.length
  }

  get hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > 0
  }

  snapshot(): EngineSnapshot {
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      kvUsage: this.kv.usage,
      freeBlocks: this.kv.freeBlocks,
      totalBlocks: this.kv.numBlocks,
      cachedBlocks: this.kv.cachedBlockCount
    }
  }

  /** Every sequence still in the engine (running first, then waiting in queue order). */
  sequences(): Array<Sequence<S>> {
    return [...this.running, ...this.waiting.toArray()]
  }

  /** Moves simulated time forward (never backward), e.g. across an idle gap. */
  advanceTo(ms: number): void {
    if (ms > this.now) this.now = ms
  }

  /** Queues a request (FCFS). `arrivalMs` defaults to the current simulated time. */
  submit(spec: SequenceSpec, sink: S, arrivalMs: number = this.now): Sequence<S> {
    if (spec.outputTokens < 1) throw new Error("outputTokens must be ≥ 1")
    if (spec.prompt.length < 1) throw new Error("a prompt needs at least one token")
    const seq = new Sequence(this.nextId++, spec, sink, arrivalMs)
    this.waiting.pushBack(seq)
    return seq
  }

  /** Frees a sequence's slot and blocks at once. Returns false if it had already ended. */
  abort(seq: Sequence<S>): boolean {
    if (!this.remove(seq)) return false
    seq.status = "aborted"
    seq.finishMs = this.now
    this.counters.aborted++
    return true
  }

  /** Ends a sequence as failed (a mid-stream engine error); frees its slot and blocks. */
  fail(seq: Sequence<S>): boolean {
    if (!this.remove(seq)) return false
    seq.status = "failed"
    seq.finishMs = this.now
    this.counters.failed++
    return true
  }

  /** Fails every running sequence (the OOM fault); returns them. Waiting sequences stay queued. */
  failRunning(): Array<Sequence<S>> {
    const victims = this.running.splice(0, this.running.length)
    for (const seq of victims) {
      this.kv.release(seq)
      seq.status = "failed"
      seq.finishMs = this.now
      this.counters.failed++
    }
    return victims
  }

  /** Aborts everything and drops the prefix cache (a crashed and restarted engine); returns the victims. */
  reset(): Array<Sequence<S>> {
    const victims = this.sequences()
    for (const seq of victims) this.abort(seq)
    this.kv.clearCache()
    return victims
  }

  private remove(seq: Sequence<S>): boolean {
    if (seq.status === "running") {
      const i = this.running.indexOf(seq)
      if (i >= 0) this.running.splice(i, 1)
      this.kv.release(seq)
      return true
    }
    if (seq.status === "waiting") {
      this.waiting.remove(seq)
      if (seq.blocks.length > 0) this.kv.release(seq)
      return true
    }
    return false
  }

  private preempt(victim: Sequence<S>): void {
    this.kv.release(victim)
    victim.numComputed = 0
    victim.status = "waiting"
    victim.preemptions++
    this.counters.preemptions++
    this.waiting.pushFront(victim)
  }

  private schedule(seq: Sequence<S>, numNew: number): void {
    this.scheduled.push(seq)
    this.scheduledNew.push(numNew)
  }

  /** Runs one engine iteration: schedule, "execute" (advance state), and time it. */
  step(): StepResult<S> {
    const cfg = this.config
    const r = this.result
    r.emitted.length = 0
    r.finished.length = 0
    this.scheduled.length = 0
    this.scheduledNew.length = 0
    let budget = cfg.maxNumBatchedTokens
    let preempted = 0

    // 1. Running sequences first, in order: decode = 1 token, unfinished prefill = next chunk.
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const seq = this.running[i]!
      const numNew = Math.min(seq.numTokens - seq.numComputed, budget)
      let selfPreempted = false
      while (!this.kv.allocate(seq, numNew, 0)) {
        const victim = this.running.pop()!
        this.preempt(victim)
        preempted++
        if (victim === seq) {
          selfPreempted = true
          break
        }
      }
      if (selfPreempted) break
      this.schedule(seq, numNew)
      budget -= numNew
    }

    // 2. Waiting sequences in FCFS order, unless this step had to preempt.
    if (preempted === 0) {
      while (budget > 0 && this.running.length < cfg.maxNumSeqs && this.waiting.length > 0) {
        const seq = this.waiting.peekFront()!
        const hitBlocks = this.kv.prefixHitBlocks(seq)
        const hitTokens = hitBlocks * cfg.blockSize
        // KV transferred from a prefill engine counts as computed (full blocks, leaving ≥ 1 token to compute).
        const transferred = seq.transferPending
          ? Math.floor(Math.min(seq.spec.transferredTokens ?? 0, seq.numTokens - 1) / cfg.blockSize) * cfg.blockSize
          : 0
        const ready = Math.max(hitTokens, transferred)
        const numNew = Math.min(seq.numTokens - ready, budget)
        if (!this.kv.allocate(seq, ready - hitTokens + numNew, hitBlocks)) break // head-of-line blocking (FCFS)
        this.waiting.popFront()
        seq.status = "running"
        seq.numComputed = ready
        seq.transferPending = false
        this.running.push(seq)
        this.counters.prefixQueries += seq.numTokens
        this.counters.prefixHits += hitTokens
        if (ready > hitTokens) this.counters.kvTransferTokens += ready - hitTokens
        if (seq.cachedPromptTokens < 0) {
          seq.cachedPromptTokens = Math.min(ready, seq.promptLength)
          this.counters.promptTokens += seq.promptLength
        }
        this.schedule(seq, numNew)
        budget -= numNew
      }
    }

    // 3. Execute: cost the batch, advance every scheduled sequence, sample tokens.
    let prefill = 0
    let decode = 0
    let context = 0
    for (let i = 0; i < this.scheduled.length; i++) {
      const seq = this.scheduled[i]!
      const numNew = this.scheduledNew[i]!
      if (numNew === 1 && seq.outputCount > 0 && seq.numComputed + 1 === seq.numTokens) decode++
      else prefill += numNew
      context += seq.numComputed + numNew
    }
    const base = cfg.c0Ms + cfg.prefillMsPerToken * prefill + cfg.decodeMsPerSeq * decode +
      cfg.kvMsPerContextToken * context
    const jitter = this.options.jitter > 0 ? 1 + this.options.jitter * (2 * this.rng() - 1) : 1
    const duration = this.scheduled.length === 0 ? 0 : base * jitter * this.slow
    r.startMs = this.now
    this.now += duration
    const t = this.now
    r.endMs = t
    r.durationMs = duration
    r.prefillTokens = prefill
    r.decodeSeqs = decode
    r.contextTokens = context
    r.scheduled = this.scheduled.length
    r.preempted = preempted
    const c = this.counters
    if (this.scheduled.length > 0) c.steps++

    let finishedAny = false
    for (let i = 0; i < this.scheduled.length; i++) {
      const seq = this.scheduled[i]!
      seq.numComputed += this.scheduledNew[i]!
      this.kv.cacheComputed(seq)
      if (seq.numComputed < seq.numTokens) continue // mid-prefill chunk
      seq.outputCount++
      c.generationTokens++
      if (seq.firstTokenMs < 0) {
        seq.firstTokenMs = t
        c.ttft.observe((t - seq.arrivalMs) / 1000)
      } else {
        c.itl.observe((t - seq.lastTokenMs) / 1000)
      }
      seq.lastTokenMs = t
      r.emitted.push(seq)
      if (seq.outputCount >= seq.spec.outputTokens) {
        seq.status = "finished"
        seq.finishMs = t
        this.kv.release(seq)
        if (seq.spec.finish === "length") c.finishedLength++
        else c.finishedStop++
        c.e2e.observe((t - seq.arrivalMs) / 1000)
        r.finished.push(seq)
        finishedAny = true
      }
    }
    if (finishedAny) {
      let w = 0
      for (let i = 0; i < this.running.length; i++) {
        const seq = this.running[i]!
        if (seq.status === "running") this.running[w++] = seq
      }
      this.running.length = w
    }
    if (duration > 0) {
      const rate = (r.emitted.length * 1000) / duration
      c.genThroughput = c.genThroughput === 0 ? rate : 0.9 * c.genThroughput + 0.1 * rate
    }
    return r
  }

  /** Checks engine-level invariants on top of the KV pool's; for tests. */
  checkInvariants(): ReadonlyArray<string> {
    const errors = [...this.kv.checkInvariants()]
    let refs = 0
    for (const seq of this.running) {
      if (seq.status !== "running") errors.push(`seq ${seq.id} in running list with status ${seq.status}`)
      if (seq.blocks.length === 0) errors.push(`running seq ${seq.id} holds no blocks`)
      if (seq.blocks.length * this.config.blockSize < seq.numComputed) {
        errors.push(`seq ${seq.id} computed ${seq.numComputed} tokens in ${seq.blocks.length} blocks`)
      }
      refs += seq.blocks.length
    }
    for (const seq of this.waiting.toArray()) {
      if (seq.status !== "waiting") errors.push(`seq ${seq.id} in waiting queue with status ${seq.status}`)
      if (seq.blocks.length > 0) errors.push(`waiting seq ${seq.id} holds ${seq.blocks.length} blocks`)
    }
    let totalRefs = 0
    for (let b = 0; b < this.kv.numBlocks; b++) totalRefs += this.kv.refCount[b]!
    if (totalRefs !== refs) errors.push(`refcount sum ${totalRefs} != block-table entries ${refs}`)
    if (this.running.length > this.config.maxNumSeqs) errors.push("running exceeds max_num_seqs")
    return errors
  }
}
