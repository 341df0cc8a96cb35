/**
 * Reads the metric selectors out of PromQL (dashboards, alert rules) with Prometheus's own
 * grammar (@prometheus-io/lezer-promql), so a test can check each query against what
 * Sluice exports. Grafana's `$__…` interval variables are replaced by a duration first;
 * `$var` inside label values are plain strings to PromQL.
 */
import { parser } from "@prometheus-io/lezer-promql"

export interface Selector {
  readonly metric: string
  /** Label names the selector matches on (`{kind="completion"}` → kind). */
  readonly labels: ReadonlyArray<string>
}

export interface Parsed {
  readonly selectors: ReadonlyArray<Selector>
  /** Syntax errors (empty when the query is valid PromQL). */
  readonly errors: ReadonlyArray<string>
}

const grafanaIntervals = /\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}/g

export const parse = (expr: string): Parsed => {
  const text = expr.replace(grafanaIntervals, "5m")
  const selectors: Array<Selector> = []
  const errors: Array<string> = []
  parser.parse(text).iterate({
    enter: (node) => {
      if (node.type.isError) {
        errors.push(`syntax error at ${node.from}: "${text.slice(Math.max(0, node.from - 10), node.to + 10)}"`)
        return
      }
      if (node.name !== "VectorSelector") return
      const id = node.node.getChild("Identifier")
      const labels: Array<string> = []
      const matchers = node.node.getChild("LabelMatchers")
      for (const m of matchers?.getChildren("UnquotedLabelMatcher") ?? []) {
        const name = m.getChild("LabelName")
        if (name !== null) labels.push(text.slice(name.from, name.to))
      }
      if (id !== null) selectors.push({ metric: text.slice(id.from, id.to), labels })
    }
  })
  return { selectors, errors }
}

/** `label_values(metric, label)` (Grafana's variable query) → the metric and label. */
export const labelValues = (query: string): Selector | undefined => {
  const m = /^\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*([a-zA-Z_]\w*)\s*\)\s*$/.exec(query)
  return m === null ? undefined : { metric: m[1]!, labels: [m[2]!] }
}

export interface Exposition {
  /** Metric family → its type (`# TYPE` lines). */
  readonly families: ReadonlyMap<string, string>
  /** Sample name (with `_bucket`/`_sum`/`_count`) → label names seen on it. */
  readonly samples: ReadonlyMap<string, ReadonlySet<string>>
}

/** Parses Prometheus text exposition (what `GET /metrics` returns). */
export const exposition = (text: string): Exposition => {
  const families = new Map<string, string>()
  const samples = new Map<string, Set<string>>()
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line)
    if (type !== null) {
      families.set(type[1]!, type[2]!)
      continue
    }
    if (line.startsWith("#") || line.trim() === "") continue
    const sample = /^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s/.exec(line)
    if (sample === null) continue
    const names = samples.get(sample[1]!) ?? new Set<string>()
    for (const l of (sample[3] ?? "").matchAll(/([a-zA-Z_]\w*)="(?:[^"\\]|\\.)*"/g)) names.add(l[1]!)
    samples.set(sample[1]!, names)
  }
  return { families, samples }
}

/**
 * Why a selector does not match what is exported (undefined: it does). Histogram
 * `_bucket`/`_sum`/`_count` count as their family; `instance` and `job` are added by
 * Prometheus when it scrapes, `le` by histograms.
 */
export const mismatch = (selector: Selector, exported: Exposition): string | undefined => {
  const seen = exported.samples.get(selector.metric)
  if (seen === undefined) {
    const base = selector.metric.replace(/_(bucket|sum|count)$/, "")
    return exported.families.get(base) === "histogram"
      ? `${selector.metric}: the histogram ${base} has no samples yet`
      : `${selector.metric} is not exported`
  }
  const unknown = selector.labels.filter((l) => !seen.has(l) && l !== "instance" && l !== "job" && l !== "__name__")
  return unknown.length === 0 ? undefined : `${selector.metric} has no label ${unknown.join(", ")} (it has ${[...seen].join(", ")})`
}
