/**
 * Endpoint health from evidence, as pure state machines (the backend actor feeds them and
 * passes the time; nothing here does I/O or reads a clock).
 *
 * Evidence: the outcomes of real requests (served, or failed before or after their first
 * token: error events, malformed chunks, stalls, degenerate output, token rates below the
 * floor) and active probes (a 1-token generation: an engine can answer 200 on /health
 * while hung). Backpressure (429/503 with retry-after) and client errors are not evidence.
 *
 * Traffic outcomes are judged as a *rate* over a sliding window (OutcomeWindow), never as
 * a count in a row, so a burst of a few failures cannot take a backend out:
 *
 *   failure rate ≥ unhealthyAt over ≥ minSamples outcomes       → unhealthy (excluded)
 *   failure rate ≥ degradeAt (any number of outcomes)           → degraded (lower weight)
 *   degraded until the rate falls below degradeAt / 2           → healthy (hysteresis)
 *
 * Probes are deliberate, spaced evidence (the schedule below), judged as active health
 * checks are (Envoy, Kubernetes): `unhealthyAfter` failed probes in a row → unhealthy; one
 * failed probe → degraded. Recovery is half-open: an unhealthy backend that answers a
 * probe (or, routed in panic, serves a request) comes back degraded with a clean window
 * and must prove itself on traffic; `Loading` → cold until a probe or request succeeds.
 * Unhealthy and cold backends are excluded by the router; degraded ones weigh less.
 */
import type { Health } from "../domain/States.ts"
import { OutcomeWindow } from "../resilience/Window.ts"

export type Evidence =
  | { readonly _tag: "ProbeOk" }
  | { readonly _tag: "ProbeFailed" }
  | { readonly _tag: "Loading" }
  /** A request served (a stream that ended cleanly, or a unary answer). */
  | { readonly _tag: "StreamOk"; readonly tokensPerSecond: number | undefined }
  /** A request the backend failed (before or after its first token), or output that loops. */
  | { readonly _tag: "StreamBad" }

export interface HealthConfig {
  /** Length of the sliding window of traffic outcomes. */
  readonly windowMs: number
  /** Outcomes the window must hold before the failure rate can make a backend unhealthy. */
  readonly minSamples: number
  /** Failure rate (0..1) at or above which a backend is unhealthy (given minSamples). */
  readonly unhealthyAt: number
  /** Failure rate (0..1) at or above which it is degraded. */
  readonly degradeAt: number
  /** Failed probes in a row that make it unhealthy. */
  readonly unhealthyAfter: number
  readonly minTokensPerSecond: number
}

export const defaultHealthConfig: HealthConfig = {
  windowMs: 30_000,
  minSamples: 10,
  unhealthyAt: 0.5,
  degradeAt: 0.2,
  unhealthyAfter: 3,
  minTokensPerSecond: 0
}

export class HealthState {
  private value: Health
  private readonly window: OutcomeWindow
  private probeFailures = 0

  constructor(private readonly config: HealthConfig, initial: Health = "healthy") {
    this.value = initial
    this.window = new OutcomeWindow(config.windowMs)
  }

  get state(): Health {
    return this.value
  }

  /** Outcomes and failures in the window at `now` (metrics and tests). */
  evidence(now: number): { readonly samples: number; readonly failures: number } {
    this.window.expire(now)
    return { samples: this.window.total, failures: this.window.failures }
  }

  /** Applies one piece of evidence at `now`; returns the new state when it changed. */
  observe(e: Evidence, now: number): Health | undefined {
    const before = this.value
    switch (e._tag) {
      case "Loading":
        this.value = "cold"
        this.probeFailures = 0
        this.window.reset()
        break
      case "ProbeOk":
        this.probeFailures = 0
        this.recoverOr(now)
        break
      case "ProbeFailed":
        this.probeFailures++
        this.window.expire(now)
        if (this.value !== "unhealthy") this.value = this.judge()
        break
      case "StreamOk": {
        const slow = e.tokensPerSecond !== undefined && e.tokensPerSecond < this.config.minTokensPerSecond
        if (slow) {
          this.bad(now)
          break
        }
        // Traffic served by an unhealthy backend (routed in panic) is recovery evidence too.
        this.recoverOr(now, "ok")
        break
      }
      case "StreamBad":
        this.bad(now)
        break
    }
    return this.value === before ? undefined : this.value
  }

  /** Half-open recovery from unhealthy or cold; otherwise a good outcome in the window. */
  private recoverOr(now: number, outcome?: "ok"): void {
    if (this.value === "unhealthy" || this.value === "cold") {
      this.window.reset()
      this.value = this.value === "cold" ? "healthy" : "degraded"
      return
    }
    if (outcome !== undefined) this.window.record(outcome, now)
    else this.window.expire(now)
    this.value = this.judge()
  }

  private bad(now: number): void {
    // Already out of the routing: more failures add nothing (only recovery evidence counts).
    if (this.value === "unhealthy") return
    this.window.record("failure", now)
    this.value = this.judge()
  }

  /** The state the evidence in hand supports (the window was just expired or recorded). */
  private judge(): Health {
    const c = this.config
    const n = this.window.total
    const rate = n === 0 ? 0 : this.window.failures / n
    // Rates are evidence only when something failed: a threshold of 0 means "any failure",
    // never "always" (a window of successes has rate 0, which is ≥ 0).
    const failing = this.window.failures > 0
    if ((failing && n >= c.minSamples && rate >= c.unhealthyAt) || this.probeFailures >= c.unhealthyAfter) return "unhealthy"
    if (this.value === "cold") return "cold"
    if (this.probeFailures > 0 || (failing && rate >= c.degradeAt)) return "degraded"
    if (this.value === "degraded" && failing && rate >= c.degradeAt / 2) return "degraded"
    return "healthy"
  }
}

export interface ProbeConfig {
  /** Probe cadence of a healthy or degraded backend that saw no recent success. */
  readonly intervalMs: number
  /** First re-probe of an unhealthy or cold backend; doubles after each probe. */
  readonly backoffMs: number
  /** The longest re-probe delay of an unhealthy or cold backend (never above intervalMs). */
  readonly backoffMaxMs: number
}

/**
 * When the next probe is due. A healthy or degraded backend is probed every `intervalMs`
 * (the actor skips a healthy one that served a request within it); an unhealthy or cold
 * one `backoffMs` after it was seen so, then after doubling delays capped at
 * `min(backoffMaxMs, intervalMs)`, so it rejoins within about one capped delay of the
 * fault clearing. The loop wakes every `tickMs` to notice a backend turning unhealthy.
 */
export class ProbeSchedule {
  private recovering = false
  private step = 0
  private nextAtMs = 0

  constructor(private readonly config: ProbeConfig) {}

  get tickMs(): number {
    return Math.max(1, Math.min(this.config.intervalMs, this.config.backoffMs))
  }

  /** Whether a probe is due at `now` for a backend in `health`. */
  due(now: number, health: Health): boolean {
    const recovering = health === "unhealthy" || health === "cold"
    if (recovering && !this.recovering) {
      this.recovering = true
      this.step = 0
      this.nextAtMs = Math.min(this.nextAtMs, now + this.delay())
    } else if (!recovering && this.recovering) {
      this.recovering = false
      this.nextAtMs = now + this.config.intervalMs
    }
    return now >= this.nextAtMs
  }

  /** A probe was made (or skipped as unnecessary) at `now`: schedules the next one. */
  probed(now: number, health: Health): void {
    this.recovering = health === "unhealthy" || health === "cold"
    if (this.recovering) {
      this.nextAtMs = now + this.delay()
      this.step = Math.min(this.step + 1, 30)
    } else {
      this.step = 0
      this.nextAtMs = now + this.config.intervalMs
    }
  }

  private delay(): number {
    const c = this.config
    return Math.min(c.backoffMs * 2 ** this.step, c.backoffMaxMs, c.intervalMs)
  }
}
