/**
 * The benchmark's fleet: a heterogeneous set of simulated engines (H100 and A100; 8B and
 * 70B), started once in a child process (`src/simulator/main.ts --fleet`), and the gateway
 * config that fronts it with a chosen routing policy.
 *
 * Owns the fleet's shape and the per-policy gateway config. Must never: change engine
 * profiles (the simulator's calibrated numbers are what is measured) or give one policy
 * settings another does not get.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const MODEL_8B = "llama-3.1-8b"
export const MODEL_70B = "llama-3.3-70b"

export interface Engine {
  readonly id: string
  readonly model: string
  readonly profile: string
  readonly gpu: string
  readonly quantization: string
  /** Relative price per GPU-second (cost scorer; not in the default weights). */
  readonly cost: number
}

/**
 * 8B: two H100 and two A100-80GB engines (BF16, ≈430K KV tokens each: 26,875 blocks of 16).
 * 70B: two FP8 engines on 2×H100 (TP2, ≈460K KV tokens each).
 */
export const ENGINES: ReadonlyArray<Engine> = [
  { id: "h100-8b-1", model: MODEL_8B, profile: "llama-3.1-8b-bf16-h100", gpu: "H100", quantization: "bf16", cost: 1 },
  { id: "h100-8b-2", model: MODEL_8B, profile: "llama-3.1-8b-bf16-h100", gpu: "H100", quantization: "bf16", cost: 1 },
  { id: "a100-8b-1", model: MODEL_8B, profile: "llama-3.1-8b-bf16-a100", gpu: "A100-80GB", quantization: "bf16", cost: 0.6 },
  { id: "a100-8b-2", model: MODEL_8B, profile: "llama-3.1-8b-bf16-a100", gpu: "A100-80GB", quantization: "bf16", cost: 0.6 },
  { id: "h100x2-70b-1", model: MODEL_70B, profile: "llama-3.3-70b-fp8-2xh100", gpu: "2xH100", quantization: "fp8", cost: 2 },
  { id: "h100x2-70b-2", model: MODEL_70B, profile: "llama-3.3-70b-fp8-2xh100", gpu: "2xH100", quantization: "fp8", cost: 2 }
]

export interface RunningFleet {
  /** Engine id → base URL (no /v1). */
  readonly urls: ReadonlyMap<string, string>
  readonly stop: () => Promise<void>
}

/**
 * Starts every engine in one child process at `timeScale`; resolves when all listen. `kvBlocks`
 * shrinks every engine's KV cache (cache-churn runs); undefined keeps the profiles' capacity.
 */
export const startFleet = (timeScale: number, seed: number, kvBlocks?: number): Promise<RunningFleet> => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-bench-"))
  const file = join(dir, "fleet.yaml")
  const lines = [
    `defaults: { host: 127.0.0.1, timeScale: ${timeScale}, jitter: 0.05${kvBlocks === undefined ? "" : `, kvBlocks: ${kvBlocks}`} }`,
    "instances:",
    ...ENGINES.map((e, i) => `  - { profile: ${e.profile}, model: ${e.model}, seed: ${seed + i} }`)
  ]
  writeFileSync(file, lines.join("\n") + "\n")
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "src/simulator/main.ts", "--fleet", file], {
    stdio: ["ignore", "pipe", "inherit"]
  })
  return new Promise((resolve, reject) => {
    const found: Array<string> = []
    let buffer = ""
    const onExit = (code: number | null) => reject(new Error(`simulator fleet exited early (${code})`))
    child.once("exit", onExit)
    child.stdout!.setEncoding("utf8")
    child.stdout!.on("data", (chunk: string) => {
      buffer += chunk
      let nl: number
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        const url = /(http:\/\/\S+)\s*$/.exec(line)?.[1]
        if (url !== undefined) found.push(url)
        if (found.length === ENGINES.length) {
          child.off("exit", onExit)
          resolve({
            urls: new Map(ENGINES.map((e, i) => [e.id, found[i]!])),
            stop: () =>
              new Promise<void>((done) => {
                if (child.exitCode !== null) return done()
                child.once("exit", () => done())
                child.kill("SIGTERM")
                setTimeout(() => child.kill("SIGKILL"), 5000).unref()
              })
          })
        }
      }
    })
  })
}

/**
 * A routing policy; `inference/<picker>` runs the inference policy with another picker;
 * `inference+kv` is the inference policy with every backend subscribed to its engine's KV events
 * (precise prefix index; every other policy runs with `kv_events: false`, the approximate index).
 */
export type Policy =
  | "inference"
  | "inference+kv"
  | "inference/p2c"
  | "inference/weighted_random"
  | "round_robin"
  | "least_outstanding"
  | "random"
export const POLICIES: ReadonlyArray<Policy> = ["inference", "round_robin", "least_outstanding", "random"]

/**
 * The gateway config for one run. Every policy gets the same limits, set so that the
 * gateway itself never queues or sheds (slots and connections above any engine queue; no cap
 * on the listener's connections, since every simulated user connects from 127.0.0.1 and the
 * default 1,000 per address reset the connections of an overloaded run): what is measured
 * is where requests are sent, not gateway admission.
 */
export const gatewayYaml = (policy: Policy, urls: ReadonlyMap<string, string>, seed: number): string => `
models:
  - { name: ${MODEL_8B}, default_max_tokens: 256, tokenizer: cl100k }
  - { name: ${MODEL_70B}, default_max_tokens: 256, tokenizer: cl100k }
backends:
${ENGINES.map((e) => `  - { id: ${e.id}, url: "${urls.get(e.id)}/v1", models: [${e.model}], gpu: ${e.gpu}, quantization: ${e.quantization}, profile: ${e.profile}, cost_per_gpu_second: ${e.cost}, metrics: vllm, kv_events: ${policy === "inference+kv"}, max_concurrency: 4096, connections: 4096 }`).join("\n")}
routing:
  policy: ${policy.split("/")[0]!.split("+")[0]}
  picker: ${policy.split("/")[1] ?? "max_score"}
  seed: ${seed}
server: { max_connections: 0, max_connections_per_address: 0 }
timeouts: { first_token: 10m, idle: 5m, total: 30m, queue: 1m }
retries: { max_attempts: 2 }
health: { probe_interval: 1h, scrape_interval: 500ms, min_tokens_per_second: 0 }
breakers: { min_requests: 1000000 }
`
