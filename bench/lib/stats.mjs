/**
 * Small exact statistics for the harness: percentiles over all recorded samples (no
 * histogram buckets, so p99 is the real 99th sample), medians over repeats, ratios.
 * Pure functions; never reads a clock or the environment.
 */

/** Percentile (0..100) of an array of numbers, by nearest rank; NaN when empty. */
export const percentile = (values, p) => {
  if (values.length === 0) return NaN
  const sorted = Float64Array.from(values).sort()
  return sortedPercentile(sorted, p)
}

export const sortedPercentile = (sorted, p) => {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]
}

/** p50, p90, p99, p99.9 and max of the samples. */
export const summary = (values) => {
  const sorted = Float64Array.from(values).sort()
  return {
    n: sorted.length,
    p50: sortedPercentile(sorted, 50),
    p90: sortedPercentile(sorted, 90),
    p99: sortedPercentile(sorted, 99),
    p999: sortedPercentile(sorted, 99.9),
    max: sorted.length === 0 ? NaN : sorted[sorted.length - 1],
    mean: sorted.length === 0 ? NaN : sorted.reduce((a, b) => a + b, 0) / sorted.length
  }
}

/** Median of the finite values (repeats that produced no figure are ignored). */
export const median = (values) => {
  const v = values.filter((x) => typeof x === "number" && !Number.isNaN(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const m = Math.floor(v.length / 2)
  return v.length % 2 === 1 ? v[m] : (v[m - 1] + v[m]) / 2
}

export const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN)

export const round = (x, digits = 3) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x)
