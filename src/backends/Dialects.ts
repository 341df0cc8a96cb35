/**
 * The closed set of dialect adapters, chosen by the backend's configured dialect.
 * Adding a dialect means adding a folder under dialects/ and a case here.
 */
import type { BackendPlan, Plan } from "../config/Plan.ts"
import type { Adapter } from "./Contract.ts"
import * as Anthropic from "./dialects/anthropic/Client.ts"
import * as Ollama from "./dialects/ollama/Client.ts"
import * as OpenAI from "./dialects/openai/Client.ts"
import * as Sglang from "./dialects/sglang/Client.ts"
import type { UpstreamPool } from "./Upstream.ts"

export const MAX_EVENT_BYTES = 1024 * 1024
/** Bound on SGLang's `/abort_request` call in the attempt's finalizer. */
export const ABORT_TIMEOUT_MS = 1000

export const adapterFor = (backend: BackendPlan, pool: UpstreamPool, plan: Plan): Adapter => {
  const common = {
    firstTokenMs: plan.timeouts.firstTokenMs,
    totalMs: plan.timeouts.totalMs,
    maxEventBytes: MAX_EVENT_BYTES,
    maxResponseBytes: plan.limits.maxResponseBytes
  }
  switch (backend.dialect) {
    case "openai":
    case "vllm":
    case "llamacpp":
    case "nim":
    case "tgi":
      return OpenAI.make(pool, { dialect: backend.dialect, ...common })
    case "sglang":
      return Sglang.make(pool, { ...common, abortTimeoutMs: ABORT_TIMEOUT_MS })
    case "anthropic":
      return Anthropic.make(pool, common)
    case "ollama":
      return Ollama.make(pool, common)
  }
}
