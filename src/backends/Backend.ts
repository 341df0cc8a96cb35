/**
 * One backend endpoint, as an actor in the small: its dialect adapter, connection pool,
 * bounded slots, health and observed statistics. Its state is private and changes only
 * through the methods below: the dispatcher's attempts (`hold*`, `attempted`, `succeeded`,
 * `failed`, `coolDown`, `firstToken`, `streamed`), the actor's loops (`observeSignals`,
 * `loopRestarted`) and health reports (`observeHealth`, through HealthReports). Readers
 * (router views, metrics, tests) get plain numbers from the getters and `stats`; nothing
 * outside this file assigns a backend's fields.
 *
 * Plain fields on purpose: the router reads them for every candidate of every request.
 */
import { Effect, type Scope } from "effect"
import type { BackendPlan } from "../config/Plan.ts"
import type { Health } from "../domain/States.ts"
import * as Scoped from "../domain/Scoped.ts"
import type { Adapter } from "./Contract.ts"
import type { FailureTag } from "./Failure.ts"
import { defaultHealthConfig, type Evidence, type HealthConfig, HealthState } from "./Health.ts"
import { KvBlockIndex } from "./KvBlockIndex.ts"
import { SlotPool } from "./SlotPool.ts"
import type { UpstreamPool } from "./Upstream.ts"

export type { Health } from "../domain/States.ts"

/** Exponentially weighted moving average with a fixed smoothing factor. */
export class Ewma {
  private current: number | undefined = undefined
  constructor(private readonly alpha: number) {}
  get value(): number | undefined {
    return this.current
  }
  observe(x: number): void {
    this.current = this.current === undefined ? x : this.current + this.alpha * (x - this.current)
  }
}

/** What a backend has seen, read-only for everyone but the backend itself. */
export interface BackendStatsView {
  readonly ttftMs: number | undefined
  readonly interTokenMs: number | undefined
  readonly tokensPerSecond: number | undefined
  readonly attempts: number
  readonly successes: number
  readonly failures: ReadonlyMap<FailureTag, number>
  /** Prompt tokens of failed attempts the backend (probably) processed: waste, not charged to tenants. */
  readonly wastedPromptTokens: number
  /** Completion tokens of unary answers that failed after 2xx (when reported): waste too. */
  readonly wastedCompletionTokens: number
}

/** Load signals scraped from the engine's metrics endpoint (backends.md §1). */
export interface EngineSignals {
  readonly waiting: number
  readonly running: number
  /** KV-cache utilisation 0..1. */
  readonly kvUsage: number | undefined
  /** Prefix-cache hit rate 0..1 over the last scrape interval, when the engine reports it. */
  readonly prefixHitRate: number | undefined
  readonly blockSize: number | undefined
  readonly numGpuBlocks: number | undefined
  readonly scrapedAtMs: number
}

/** The slot pool as readers see it. */
export interface SlotsView {
  readonly inUse: number
  readonly queued: number
  readonly limit: number
  readonly free: number
}

export class Backend {
  private readonly slotPool: SlotPool
  private readonly healthState: HealthState
  private readonly ttft = new Ewma(0.2)
  private readonly interToken = new Ewma(0.2)
  private readonly rate = new Ewma(0.2)
  private readonly failureCounts = new Map<FailureTag, number>()
  private attemptCount = 0
  private successCount = 0
  private wastedPrompt = 0
  private wastedCompletion = 0
  private scraped: EngineSignals | undefined = undefined
  private tokensInFlight = 0
  private coolDownUntil = 0
  private lastSuccessAt = 0
  private restarts = 0

  /**
   * The precise prefix index, when the engine publishes KV-cache events (`kv_events`): fed by the actor's
   * subscription (KvEvents.ts), read by the router. Undefined: the approximate index is all there is.
   */
  readonly kvBlocks: KvBlockIndex | undefined

  constructor(
    readonly plan: BackendPlan,
    readonly pool: UpstreamPool,
    readonly adapter: Adapter,
    health: HealthConfig = defaultHealthConfig,
    kvIndexMaxBlocks = 200_000
  ) {
    this.slotPool = new SlotPool(plan.maxConcurrency)
    this.healthState = new HealthState(health)
    this.kvBlocks = plan.kvEvents ? new KvBlockIndex(kvIndexMaxBlocks) : undefined
  }

  get id() {
    return this.plan.id
  }

  get health(): Health {
    return this.healthState.state
  }

  get slots(): SlotsView {
    return this.slotPool
  }

  /** Scraped engine signals (undefined until the first scrape). */
  get signals(): EngineSignals | undefined {
    return this.scraped
  }

  /** Estimated tokens (prompt + maximum output) of the requests holding a slot here. */
  get inFlightTokens(): number {
    return this.tokensInFlight
  }

  /** The backend asked for no new work before this time (retry-after). */
  get coolDownUntilMs(): number {
    return this.coolDownUntil
  }

  /** When the last request through this backend succeeded (passive health: no probe needed while busy). */
  get lastSuccessAtMs(): number {
    return this.lastSuccessAt
  }

  /** Times a supervised loop of this backend crashed and was restarted. */
  get loopRestarts(): number {
    return this.restarts
  }

  /** Time to first token, EWMA over attempts (the router reads it per candidate: no allocation). */
  get ttftMs(): number | undefined {
    return this.ttft.value
  }

  /** Output tokens per second per stream, EWMA. */
  get tokensPerSecond(): number | undefined {
    return this.rate.value
  }

  /** Everything observed so far (a snapshot: metrics, admin views, tests). */
  get stats(): BackendStatsView {
    return {
      ttftMs: this.ttft.value,
      interTokenMs: this.interToken.value,
      tokensPerSecond: this.rate.value,
      attempts: this.attemptCount,
      successes: this.successCount,
      failures: this.failureCounts,
      wastedPromptTokens: this.wastedPrompt,
      wastedCompletionTokens: this.wastedCompletion
    }
  }

  /** Outcomes and failures in the health window at `now` (metrics and tests). */
  healthEvidence(now: number): { readonly samples: number; readonly failures: number } {
    return this.healthState.evidence(now)
  }

  // ---- the dispatcher's attempts

  /** Takes a slot until the current scope closes, waiting at most `waitMs`; succeeds with the ms waited. */
  holdSlot(waitMs: number) {
    return this.slotPool.acquire(waitMs)
  }

  /**
   * A slot taken now, without waiting, if one is free and nobody queues ahead (else false:
   * wait in `holdSlot`). The caller gives it back with `releaseSlot` exactly once.
   */
  takeSlotNow(): boolean {
    return this.slotPool.tryAcquire()
  }

  /** Gives back a slot `takeSlotNow` took. */
  releaseSlot(): void {
    this.slotPool.release()
  }

  /** Counts `tokens` as in flight here (negative: no longer) for a caller that releases by hand. */
  addInFlightTokens(tokens: number): void {
    this.tokensInFlight += tokens
  }

  /** Counts `tokens` as in flight here until the current scope closes. */
  holdTokens(tokens: number): Effect.Effect<void, never, Scope.Scope> {
    return Scoped.acquireRelease(
      Effect.sync(() => this.addInFlightTokens(tokens)),
      () => Effect.sync(() => this.addInFlightTokens(-tokens))
    )
  }

  attempted(): void {
    this.attemptCount++
  }

  /** An attempt that committed (a stream's first token, a unary answer). */
  succeeded(now: number): void {
    this.successCount++
    this.lastSuccessAt = now
  }

  /** The engine proved itself without serving a request (a probe answered). */
  proved(now: number): void {
    this.lastSuccessAt = now
  }

  /** A failed attempt (or a stream that failed after its first token), with its waste. */
  failed(tag: FailureTag, wastedPromptTokens = 0, wastedCompletionTokens = 0): void {
    this.failureCounts.set(tag, (this.failureCounts.get(tag) ?? 0) + 1)
    this.wastedPrompt += wastedPromptTokens
    this.wastedCompletion += wastedCompletionTokens
  }

  /** The backend said retry-after: no new work before `untilMs`. */
  coolDown(untilMs: number): void {
    this.coolDownUntil = Math.max(this.coolDownUntil, untilMs)
  }

  /** A first token `ms` after the attempt started. */
  firstToken(ms: number): void {
    this.ttft.observe(ms)
  }

  /** A stream that ended cleanly, `perTokenMs` apart. */
  streamed(perTokenMs: number): void {
    this.interToken.observe(perTokenMs)
    this.rate.observe(1000 / perTokenMs)
  }

  // ---- the actor's loops and health reports

  observeSignals(signals: EngineSignals): void {
    this.scraped = signals
  }

  /** Counts a crashed loop; returns how many so far. */
  loopRestarted(): number {
    return ++this.restarts
  }

  /** Applies health evidence at `now`; returns the new state when it changed. */
  observeHealth(evidence: Evidence, now: number): Health | undefined {
    return this.healthState.observe(evidence, now)
  }
}
