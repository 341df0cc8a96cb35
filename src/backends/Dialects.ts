/**
 * The dialect registry: every wire protocol a backend may speak (`backends[].dialect`), as a
 * service of the gateway's graph. It starts with the built-ins (dialects/<dialect>/) and
 * extension layers add entries (`Dialects.add({ name: "tgi-native", ... })`); a factory may
 * depend on other services, resolved when its layer is built. The fleet reads it when it
 * builds the backends, which seals it: an entry added later is a defect.
 *
 * Owns the names, the factories and each dialect's defaults (metrics flavour, whether its
 * engines speak vLLM's `kv_transfer_params`). Must never: hold per-backend state.
 */
import { Context, Effect, Layer } from "effect"
import { PlanChecks } from "../config/Checks.ts"
import * as NameTable from "../domain/NameTable.ts"
import type { BackendPlan, MetricsFlavour, Plan } from "../config/Plan.ts"
import type { Adapter, AdapterOptions } from "./Contract.ts"
import * as Anthropic from "./dialects/anthropic/Client.ts"
import * as Ollama from "./dialects/ollama/Client.ts"
import * as OpenAI from "./dialects/openai/Client.ts"
import * as Sglang from "./dialects/sglang/Client.ts"
import type { UpstreamPool } from "./Upstream.ts"

export const MAX_EVENT_BYTES = 1024 * 1024
/** Bound on SGLang's `/abort_request` call in the attempt's finalizer. */
export const ABORT_TIMEOUT_MS = 1000

/** What a dialect's factory is given to build the adapter of one backend endpoint. */
export interface DialectContext {
  readonly backend: BackendPlan
  readonly pool: UpstreamPool
  readonly options: AdapterOptions
}

export interface Dialect {
  readonly name: string
  /** The engine metrics scraped when the backend's config does not say (`none`: no scraping). */
  readonly metrics: MetricsFlavour
  readonly make: (ctx: DialectContext) => Adapter
}

export type DialectsShape = NameTable.NameTable<Dialect>

const openai = (name: "openai" | "vllm" | "llamacpp" | "nim" | "tgi", metrics: MetricsFlavour): Dialect => ({
  name,
  metrics,
  make: ({ pool, options }) => OpenAI.make(pool, { dialect: name, ...options })
})

/** The dialects Sluice ships. */
export const builtins: ReadonlyArray<Dialect> = [
  // Hosted OpenAI has no metrics endpoint; a simulated "openai" engine gets vLLM's (Plan.ts).
  openai("openai", "none"),
  openai("vllm", "vllm"),
  openai("llamacpp", "llamacpp"),
  openai("nim", "nim"),
  openai("tgi", "tgi"),
  {
    name: "sglang",
    metrics: "sglang",
    make: ({ pool, options }) => Sglang.make(pool, { ...options, abortTimeoutMs: ABORT_TIMEOUT_MS })
  },
  { name: "anthropic", metrics: "none", make: ({ pool, options }) => Anthropic.make(pool, options) },
  { name: "ollama", metrics: "none", make: ({ pool, options }) => Ollama.make(pool, options) }
]

export class Dialects extends Context.Service<Dialects, DialectsShape>()("sluice/backends/Dialects") {
  /** The built-in dialects; every backend's dialect is checked against the registry (at start and on reload). */
  static readonly layer: Layer.Layer<Dialects, never, PlanChecks> = Layer.effect(
    Dialects,
    Effect.map(PlanChecks, (checks) => {
      const registry = make(builtins)
      checks.add((plan) =>
        plan.backends.flatMap((b, i) =>
          registry.get(b.dialect) === undefined
            ? [{ path: `backends[${i}].dialect`, message: NameTable.unknown("dialect", b.dialect, registry) }]
            : []
        )
      )
      return registry
    })
  )

  /** A layer that registers a dialect; given as an Effect, it may use other services to build it. */
  static add(dialect: Dialect): Layer.Layer<never, never, Dialects>
  static add<E, R>(dialect: Effect.Effect<Dialect, E, R>): Layer.Layer<never, E, R | Dialects>
  static add<E, R>(dialect: Effect.Effect<Dialect, E, R> | Dialect): Layer.Layer<never, E, R | Dialects> {
    return Layer.effectDiscard(Effect.gen(function*() {
      const registry = yield* Dialects
      const built = Effect.isEffect(dialect) ? yield* dialect : dialect
      registry.add(built.name, built)
    }))
  }
}

export const make = (initial: ReadonlyArray<Dialect>): DialectsShape =>
  NameTable.make("dialect", initial.map((d) => [d.name, d] as const))

/** The bounds every adapter is built with, from the plan's timeouts and limits. */
export const adapterOptions = (plan: Pick<Plan, "timeouts" | "limits">): AdapterOptions => ({
  firstTokenMs: plan.timeouts.firstTokenMs,
  totalMs: plan.timeouts.totalMs,
  maxEventBytes: MAX_EVENT_BYTES,
  maxResponseBytes: plan.limits.maxResponseBytes
})
