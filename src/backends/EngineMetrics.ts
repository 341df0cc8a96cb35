/**
 * Reads an engine's Prometheus `/metrics` into load signals, with the per-engine name map
 * of backends.md §1 (vLLM, SGLang, TensorRT-LLM, llama.cpp, NIM; TGI has queue size only).
 *
 * A small text-format parser: the scrape runs once a second per backend, off the request
 * path, and only a handful of series are read. Counters (prefix-cache queries and hits)
 * become a hit rate over the interval between two scrapes. Pure functions; the actor
 * owns the scraping loop.
 */
import type { MetricsFlavour } from "../config/Plan.ts"
import type { EngineSignals } from "./Backend.ts"

export interface Sample {
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** Parses the text exposition format into samples by metric name (comments skipped). */
export const parse = (text: string): Map<string, Array<Sample>> => {
  const out = new Map<string, Array<Sample>>()
  for (const raw of text.split("\n")) {
    if (raw === "" || raw.charCodeAt(0) === 35 /* # */) continue
    const m = LINE.exec(raw)
    if (m === null) continue
    const value = Number(m[4])
    if (Number.isNaN(value)) continue
    const labels: Record<string, string> = {}
    if (m[3] !== undefined) {
      for (const l of m[3].matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\"/g, "\"").replace(/\\\\/g, "\\")
    }
    const list = out.get(m[1]!)
    if (list === undefined) out.set(m[1]!, [{ labels, value }])
    else list.push({ labels, value })
  }
  return out
}

interface NameMap {
  readonly path: string
  readonly waiting: ReadonlyArray<string>
  readonly running: ReadonlyArray<string>
  readonly kvUsage: ReadonlyArray<string>
  readonly prefixQueries: ReadonlyArray<string>
  readonly prefixHits: ReadonlyArray<string>
  readonly hitRate: ReadonlyArray<string>
  readonly cacheInfo: ReadonlyArray<string>
  readonly blockSizeLabel: string
  readonly blocksLabel: string
}

const maps: Record<Exclude<MetricsFlavour, "none">, NameMap> = {
  vllm: {
    path: "/metrics",
    waiting: ["vllm:num_requests_waiting"],
    running: ["vllm:num_requests_running"],
    kvUsage: ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
    prefixQueries: ["vllm:prefix_cache_queries_total", "vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries_total"],
    prefixHits: ["vllm:prefix_cache_hits_total", "vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits_total"],
    hitRate: [],
    cacheInfo: ["vllm:cache_config_info"],
    blockSizeLabel: "block_size",
    blocksLabel: "num_gpu_blocks"
  },
  sglang: {
    path: "/metrics",
    waiting: ["sglang:num_queue_reqs"],
    running: ["sglang:num_running_reqs"],
    kvUsage: ["sglang:token_usage"],
    prefixQueries: [],
    prefixHits: [],
    hitRate: ["sglang:cache_hit_rate"],
    cacheInfo: ["sglang:cache_config_info"],
    blockSizeLabel: "page_size",
    blocksLabel: "num_pages"
  },
  trtllm: {
    path: "/metrics",
    waiting: ["trtllm_num_requests_waiting"],
    running: ["trtllm_num_requests_running"],
    kvUsage: ["trtllm_kv_cache_utilization"],
    prefixQueries: [],
    prefixHits: [],
    hitRate: [],
    cacheInfo: [],
    blockSizeLabel: "",
    blocksLabel: ""
  },
  llamacpp: {
    path: "/metrics",
    waiting: ["llamacpp:requests_deferred"],
    running: ["llamacpp:requests_processing"],
    kvUsage: [],
    prefixQueries: [],
    prefixHits: [],
    hitRate: [],
    cacheInfo: [],
    blockSizeLabel: "",
    blocksLabel: ""
  },
  nim: {
    path: "/v1/metrics",
    waiting: ["num_requests_waiting"],
    running: ["num_requests_running"],
    kvUsage: ["gpu_cache_usage_perc"],
    prefixQueries: [],
    prefixHits: [],
    hitRate: [],
    cacheInfo: [],
    blockSizeLabel: "",
    blocksLabel: ""
  },
  tgi: {
    path: "/metrics",
    waiting: ["tgi_queue_size"],
    running: ["tgi_batch_current_size"],
    kvUsage: [],
    prefixQueries: [],
    prefixHits: [],
    hitRate: [],
    cacheInfo: [],
    blockSizeLabel: "",
    blocksLabel: ""
  }
}

/** The path of the metrics endpoint (on the backend's origin), or undefined when not scraped. */
export const metricsPath = (flavour: MetricsFlavour): string | undefined =>
  flavour === "none" ? undefined : maps[flavour].path

const first = (samples: Map<string, Array<Sample>>, names: ReadonlyArray<string>): ReadonlyArray<Sample> | undefined => {
  for (const n of names) {
    const s = samples.get(n)
    if (s !== undefined && s.length > 0) return s
  }
  return undefined
}

/** Sums a series over its label sets (several model names or engines behind one endpoint). */
const sum = (samples: Map<string, Array<Sample>>, names: ReadonlyArray<string>): number | undefined => {
  const s = first(samples, names)
  return s === undefined ? undefined : s.reduce((n, x) => n + x.value, 0)
}

const max = (samples: Map<string, Array<Sample>>, names: ReadonlyArray<string>): number | undefined => {
  const s = first(samples, names)
  return s === undefined ? undefined : s.reduce((n, x) => Math.max(n, x.value), 0)
}

export interface Counters {
  readonly prefixQueries: number | undefined
  readonly prefixHits: number | undefined
}

/** Signals from one scrape; `previous` counters turn cumulative hits into a rate. */
export const signals = (
  flavour: Exclude<MetricsFlavour, "none">,
  text: string,
  previous: Counters | undefined,
  nowMs: number
): { readonly signals: EngineSignals; readonly counters: Counters } => {
  const map = maps[flavour]
  const samples = parse(text)
  const queries = sum(samples, map.prefixQueries)
  const hits = sum(samples, map.prefixHits)
  let prefixHitRate: number | undefined = max(samples, map.hitRate)
  if (prefixHitRate === undefined && queries !== undefined && hits !== undefined &&
    previous?.prefixQueries !== undefined && previous.prefixHits !== undefined) {
    const dq = queries - previous.prefixQueries
    const dh = hits - previous.prefixHits
    prefixHitRate = dq > 0 && dh >= 0 ? Math.min(1, dh / dq) : undefined
  }
  const info = first(samples, map.cacheInfo)?.[0]?.labels
  const blockSize = info?.[map.blockSizeLabel] !== undefined ? Number(info[map.blockSizeLabel]) : undefined
  const blocks = info?.[map.blocksLabel] !== undefined ? Number(info[map.blocksLabel]) : undefined
  return {
    signals: {
      waiting: sum(samples, map.waiting) ?? 0,
      running: sum(samples, map.running) ?? 0,
      kvUsage: max(samples, map.kvUsage),
      prefixHitRate,
      blockSize: Number.isFinite(blockSize) ? blockSize : undefined,
      numGpuBlocks: Number.isFinite(blocks) ? blocks : undefined,
      scrapedAtMs: nowMs
    },
    counters: { prefixQueries: queries, prefixHits: hits }
  }
}
