/**
 * One backend endpoint: its dialect adapter, connection pool, bounded slots and observed
 * statistics. Only this module and the dispatcher's attempt change a backend's state,
 * through the methods below; readers (router, metrics) see plain numbers.
 */
import type { BackendPlan } from "../config/Plan.ts"
import type { Adapter } from "./Contract.ts"
import type { FailureTag } from "./Failure.ts"
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

  recordFailure(tag: FailureTag): void {
    this.failures.set(tag, (this.failures.get(tag) ?? 0) + 1)
  }
}

export class Backend {
  readonly slots: SlotPool
  readonly stats = new BackendStats()
  /** The backend asked for no new work before this time (retry-after). */
  coolDownUntilMs = 0

  constructor(
    readonly plan: BackendPlan,
    readonly pool: UpstreamPool,
    readonly adapter: Adapter
  ) {
    this.slots = new SlotPool(plan.maxConcurrency)
  }

  get id() {
    return this.plan.id
  }
}
