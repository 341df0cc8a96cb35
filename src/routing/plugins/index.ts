/**
 * The plugin registry: every filter, scorer and picker by the name the config uses
 * (Names.ts). A constant table, not a mutable global registry: adding a plugin is adding
 * a folder and a line here.
 */
import type { FilterFactory, PickerFactory, ScorerFactory } from "../Contract.ts"
import { breaker } from "./breaker/index.ts"
import { cost } from "./cost/index.ts"
import { headroom } from "./headroom/index.ts"
import { health } from "./health/index.ts"
import { kvUsage } from "./kv_usage/index.ts"
import { maxScore } from "./max_score/index.ts"
import { modelServed } from "./model_served/index.ts"
import type { FilterName, PickerName, ScorerName } from "./Names.ts"
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

export const filters: Readonly<Record<FilterName, FilterFactory>> = {
  model_served: modelServed,
  health,
  breaker,
  quantization,
  sku,
  saturation,
  tenant
}

export const scorers: Readonly<Record<ScorerName, ScorerFactory>> = {
  queue_depth: queueDepth,
  kv_usage: kvUsage,
  prefix_cache: prefixCache,
  session_affinity: sessionAffinity,
  headroom,
  predicted_ttft: predictedTtft,
  cost
}

export const pickers: Readonly<Record<PickerName, PickerFactory>> = {
  max_score: maxScore,
  p2c,
  weighted_random: weightedRandom
}

export const isFilterName = (s: string): s is FilterName => Object.hasOwn(filters, s)
export const isScorerName = (s: string): s is ScorerName => Object.hasOwn(scorers, s)
