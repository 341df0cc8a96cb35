/**
 * The built-in plugins by the name the config uses. The registry (../Registry.ts) starts
 * from these tables; extensions add their own plugins through its layers, not here.
 */
import type { FilterFactory, PickerFactory, ScorerFactory } from "../Contract.ts"
import { breaker } from "./breaker/index.ts"
import { cost } from "./cost/index.ts"
import { headroom } from "./headroom/index.ts"
import { health } from "./health/index.ts"
import { kvUsage } from "./kv_usage/index.ts"
import { maxScore } from "./max_score/index.ts"
import { modelServed } from "./model_served/index.ts"
import { p2c } from "./p2c/index.ts"
import { predictedTtft } from "./predicted_ttft/index.ts"
import { prefixCache } from "./prefix_cache/index.ts"
import { quantization } from "./quantization/index.ts"
import { queueDepth } from "./queue_depth/index.ts"
import { saturation } from "./saturation/index.ts"
import { sessionAffinity } from "./session_affinity/index.ts"
import { sku } from "./sku/index.ts"
import { tenant } from "./tenant/index.ts"
import { weightedRandom } from "./weighted_random/index.ts"

export const builtinFilters: Readonly<Record<string, FilterFactory>> = {
  model_served: modelServed,
  health,
  breaker,
  quantization,
  sku,
  saturation,
  tenant
}

export const builtinScorers: Readonly<Record<string, ScorerFactory>> = {
  queue_depth: queueDepth,
  kv_usage: kvUsage,
  prefix_cache: prefixCache,
  session_affinity: sessionAffinity,
  headroom,
  predicted_ttft: predictedTtft,
  cost
}

export const builtinPickers: Readonly<Record<string, PickerFactory>> = {
  max_score: maxScore,
  p2c,
  weighted_random: weightedRandom
}
