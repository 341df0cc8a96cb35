/**
 * The names of the routing plugins, as the config chooses them (`routing.filters`,
 * `routing.scorers`, `routing.picker`). Kept apart from the plugins so the config can
 * validate names without loading them. Must never import anything.
 */

export const FILTERS = ["model_served", "health", "breaker", "quantization", "sku", "saturation", "tenant"] as const
export type FilterName = (typeof FILTERS)[number]

export const SCORERS = [
  "queue_depth",
  "kv_usage",
  "prefix_cache",
  "session_affinity",
  "headroom",
  "predicted_ttft",
  "cost"
] as const
export type ScorerName = (typeof SCORERS)[number]

export const PICKERS = ["max_score", "p2c", "weighted_random"] as const
export type PickerName = (typeof PICKERS)[number]
