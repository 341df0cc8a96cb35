/**
 * One circuit breaker: closed → degraded → open → half-open, as a pure state machine.
 *
 * Outcomes arrive per attempt: `ok`, `slow` (a first token slower than the threshold, or
 * a stream below the token-rate floor) or `failure` (a reason that trips breakers).
 * Neutral outcomes (client errors, client aborts) are never recorded. Rates are over a
 * sliding time window (kept as 30 buckets) and only judged once `minRequests` outcomes
 * are in it.
 *
 * - closed/degraded: failure rate ≥ openAt → open; failure or slow rate ≥ degradeAt →
 *   degraded; both below half of degradeAt → closed (hysteresis).
 * - open: rejects attempts for `openForMs`, then half-open.
 * - half-open: lets `halfOpenProbes` trial attempts through at a time; that many
 *   successes close it (with a clean window), one failure opens it again. A probe permit
 *   belongs to the half-open period it was taken in: one still out when the breaker
 *   re-opens (a long stream) makes no room for another probe when it comes back later.
 *
 * No clocks: callers pass `now`. No I/O. Plain TypeScript: it runs on every attempt.
 */
import type { BreakersPlan } from "../config/Plan.ts"
import type { BreakerState } from "../routing/Contract.ts"

export type Outcome = "ok" | "slow" | "failure"

/** Resolution of the sliding window: outcomes leave it one bucket (window / 30) at a time. */
export const BUCKETS = 30

export interface Transition {
  readonly from: BreakerState
  readonly to: BreakerState
  readonly failureRate: number
  readonly slowRate: number
}

export class Breaker {
  private stateValue: BreakerState = "closed"
  // The window as a ring of time buckets with running totals: recording is O(1) whatever
  // the request rate (a list of outcomes rescanned per record cost ~4% of a core at 1k req/s).
  private readonly width: number
  private readonly bucketIndex: Array<number>
  private readonly bucketOk: Array<number>
  private readonly bucketSlow: Array<number>
  private readonly bucketFailure: Array<number>
  private total = 0
  private slow = 0
  private failures = 0
  private openedAt = 0
  private probesInFlight = 0
  private probeSuccesses = 0
  /** Half-open periods so far; probe permits carry the one they were taken in. */
  private period = 0

  constructor(private readonly config: BreakersPlan) {
    this.width = Math.max(1, config.windowMs / BUCKETS)
    this.bucketIndex = new Array<number>(BUCKETS).fill(-Infinity)
    this.bucketOk = new Array<number>(BUCKETS).fill(0)
    this.bucketSlow = new Array<number>(BUCKETS).fill(0)
    this.bucketFailure = new Array<number>(BUCKETS).fill(0)
  }

  /** The state at `now` (an open breaker becomes half-open once its time is up). */
  state(now: number): BreakerState {
    if (this.stateValue === "open" && now - this.openedAt >= this.config.openForMs) {
      this.stateValue = "half_open"
      this.period++
      this.probesInFlight = 0
      this.probeSuccesses = 0
    }
    return this.stateValue
  }

  /**
   * Whether an attempt may go through now. In half-open it takes a probe permit that
   * `releaseProbe(probePeriod)` must give back (the dispatcher ties it to the attempt's scope).
   */
  admit(now: number): "yes" | "probe" | "no" {
    switch (this.state(now)) {
      case "closed":
      case "degraded":
        return "yes"
      case "open":
        return "no"
      case "half_open":
        if (this.probesInFlight >= this.config.halfOpenProbes) return "no"
        this.probesInFlight++
        return "probe"
    }
  }

  /** The half-open period a probe permit taken now belongs to. */
  get probePeriod(): number {
    return this.period
  }

  /** Gives back a probe permit taken in half-open period `period` (a stale one is ignored). */
  releaseProbe(period: number): void {
    if (period === this.period && this.probesInFlight > 0) this.probesInFlight--
  }

  record(outcome: Outcome, now: number): Transition | undefined {
    const from = this.state(now)
    if (from === "open") return undefined
    if (from === "half_open") {
      if (outcome === "failure") return this.move(from, "open", now, 1, 0)
      this.probeSuccesses++
      if (this.probeSuccesses >= this.config.halfOpenProbes) {
        this.reset()
        return this.move(from, "closed", now, 0, 0)
      }
      return undefined
    }
    const slot = this.bucketFor(now)
    this.total++
    if (outcome === "failure") {
      this.bucketFailure[slot]!++
      this.failures++
    } else if (outcome === "slow") {
      this.bucketSlow[slot]!++
      this.slow++
    } else {
      this.bucketOk[slot]!++
    }
    const n = this.total
    if (n < this.config.minRequests) return undefined
    const failureRate = this.failures / n
    const slowRate = this.slow / n
    if (failureRate >= this.config.openAt) return this.move(from, "open", now, failureRate, slowRate)
    if (failureRate >= this.config.degradeAt || slowRate >= this.config.degradeAt) {
      return from === "degraded" ? undefined : this.move(from, "degraded", now, failureRate, slowRate)
    }
    if (from === "degraded" && failureRate < this.config.degradeAt / 2 && slowRate < this.config.degradeAt / 2) {
      return this.move(from, "closed", now, failureRate, slowRate)
    }
    return undefined
  }

  /** Outcomes currently in the window (for metrics and tests). */
  windowSize(now: number): number {
    this.expire(now)
    return this.total
  }

  /** Drops buckets that left the window; returns the slot of `now`'s bucket, cleared if reused. */
  private bucketFor(now: number): number {
    this.expire(now)
    const index = Math.floor(now / this.width)
    const slot = ((index % BUCKETS) + BUCKETS) % BUCKETS
    if (this.bucketIndex[slot] !== index) this.clear(slot, index)
    return slot
  }

  private expire(now: number): void {
    const oldest = Math.floor(now / this.width) - BUCKETS + 1
    for (let slot = 0; slot < BUCKETS; slot++) {
      if (this.bucketIndex[slot]! < oldest && this.bucketIndex[slot] !== -Infinity) this.clear(slot, -Infinity)
    }
  }

  private clear(slot: number, index: number): void {
    this.total -= this.bucketOk[slot]! + this.bucketSlow[slot]! + this.bucketFailure[slot]!
    this.slow -= this.bucketSlow[slot]!
    this.failures -= this.bucketFailure[slot]!
    this.bucketOk[slot] = 0
    this.bucketSlow[slot] = 0
    this.bucketFailure[slot] = 0
    this.bucketIndex[slot] = index
  }

  private reset(): void {
    for (let slot = 0; slot < BUCKETS; slot++) this.clear(slot, -Infinity)
  }

  private move(from: BreakerState, to: BreakerState, now: number, failureRate: number, slowRate: number): Transition {
    this.stateValue = to
    if (to === "open") {
      this.openedAt = now
      this.probesInFlight = 0
      this.probeSuccesses = 0
    }
    return { from, to, failureRate, slowRate }
  }
}
