/**
 * A sliding time window of outcome counts (ok, slow, failure), shared by the circuit
 * breakers (Breaker.ts) and backend health (backends/Health.ts): both judge a failure
 * *rate* over recent evidence, never a count in a row.
 *
 * Kept as a ring of `BUCKETS` time buckets with running totals, so recording is O(1)
 * whatever the request rate (a list of outcomes rescanned per record cost ~4% of a core
 * at 1k req/s); outcomes leave the window one bucket (window / BUCKETS) at a time.
 * No clocks: callers pass `now`. No I/O. Plain TypeScript: it runs on every attempt.
 */

export type Outcome = "ok" | "slow" | "failure"

/** Resolution of the sliding window: outcomes leave it one bucket (window / 30) at a time. */
export const BUCKETS = 30

export class OutcomeWindow {
  private readonly width: number
  private readonly bucketIndex: Array<number>
  private readonly bucketOk: Array<number>
  private readonly bucketSlow: Array<number>
  private readonly bucketFailure: Array<number>
  private totalValue = 0
  private slowValue = 0
  private failuresValue = 0

  constructor(windowMs: number) {
    this.width = Math.max(1, windowMs / BUCKETS)
    this.bucketIndex = new Array<number>(BUCKETS).fill(-Infinity)
    this.bucketOk = new Array<number>(BUCKETS).fill(0)
    this.bucketSlow = new Array<number>(BUCKETS).fill(0)
    this.bucketFailure = new Array<number>(BUCKETS).fill(0)
  }

  /** Outcomes in the window as of the last `record` or `expire`. */
  get total(): number {
    return this.totalValue
  }

  get slow(): number {
    return this.slowValue
  }

  get failures(): number {
    return this.failuresValue
  }

  record(outcome: Outcome, now: number): void {
    const slot = this.bucketFor(now)
    this.totalValue++
    if (outcome === "failure") {
      this.bucketFailure[slot]!++
      this.failuresValue++
    } else if (outcome === "slow") {
      this.bucketSlow[slot]!++
      this.slowValue++
    } else {
      this.bucketOk[slot]!++
    }
  }

  /** Drops the buckets that left the window at `now`. */
  expire(now: number): void {
    const oldest = Math.floor(now / this.width) - BUCKETS + 1
    for (let slot = 0; slot < BUCKETS; slot++) {
      if (this.bucketIndex[slot]! < oldest && this.bucketIndex[slot] !== -Infinity) this.clear(slot, -Infinity)
    }
  }

  reset(): void {
    for (let slot = 0; slot < BUCKETS; slot++) this.clear(slot, -Infinity)
  }

  /** Drops buckets that left the window; returns the slot of `now`'s bucket, cleared if reused. */
  private bucketFor(now: number): number {
    this.expire(now)
    const index = Math.floor(now / this.width)
    const slot = ((index % BUCKETS) + BUCKETS) % BUCKETS
    if (this.bucketIndex[slot] !== index) this.clear(slot, index)
    return slot
  }

  private clear(slot: number, index: number): void {
    this.totalValue -= this.bucketOk[slot]! + this.bucketSlow[slot]! + this.bucketFailure[slot]!
    this.slowValue -= this.bucketSlow[slot]!
    this.failuresValue -= this.bucketFailure[slot]!
    this.bucketOk[slot] = 0
    this.bucketSlow[slot] = 0
    this.bucketFailure[slot] = 0
    this.bucketIndex[slot] = index
  }
}
