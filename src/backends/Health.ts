/**
 * Endpoint health from evidence, as a pure state machine (the backend actor feeds it).
 *
 * Evidence: active probes (a 1-token generation: an engine can answer 200 on /health
 * while hung), and the quality of real streams: failures that arrive with HTTP 200
 * (error events, malformed chunks, degenerate output, stalls) and token rates below the
 * configured floor.
 *
 *   cold ──probe ok──▶ healthy ◀──ok──┐
 *   healthy ──bad stream / probe fail──▶ degraded ──N in a row──▶ unhealthy
 *   unhealthy ──probe ok (half-open)──▶ degraded ──ok──▶ healthy
 *   any ──probe says "loading"──▶ cold
 *
 * Unhealthy and cold backends are excluded by the router; degraded ones get a lower
 * weight. Callers pass time; nothing here does I/O.
 */
import type { Health } from "../domain/States.ts"

export type Evidence =
  | { readonly _tag: "ProbeOk" }
  | { readonly _tag: "ProbeFailed" }
  | { readonly _tag: "Loading" }
  | { readonly _tag: "StreamOk"; readonly tokensPerSecond: number | undefined }
  | { readonly _tag: "StreamBad" }

export interface HealthConfig {
  readonly unhealthyAfter: number
  readonly minTokensPerSecond: number
}

export class HealthState {
  private value: Health
  private badInARow = 0

  constructor(private readonly config: HealthConfig, initial: Health = "healthy") {
    this.value = initial
  }

  get state(): Health {
    return this.value
  }

  /** Applies one piece of evidence; returns the new state when it changed. */
  observe(e: Evidence): Health | undefined {
    const before = this.value
    switch (e._tag) {
      case "Loading":
        this.value = "cold"
        this.badInARow = 0
        break
      case "ProbeOk":
        this.badInARow = 0
        // Half-open: an unhealthy backend comes back degraded and must prove itself on traffic.
        if (this.value === "cold") this.value = "healthy"
        else if (this.value === "unhealthy") this.value = "degraded"
        break
      case "StreamOk": {
        const slow = e.tokensPerSecond !== undefined && e.tokensPerSecond < this.config.minTokensPerSecond
        if (slow) return this.bad(before)
        this.badInARow = 0
        if (this.value === "degraded" || this.value === "cold") this.value = "healthy"
        break
      }
      case "ProbeFailed":
      case "StreamBad":
        return this.bad(before)
    }
    return this.value === before ? undefined : this.value
  }

  private bad(before: Health): Health | undefined {
    this.badInARow++
    if (this.badInARow >= this.config.unhealthyAfter) this.value = "unhealthy"
    else if (this.value === "healthy") this.value = "degraded"
    return this.value === before ? undefined : this.value
  }
}
