import { describe, expect, it } from "vitest"
import * as EngineMetrics from "../../src/backends/EngineMetrics.ts"

const vllm = (queries: number, hits: number) => `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 7.0
vllm:num_requests_waiting{engine="0",model_name="llama"} 3.0
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.42
vllm:prefix_cache_queries_total{engine="0",model_name="llama"} ${queries}
vllm:prefix_cache_hits_total{engine="0",model_name="llama"} ${hits}
vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",num_gpu_blocks="27000"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="llama"} 0.0
`

describe("EngineMetrics", () => {
  it("reads vLLM's gauges, cache config and prefix hit rate between scrapes", () => {
    const first = EngineMetrics.signals("vllm", vllm(1000, 200), undefined, 1)
    expect(first.signals).toMatchObject({ waiting: 3, running: 7, kvUsage: 0.42, blockSize: 16, numGpuBlocks: 27000 })
    expect(first.signals.prefixHitRate).toBeUndefined()
    const second = EngineMetrics.signals("vllm", vllm(2000, 950), first.counters, 2)
    expect(second.signals.prefixHitRate).toBeCloseTo(0.75)
  })

  it("reads SGLang's names", () => {
    const text = `sglang:num_running_reqs{model_name="m"} 4
sglang:num_queue_reqs{model_name="m"} 9
sglang:token_usage{model_name="m"} 0.8
sglang:cache_hit_rate{model_name="m"} 0.33
sglang:cache_config_info{page_size="1",num_pages="500000"} 1
`
    expect(EngineMetrics.signals("sglang", text, undefined, 0).signals).toMatchObject({
      waiting: 9,
      running: 4,
      kvUsage: 0.8,
      prefixHitRate: 0.33,
      blockSize: 1
    })
  })

  it("sums over several models behind one endpoint and tolerates junk lines", () => {
    const text = `trtllm_num_requests_waiting{model="a"} 2
trtllm_num_requests_waiting{model="b"} 5
garbage line
trtllm_kv_cache_utilization 0.5
`
    expect(EngineMetrics.signals("trtllm", text, undefined, 0).signals).toMatchObject({ waiting: 7, running: 0, kvUsage: 0.5 })
  })

  it("knows where each engine serves its metrics", () => {
    expect(EngineMetrics.metricsPath("vllm")).toBe("/metrics")
    expect(EngineMetrics.metricsPath("nim")).toBe("/v1/metrics")
    expect(EngineMetrics.metricsPath("none")).toBeUndefined()
  })
})
