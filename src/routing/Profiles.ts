/**
 * GPU profiles for routing estimates: the engine step-cost coefficients of a backend's
 * (model, SKU), taken from the simulator's fitted profiles (src/profiles/Profiles.ts,
 * backends.md §5.3–§5.4) when the backend names one (`profile:`, or its `simulate.profile`),
 * and a conservative default otherwise.
 *
 * Owns the mapping only. Must never: read backend state, or be consulted per token (a
 * profile is resolved once per backend plan and cached).
 */
import type { BackendPlan } from "../config/Plan.ts"
import { isProfileName, PROFILES } from "../profiles/Profiles.ts"
import type { GpuProfile } from "./Contract.ts"

/**
 * For a backend whose engine we know nothing about: the slowest calibrated profile (8B BF16
 * on an A100: ≈9K prefill tokens/s, 2,048-token steps) with half its KV capacity. Erring
 * slow keeps predictions pessimistic for unknown engines rather than attracting traffic.
 */
const DEFAULT: Omit<GpuProfile, "costPerGpuSecond"> = {
  name: "default",
  known: false,
  stepMs: 9,
  prefillMsPerToken: 0.11,
  decodeMsPerSeq: 0.05,
  kvMsPerContextToken: 0.000034,
  maxBatchedTokens: 2048,
  kvCapacityTokens: 200_000,
  gpuCount: 1
}

const byName = (name: string | undefined): Omit<GpuProfile, "costPerGpuSecond"> => {
  if (name === undefined || !isProfileName(name)) return DEFAULT
  const p = PROFILES[name]
  return {
    name,
    known: true,
    stepMs: p.c0Ms,
    prefillMsPerToken: p.prefillMsPerToken,
    decodeMsPerSeq: p.decodeMsPerSeq,
    kvMsPerContextToken: p.kvMsPerContextToken,
    maxBatchedTokens: p.maxNumBatchedTokens,
    kvCapacityTokens: p.numGpuBlocks * p.blockSize,
    gpuCount: p.gpuCount
  }
}

const cache = new WeakMap<BackendPlan, GpuProfile>()

/** The profile of a backend (cached per immutable plan). */
export const profileOf = (plan: BackendPlan): GpuProfile => {
  let p = cache.get(plan)
  if (p === undefined) {
    p = { ...byName(plan.profile), costPerGpuSecond: plan.costPerGpuSecond }
    cache.set(plan, p)
  }
  return p
}

export const defaultProfile: GpuProfile = { ...DEFAULT, costPerGpuSecond: 1 }
