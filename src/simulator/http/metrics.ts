/**
 * `/metrics` in the Prometheus text format, under vLLM's names (backends.md §1.2) or SGLang's (§1.3).
 *
 * Owns: metric names, label sets (`model_name`, plus vLLM's `engine`), and histogram exposition (cumulative
 * buckets, `_sum`, `_count`). Counters carry the `_total` suffix as prometheus_client emits them.
 * Must never: compute statistics itself (the engine's counters are the source), or emit an unbounded label value.
 */
import type { EngineCounters, Histogram } from "../engine/counters.ts"
import type { SimContext } from "./wire.ts"

const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

const labelText = (labels: Readonly<Record<string, string>>): string => {
  const keys = Object.keys(labels).sort()
  return keys.length === 0 ? "" : `{${keys.map((k) => `${k}="${esc(labels[k]!)}"`).join(",")}}`
}

const fmt = (x: number) => (Number.isInteger(x) ? x.toFixed(1) : String(x))

class Exposition {
  private readonly lines: Array<string> = []
  constructor(private readonly base: Readonly<Record<string, string>>) {}

  private header(name: string, type: string, help: string) {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
  }

  gauge(name: string, help: string, value: number, extra: Readonly<Record<string, string>> = {}) {
    this.header(name, "gauge", help)
    this.lines.push(`${name}${labelText({ ...this.base, ...extra })} ${fmt(value)}`)
  }

  counter(name: string, help: string, values: ReadonlyArray<readonly [Readonly<Record<string, string>>, number]>) {
    this.header(name, "counter", help)
    for (const [extra, v] of values) this.lines.push(`${name}_total${labelText({ ...this.base, ...extra })} ${fmt(v)}`)
  }

  histogram(name: string, help: string, h: Histogram) {
    this.header(name, "histogram", help)
    let cum = 0
    for (let i = 0; i < h.buckets.length; i++) {
      cum += h.counts[i]!
      this.lines.push(`${name}_bucket${labelText({ ...this.base, le: String(h.buckets[i]) })} ${fmt(cum)}`)
    }
    this.lines.push(`${name}_bucket${labelText({ ...this.base, le: "+Inf" })} ${fmt(h.count)}`)
    this.lines.push(`${name}_count${labelText(this.base)} ${fmt(h.count)}`)
    this.lines.push(`${name}_sum${labelText(this.base)} ${fmt(h.sum)}`)
  }

  info(name: string, help: string, labels: Readonly<Record<string, string>>) {
    this.gauge(name, help, 1, labels)
  }

  text(): string {
    return this.lines.join("\n") + "\n"
  }
}

export const renderVllmMetrics = (ctx: SimContext): string => {
  const e = ctx.engine
  const c: EngineCounters = e.counters
  const p = ctx.profile
  const m = new Exposition({ model_name: ctx.model, engine: "0" })
  m.gauge("vllm:num_requests_running", "Number of requests in model execution batches.", e.numRunning)
  m.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", e.numWaiting)
  m.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", e.kv.usage)
  m.gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage (deprecated alias).", e.kv.usage)
  m.counter("vllm:num_preemptions", "Cumulative number of preemptions from the engine.", [[{}, c.preemptions]])
  m.counter("vllm:prompt_tokens", "Number of prefill tokens processed.", [[{}, c.promptTokens]])
  m.counter("vllm:generation_tokens", "Number of generation tokens processed.", [[{}, c.generationTokens]])
  m.counter("vllm:prefix_cache_queries", "Prefix cache queries, in tokens.", [[{}, c.prefixQueries]])
  m.counter("vllm:prefix_cache_hits", "Prefix cache hits, in tokens.", [[{}, c.prefixHits]])
  m.counter("vllm:gpu_prefix_cache_queries", "GPU prefix cache queries (deprecated).", [[{}, c.prefixQueries]])
  m.counter("vllm:gpu_prefix_cache_hits", "GPU prefix cache hits (deprecated).", [[{}, c.prefixHits]])
  m.counter("vllm:request_success", "Count of successfully processed requests.", [
    [{ finished_reason: "stop" }, c.finishedStop],
    [{ finished_reason: "length" }, c.finishedLength],
    [{ finished_reason: "abort" }, c.aborted],
    [{ finished_reason: "error" }, c.failed]
  ])
  m.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", c.ttft)
  m.histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", c.itl)
  m.histogram("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", c.itl)
  m.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", c.e2e)
  m.info("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", {
    block_size: String(p.blockSize),
    cache_dtype: p.kvCacheDtype,
    enable_prefix_caching: "True",
    gpu_memory_utilization: String(p.gpuMemoryUtilization),
    num_gpu_blocks: String(p.numGpuBlocks),
    num_cpu_blocks: "0"
  })
  return m.text()
}

export const renderSglangMetrics = (ctx: SimContext): string => {
  const e = ctx.engine
  const c = e.counters
  const p = ctx.profile
  const m = new Exposition({ model_name: ctx.model })
  m.gauge("sglang:num_running_reqs", "The number of running requests.", e.numRunning)
  m.gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", e.numWaiting)
  m.gauge("sglang:token_usage", "The token usage (fraction of KV pages in use).", e.kv.usage)
  m.gauge("sglang:num_used_tokens", "The number of used tokens.", e.kv.usedBlocks * p.blockSize)
  m.gauge("sglang:cache_hit_rate", "The prefix cache hit rate.", c.prefixQueries === 0 ? 0 : c.prefixHits / c.prefixQueries)
  m.gauge("sglang:gen_throughput", "The generation throughput (token/s).", c.genThroughput)
  m.counter("sglang:prompt_tokens", "Number of prefill tokens processed.", [[{}, c.promptTokens]])
  m.counter("sglang:generation_tokens", "Number of generation tokens processed.", [[{}, c.generationTokens]])
  m.counter("sglang:num_requests", "Number of requests processed.", [[{}, c.finishedStop + c.finishedLength]])
  m.histogram("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.", c.ttft)
  m.histogram("sglang:time_per_output_token_seconds", "Histogram of time per output token in seconds.", c.itl)
  m.histogram("sglang:e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds", c.e2e)
  m.info("sglang:cache_config_info", "Cache configuration.", {
    page_size: String(p.blockSize),
    num_pages: String(p.numGpuBlocks)
  })
  return m.text()
}
