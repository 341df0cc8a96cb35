/**
 * One circuit breaker: closed → degraded → open → half-open, as a pure state machine.
 *
 * Outcomes arrive per attempt: `ok`, `slow` (a first token slower than the threshold, or
 * a stream below the token-rate floor) or `failure` (a reason that trips breakers).
 * Neutral outcomes (client errors, client aborts, backpressure with retry-after) are never
 * recorded. Rates are over a sliding time window (OutcomeWindow, 30 buckets) and only
 * judged once `minRequests` outcomes are in it: a minimum of evidence and a rate, never a
 * count in a row.
 *
 * - closed/degraded: on a failure, failure rate ≥ openAt → open; on a failure or a slow
 *   outcome, failure or slow rate ≥ degradeAt → degraded; on a success, both rates below
 *   half of degradeAt → closed (hysteresis). Only bad evidence raises the state and only
 *   good evidence lowers it, so successes arriving after a burst never open the breaker.
 * - open: rejects attempts for `openForMs`, then half-open.
 * - half-open: lets `halfOpenProbes` trial attempts through at a time; that many
 *   successes close it (with a clean window), one failure opens it again. A probe permit
 *   belongs to the half-open period it was taken in: one still out when the breaker
 *   re-opens (a long stream) makes no room for another probe when it comes back later.
 *
 * No clocks: callers pass `now`. No I/O. Plain TypeScript: it runs on every attempt.
 */
import type { BreakersPlan } from "../config/Plan.ts"
import type { BreakerState } from "../domain/States.ts"
import { BUCKETS, type Outcome, OutcomeWindow } from "./Window.ts"

export { BUCKETS, type Outcome }

export interface Transition {
  readonly from: BreakerState
  readonly to: BreakerState
  readonly failureRate: number
  readonly slowRate: number
}

export class Breaker {
  private stateValue: BreakerState = "closed"
  private readonly window: OutcomeWindow
  private openedAt = 0
  private probesInFlight = 0
  private probeSuccesses = 0
  /** Half-open periods so far; probe permits carry the one they were taken in. */
  private period = 0

  constructor(private readonly config: BreakersPlan) {
    this.window = new OutcomeWindow(config.windowMs)
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
        this.window.reset()
        return this.move(from, "closed", now, 0, 0)
      }
      return undefined
    }
    const w = this.window
    w.record(outcome, now)
    const n = w.total
    if (n < this.config.minRequests) return undefined
    const failureRate = w.failures / n
    const slowRate = w.slow / n
    if (outcome === "failure" && failureRate >= this.config.openAt) return this.move(from, "open", now, failureRate, slowRate)
    if (outcome !== "ok") {
      if (from === "closed" && (failureRate >= this.config.degradeAt || slowRate >= this.config.degradeAt)) {
        return this.move(from, "degraded", now, failureRate, slowRate)
      }
      return undefined
    }
    if (from === "degraded" && failureRate < this.config.degradeAt / 2 && slowRate < this.config.degradeAt / 2) {
      return this.move(from, "closed", now, failureRate, slowRate)
    }
    return undefined
  }

  /** Outcomes currently in the window (for metrics and tests). */
  windowSize(now: number): number {
    this.window.expire(now)
    return this.window.total
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
