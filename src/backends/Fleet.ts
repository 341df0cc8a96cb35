/**
 * The fleet: one `Backend` per configured endpoint, built from the plan when the graph
 * starts and torn down (pools destroyed) when its scope closes. Simulated engines named
 * in the plan are started here, inside the same scope, so `npm start` needs nothing else.
 */
import { Context, Data, Effect, Layer, type Scope } from "effect"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { BackendPlan, Plan } from "../config/Plan.ts"
import type { BackendId, ModelId } from "../domain/Ids.ts"
import { HealthReports, runLoops } from "./Actor.ts"
import { Backend } from "./Backend.ts"
import * as NameTable from "../domain/NameTable.ts"
import { adapterOptions, Dialects, type DialectsShape } from "./Dialects.ts"
import * as Upstream from "./Upstream.ts"

export class FleetError extends Data.TaggedError("FleetError")<{ readonly backend: string; readonly message: string }> {}

/** Starts the engine behind a `simulate:` backend and returns its base URL (with /v1). */
export class EngineLauncher extends Context.Service<EngineLauncher, {
  readonly launch: (backend: BackendPlan) => Effect.Effect<string, FleetError, Scope.Scope>
}>()("sluice/backends/EngineLauncher") {
  /** No simulator available: `simulate:` backends are rejected at start. */
  static readonly none = Layer.succeed(EngineLauncher, EngineLauncher.of({
    launch: (backend) =>
      Effect.fail(new FleetError({ backend: backend.id, message: "simulated engines are not available in this build" }))
  }))
}

export class Fleet extends Context.Service<Fleet, {
  readonly all: ReadonlyArray<Backend>
  readonly byId: (id: BackendId) => Backend | undefined
  /** Backends serving the model, in config order. */
  readonly forModel: (model: ModelId) => ReadonlyArray<Backend>
}>()("sluice/backends/Fleet") {
  static readonly layer = Layer.effect(
    Fleet,
    Effect.gen(function*() {
      const config = yield* GatewayConfig
      const launcher = yield* EngineLauncher
      const reports = yield* HealthReports
      const dialects = yield* Dialects
      dialects.seal()
      const fleet = yield* build(config.initial, launcher, dialects)
      // Each backend's supervised loops live in the fleet's scope: torn down with it.
      for (const backend of fleet.all) yield* runLoops(backend, config.initial, reports)
      return fleet
    })
  )
}

const build = (plan: Plan, launcher: EngineLauncher["Service"], dialects: DialectsShape) =>
  Effect.gen(function*() {
    const backends: Array<Backend> = []
    // Simulated engines boot in parallel (each in its own thread), not one after another.
    const launched = yield* Effect.forEach(
      plan.backends,
      (bp) => bp.url === undefined ? launcher.launch(bp) : Effect.succeed(bp.url),
      { concurrency: "unbounded" }
    )
    for (const [i, bp] of plan.backends.entries()) {
      const dialect = dialects.get(bp.dialect)
      if (dialect === undefined) {
        return yield* new FleetError({ backend: bp.id, message: NameTable.unknown("dialect", bp.dialect, dialects) })
      }
      const url = launched[i]!
      const resolved: BackendPlan = { ...bp, url, metrics: bp.metrics ?? dialect.metrics }
      const pool = Upstream.make(url, {
        connections: bp.connections,
        apiKey: bp.apiKey,
        connectTimeoutMs: plan.timeouts.connectMs
      })
      yield* Effect.addFinalizer(() => pool.close)
      const adapter = yield* Effect.try({
        try: () => dialect.make({ backend: resolved, pool, options: adapterOptions(plan) }),
        catch: (e) => new FleetError({ backend: bp.id, message: e instanceof Error ? e.message : String(e) })
      })
      backends.push(new Backend(resolved, pool, adapter, plan.health, plan.routing.prefixCapacity))
    }
    const byId = new Map(backends.map((b) => [b.id, b]))
    const byModel = new Map<ModelId, Array<Backend>>()
    for (const b of backends) {
      for (const model of b.plan.models.keys()) {
        const list = byModel.get(model) ?? []
        list.push(b)
        byModel.set(model, list)
      }
    }
    return Fleet.of({
      all: backends,
      byId: (id) => byId.get(id),
      forModel: (model) => byModel.get(model) ?? []
    })
  })
