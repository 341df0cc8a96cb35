/**
 * One backend endpoint: its dialect adapter, connection pool, bounded slots and observed
 * statistics. Only this module and the dispatcher's attempt change a backend's state,
 * through the methods below; readers (router, metrics) see plain numbers.
 */
import type { BackendPlan } from "../config/Plan.ts"
import type { Adapter } from "./Contract.ts"
import type { FailureTag } from "./Failure.ts"
import { defaultHealthConfig, type HealthConfig, HealthState } from "./Health.ts"
import { SlotPool } from "./SlotPool.ts"
import type { UpstreamPool } from "./Upstream.ts"

/** Exponentially weighted moving average with a fixed smoothing factor. */
export class Ewma {
  value: number | undefined = undefined
  constructor(private readonly alpha: number) {}
  observe(x: number): void {
    this.value = this.value === undefined ? x : this.value + this.alpha * (x - this.value)
  }
}

export class BackendStats {
  readonly ttftMs = new Ewma(0.2)
  readonly interTokenMs = new Ewma(0.2)
  readonly tokensPerSecond = new Ewma(0.2)
  attempts = 0
  successes = 0
  readonly failures = new Map<FailureTag, number>()
  /** Prompt tokens of failed attempts the backend (probably) processed: waste, not charged to tenants. */
  wastedPromptTokens = 0
  /** Completion tokens of unary answers that failed after 2xx (when reported): waste too. */
  wastedCompletionTokens = 0

  recordFailure(tag: FailureTag): void {
    this.failures.set(tag, (this.failures.get(tag) ?? 0) + 1)
  }
}

export type { Health } from "../domain/States.ts"
import type { Health } from "../domain/States.ts"

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

export class Backend {
  readonly slots: SlotPool
  readonly stats = new BackendStats()
  readonly healthState: HealthState
  signals: EngineSignals | undefined = undefined
  /** Estimated tokens (prompt + maximum output) of the requests holding a slot here. */
  inFlightTokens = 0
  /** The backend asked for no new work before this time (retry-after). */
  coolDownUntilMs = 0

  /** When the last request through this backend succeeded (passive health: no probe needed while busy). */
  lastSuccessAtMs = 0
  /** Times a supervised loop of this backend crashed and was restarted. */
  loopRestarts = 0

  constructor(
    readonly plan: BackendPlan,
    readonly pool: UpstreamPool,
    readonly adapter: Adapter,
    health: HealthConfig = defaultHealthConfig
  ) {
    this.slots = new SlotPool(plan.maxConcurrency)
    this.healthState = new HealthState(health)
  }

  get health(): Health {
    return this.healthState.state
  }

  get id() {
    return this.plan.id
  }
}
