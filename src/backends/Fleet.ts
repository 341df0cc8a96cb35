/**
 * The fleet: one `Backend` per configured endpoint, built from the plan when the graph
 * starts and torn down (pools destroyed) when its scope closes. Simulated engines named
 * in the plan are started here, inside the same scope, so `npm start` needs nothing else.
 *
 * A reload `apply`s a new plan: each backend lives in its own scope (a child of the
 * fleet's), so a backend can be added, and a removed or changed one can drain and stop,
 * without touching the others. The swap is atomic for the router: `forModel` answers from
 * one table, replaced at once. A backend leaving the table gets no new request; it keeps
 * its slots, pool and loops until the requests holding its slots end (bounded by the old
 * plan's total timeout), then its scope closes: loops interrupted, pool destroyed,
 * simulated engine stopped. A backend whose settings did not change keeps its actor (its
 * health, statistics and open connections). Must never: close a backend a request still
 * holds a slot on, before that bound.
 */
import { Context, Data, Duration, Effect, Exit, Layer, Scope, Semaphore } from "effect"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { BackendPlan, Plan } from "../config/Plan.ts"
import type { BackendId, ModelId } from "../domain/Ids.ts"
import { equal } from "../config/Diff.ts"
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

/** What a reload did to the fleet (backend ids). */
export interface FleetChanges {
  readonly added: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  /** Settings changed: a new actor took the id, the old one drains. */
  readonly replaced: ReadonlyArray<string>
}

export class Fleet extends Context.Service<Fleet, {
  /** Every live backend: serving, and removed ones still draining. */
  readonly all: ReadonlyArray<Backend>
  readonly byId: (id: BackendId) => Backend | undefined
  /** Backends serving the model, in config order (draining ones never). */
  readonly forModel: (model: ModelId) => ReadonlyArray<Backend>
  /** Ids of removed or replaced backends still finishing their requests. */
  readonly draining: () => ReadonlyArray<string>
  /**
   * Moves the fleet to `plan`: starts added and changed backends first (a failure stops
   * the ones it started and changes nothing), then swaps, then drains the ones that left.
   */
  readonly apply: (plan: Plan) => Effect.Effect<FleetChanges, FleetError>
}>()("sluice/backends/Fleet") {
  static readonly layer = Layer.effect(
    Fleet,
    Effect.gen(function*() {
      const config = yield* GatewayConfig
      const launcher = yield* EngineLauncher
      const reports = yield* HealthReports
      const dialects = yield* Dialects
      dialects.seal()
      const fleetScope = yield* Effect.scope
      const lock = yield* Semaphore.make(1)

      /** Starts one backend in its own scope (closed again if it cannot start). */
      const startOne = (plan: Plan, bp: BackendPlan) =>
        Effect.gen(function*() {
          const scope = yield* Scope.fork(fleetScope, "sequential")
          const exit = yield* Effect.exit(Effect.gen(function*() {
            const url = bp.url === undefined ? yield* launcher.launch(bp) : bp.url
            const backend = yield* build(plan, bp, url, dialects)
            // The backend's supervised loops live in its own scope: stopped with it.
            yield* runLoops(backend, plan, reports)
            return backend
          }).pipe(Scope.provide(scope)))
          if (Exit.isFailure(exit)) {
            yield* Scope.close(scope, exit)
            return yield* Effect.failCause(exit.cause)
          }
          const member: Member = { backend: exit.value, source: bp, plan, scope }
          return member
        })

      /** Starts several in parallel (engines boot in their own threads); all or none. */
      const startAll = (plan: Plan, bps: ReadonlyArray<BackendPlan>) =>
        Effect.gen(function*() {
          const exits = yield* Effect.forEach(bps, (bp) => Effect.exit(startOne(plan, bp)), { concurrency: "unbounded" })
          const failed = exits.find(Exit.isFailure)
          if (failed !== undefined) {
            for (const e of exits) if (Exit.isSuccess(e)) yield* Scope.close(e.value.scope, Exit.void)
            return yield* Effect.failCause(failed.cause)
          }
          return exits.flatMap((e) => Exit.isSuccess(e) ? [e.value] : [])
        })

      let serving: ReadonlyArray<Member> = yield* startAll(config.initial, config.initial.backends)
      const leaving = new Set<Member>()
      let tables = index(serving, leaving)

      /** Waits until no request holds or waits for a slot on the backend, then stops it. */
      const drain = (member: Member) =>
        Effect.gen(function*() {
          const backend = member.backend
          const boundMs = member.plan.timeouts.totalMs + member.plan.timeouts.queueMs
          const started = Date.now()
          // Idle twice in a row: a request routed just before the swap takes its slot in between.
          let idleTicks = 0
          while (idleTicks < 2) {
            yield* Effect.sleep(Duration.millis(50))
            idleTicks = backend.slots.inUse === 0 && backend.slots.queued === 0 ? idleTicks + 1 : 0
            if (Date.now() - started > boundMs) {
              yield* Effect.logWarning("backend drain timed out; stopping it with requests in flight").pipe(
                Effect.annotateLogs({ backend: backend.id, in_flight: backend.slots.inUse })
              )
              break
            }
          }
          yield* Scope.close(member.scope, Exit.void)
          leaving.delete(member)
          tables = index(serving, leaving)
          yield* Effect.logInfo("backend drained and stopped").pipe(
            Effect.annotateLogs({ backend: backend.id, drained_ms: Date.now() - started })
          )
        })

      const apply = (plan: Plan) =>
        lock.withPermit(Effect.gen(function*() {
          const current = new Map(serving.map((m) => [m.source.id, m]))
          const kept = new Map<string, Member>()
          const toStart: Array<BackendPlan> = []
          for (const bp of plan.backends) {
            const old = current.get(bp.id)
            if (old !== undefined && sameActor(old, bp, plan)) kept.set(bp.id, old)
            else toStart.push(bp)
          }
          const started = new Map((yield* startAll(plan, toStart)).map((m) => [m.source.id, m]))
          const stopping = serving.filter((m) => kept.get(m.source.id) !== m)
          serving = plan.backends.map((bp) => kept.get(bp.id) ?? started.get(bp.id)!)
          for (const m of stopping) leaving.add(m)
          tables = index(serving, leaving)
          for (const m of stopping) yield* Effect.forkIn(drain(m), fleetScope)
          const ids = new Set(plan.backends.map((bp) => bp.id as string))
          return {
            added: toStart.filter((bp) => !current.has(bp.id)).map((bp) => bp.id),
            removed: stopping.filter((m) => !ids.has(m.source.id)).map((m) => m.source.id),
            replaced: toStart.filter((bp) => current.has(bp.id)).map((bp) => bp.id)
          } satisfies FleetChanges
        }))

      return Fleet.of({
        get all() {
          return tables.all
        },
        byId: (id) => tables.byId.get(id),
        forModel: (model) => tables.byModel.get(model) ?? [],
        draining: () => [...leaving].map((m) => m.source.id),
        apply
      })
    })
  )
}

/** A running backend: its actor, the plan it was built from, and the scope that owns it. */
interface Member {
  readonly backend: Backend
  readonly source: BackendPlan
  readonly plan: Plan
  readonly scope: Scope.Closeable
}

/**
 * The actor can stay when nothing it was built from changed: its own entry, and the
 * plan-wide settings baked into it (adapter bounds, connect timeout, health settings).
 */
const sameActor = (old: Member, bp: BackendPlan, plan: Plan): boolean =>
  equal(old.source, bp) &&
  equal(adapterOptions(old.plan), adapterOptions(plan)) &&
  old.plan.timeouts.connectMs === plan.timeouts.connectMs &&
  equal(old.plan.health, plan.health)

const index = (serving: ReadonlyArray<Member>, leaving: ReadonlySet<Member>) => {
  const all = [...serving.map((m) => m.backend), ...[...leaving].map((m) => m.backend)]
  const byId = new Map(all.map((b) => [b.id, b]))
  // Serving ones win the id over a draining predecessor.
  for (const m of serving) byId.set(m.backend.id, m.backend)
  const byModel = new Map<ModelId, Array<Backend>>()
  for (const { backend } of serving) {
    for (const model of backend.plan.models.keys()) {
      const list = byModel.get(model) ?? []
      list.push(backend)
      byModel.set(model, list)
    }
  }
  return { all, byId, byModel }
}

/** One backend's actor on `url`: its pool (destroyed with the current scope) and dialect adapter. */
const build = (plan: Plan, bp: BackendPlan, url: string, dialects: DialectsShape) =>
  Effect.gen(function*() {
    const dialect = dialects.get(bp.dialect)
    if (dialect === undefined) {
      return yield* new FleetError({ backend: bp.id, message: NameTable.unknown("dialect", bp.dialect, dialects) })
    }
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
    return new Backend(resolved, pool, adapter, plan.health, plan.routing.prefixCapacity)
  })
