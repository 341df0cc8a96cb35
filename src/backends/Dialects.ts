/**
 * The closed set of dialect adapters, chosen by the backend's configured dialect.
 * Adding a dialect means adding a folder under dialects/ and a case here.
 */
import type { BackendPlan, Plan } from "../config/Plan.ts"
import type { Adapter } from "./Contract.ts"
import * as OpenAI from "./dialects/openai/Client.ts"
import type { UpstreamPool } from "./Upstream.ts"

export const MAX_EVENT_BYTES = 1024 * 1024
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024

export const adapterFor = (backend: BackendPlan, pool: UpstreamPool, plan: Plan): Adapter => {
  const common = {
    firstTokenMs: plan.timeouts.firstTokenMs,
    totalMs: plan.timeouts.totalMs,
    maxEventBytes: MAX_EVENT_BYTES,
    maxResponseBytes: MAX_RESPONSE_BYTES
  }
  switch (backend.dialect) {
    case "openai":
    case "vllm":
    case "sglang":
    case "llamacpp":
    case "nim":
    case "tgi":
      return OpenAI.make(pool, { dialect: backend.dialect, ...common })
    case "anthropic":
    case "ollama":
      // Native dialects arrive with their own adapters; until then they are rejected at start.
      throw new Error(`dialect ${backend.dialect} is not supported yet`)
  }
}
