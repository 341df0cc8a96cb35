/**
 * Fault injection: the knobs (a JSON-friendly record), their validation, and the seeded draws that decide
 * which requests fail and how.
 *
 * Owns: the `Faults` shape (admin API, SimulatorOptions, fleet YAML all use it), the per-instance fault state
 * (current knobs, cold-start deadline) and the fault PRNG. Every request draws the same number of uniforms in
 * arrival order, so a run is reproducible under the seed whatever the rates are.
 * Must never: write to a socket or touch the engine; the wire acts on a `RequestFaults` verdict.
 *
 * Durations are in simulated seconds (divided by the instance's time scale on the wall clock), except
 * `retryAfterSeconds`, which is sent to clients verbatim in `retry-after`.
 */
import { Result, Schema } from "effect"
import { makeRng, type Rng } from "./engine/random.ts"

const Rate = Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1 }))
const NonNegative = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))
const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

export const FaultsSchema = Schema.Struct({
  /** P(request fails before its first token) with `errorStatus`. */
  errorRate: Rate,
  errorStatus: Schema.Literals([429, 500, 503]),
  retryAfterSeconds: Count,
  /** P(stream breaks with an in-stream error event after `midStreamAfterTokens` tokens, status already 200). */
  midStreamErrorRate: Rate,
  midStreamAfterTokens: Count,
  /** P(stream goes silent for `stallSeconds` after `stallAfterTokens` tokens). */
  stallRate: Rate,
  stallSeconds: NonNegative,
  stallAfterTokens: Count,
  /** P(one chunk of the stream is invalid JSON, after `malformedAfterTokens` tokens). */
  malformedRate: Rate,
  malformedAfterTokens: Count,
  /** P(output is a repetition loop that runs to max_tokens). */
  degenerateRate: Rate,
  /** P(per engine step) of an out-of-memory crash of the batch: every running sequence fails. */
  oomRate: Rate,
  /** The model is loading for this long from start (or from the PUT that sets it): 503 everywhere, /health too. */
  coldStartSeconds: NonNegative,
  /** P(the connection is reset, no goodbye, after `resetAfterTokens` tokens). */
  resetRate: Rate,
  resetAfterTokens: Count,
  /** Step-time multiplier: 1 = normal, 4 = four times slower (throughput collapse). */
  slow: Schema.Number.check(Schema.isBetween({ minimum: 0.01, maximum: 1000 })),
  /**
   * The next API request kills the engine process (or thread): `throw` raises an uncaught exception from a
   * timer callback (as an engine bug would), `oom` allocates until the heap is exhausted. `none`: off.
   */
  crash: Schema.Literals(["none", "throw", "oom"])
})

export type Faults = typeof FaultsSchema.Type

export const FaultsPatchSchema = FaultsSchema.mapFields((fields) => ({
  errorRate: Schema.optionalKey(fields.errorRate),
  errorStatus: Schema.optionalKey(fields.errorStatus),
  retryAfterSeconds: Schema.optionalKey(fields.retryAfterSeconds),
  midStreamErrorRate: Schema.optionalKey(fields.midStreamErrorRate),
  midStreamAfterTokens: Schema.optionalKey(fields.midStreamAfterTokens),
  stallRate: Schema.optionalKey(fields.stallRate),
  stallSeconds: Schema.optionalKey(fields.stallSeconds),
  stallAfterTokens: Schema.optionalKey(fields.stallAfterTokens),
  malformedRate: Schema.optionalKey(fields.malformedRate),
  malformedAfterTokens: Schema.optionalKey(fields.malformedAfterTokens),
  degenerateRate: Schema.optionalKey(fields.degenerateRate),
  oomRate: Schema.optionalKey(fields.oomRate),
  coldStartSeconds: Schema.optionalKey(fields.coldStartSeconds),
  resetRate: Schema.optionalKey(fields.resetRate),
  resetAfterTokens: Schema.optionalKey(fields.resetAfterTokens),
  slow: Schema.optionalKey(fields.slow),
  crash: Schema.optionalKey(fields.crash)
}))

export type FaultsPatch = typeof FaultsPatchSchema.Type

export const defaultFaults: Faults = {
  errorRate: 0,
  errorStatus: 503,
  retryAfterSeconds: 1,
  midStreamErrorRate: 0,
  midStreamAfterTokens: 4,
  stallRate: 0,
  stallSeconds: 5,
  stallAfterTokens: 2,
  malformedRate: 0,
  malformedAfterTokens: 2,
  degenerateRate: 0,
  oomRate: 0,
  coldStartSeconds: 0,
  resetRate: 0,
  resetAfterTokens: 3,
  slow: 1,
  crash: "none"
}

const decodePatch = Schema.decodeUnknownResult(FaultsPatchSchema, { onExcessProperty: "error", errors: "all" })

/** Validates a partial fault record (unknown keys are rejected); the error text names the offending path. */
export const parseFaultsPatch = (input: unknown): Result.Result<FaultsPatch, string> =>
  Result.mapError(decodePatch(input), (e) => e.message)

/** What happens to one request. Token positions are -1 when the fault does not hit this request. */
export interface RequestFaults {
  readonly failBeforeFirstToken: boolean
  readonly midStreamErrorAt: number
  readonly stallAt: number
  readonly malformedAt: number
  readonly degenerate: boolean
  readonly resetAt: number
}

/** Mutable per-instance fault state. Time arguments are wall-clock milliseconds (monotonic). */
export class FaultState {
  private faults: Faults
  private loadingUntil = 0
  private readonly requestRng: Rng
  private readonly stepRng: Rng

  constructor(
    initial: Partial<Faults>,
    seed: number,
    private readonly timeScale: number,
    nowMs: number
  ) {
    this.faults = { ...defaultFaults }
    this.requestRng = makeRng(seed ^ 0x0fa017)
    this.stepRng = makeRng(seed ^ 0x00d00d)
    this.apply(initial, nowMs)
  }

  get current(): Faults {
    return this.faults
  }

  apply(patch: Partial<Faults>, nowMs: number): void {
    this.faults = { ...this.faults, ...patch }
    if (patch.coldStartSeconds !== undefined) {
      this.loadingUntil = nowMs + (patch.coldStartSeconds * 1000) / this.timeScale
    }
  }

  isLoading(nowMs: number): boolean {
    return nowMs < this.loadingUntil
  }

  /** Simulated seconds until the model is loaded (0 when loaded). */
  loadingRemainingSeconds(nowMs: number): number {
    return Math.max(0, ((this.loadingUntil - nowMs) * this.timeScale) / 1000)
  }

  /** Decides one request's faults (always six draws, in a fixed order). */
  drawRequest(): RequestFaults {
    const f = this.faults
    const u = this.requestRng
    const fail = u() < f.errorRate
    const mid = u() < f.midStreamErrorRate
    const stall = u() < f.stallRate
    const malformed = u() < f.malformedRate
    const degenerate = u() < f.degenerateRate
    const reset = u() < f.resetRate
    return {
      failBeforeFirstToken: fail,
      midStreamErrorAt: mid ? f.midStreamAfterTokens : -1,
      stallAt: stall ? f.stallAfterTokens : -1,
      malformedAt: malformed ? f.malformedAfterTokens : -1,
      degenerate,
      resetAt: reset ? f.resetAfterTokens : -1
    }
  }

  /** Whether this engine step runs out of memory (one draw per step). */
  drawOom(): boolean {
    return this.faults.oomRate > 0 && this.stepRng() < this.faults.oomRate
  }

  /** Wall-clock milliseconds a stall lasts. */
  stallWallMs(): number {
    return (this.faults.stallSeconds * 1000) / this.timeScale
  }
}
