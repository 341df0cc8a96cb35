/**
 * Flow control (issue 15 item 1): where a request waits when no eligible backend can take it,
 * per model, in a per-tenant queue with priority bands, dispatched by weighted fair queuing in
 * tokens (admission/FlowQueue.ts), with a bounded wait and shedding of the lowest band first.
 *
 * A waiting request's place belongs to its scope: `wait` adds a finalizer that removes the
 * place, so a client that goes away (its request fiber interrupted, its scope closed) leaves
 * the queue at once and never takes a turn. A turn is given when capacity frees (`release`,
 * called by whoever sees an attempt end), to the next entry in fair order; a waiter whose
 * maximum wait passes fails with `FlowRefused{reason: timeout}`, one pushed out by a
 * higher-priority or fairer arrival with `shed`, one refused on arrival with `full`. Every
 * refusal carries a retry-after hint (the model's configured maximum wait).
 *
 * Metrics: `sluice_flow_queue_depth{model,tenant,band}`, `sluice_flow_queue_wait_seconds`
 * (same labels) and `sluice_flow_queue_refused_total{…,reason}`.
 *
 * Owns: the queues and the waiters' deferreds. Must never: route, dispatch or hold a backend
 * slot while a request waits (a waiter holds nothing but its place).
 */
import { Clock, Context, Data, Deferred, Effect, Exit, Layer, Schedule, Scope } from "effect"
import { FlowQueue } from "../admission/FlowQueue.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { FlowControlPlan } from "../config/Plan.ts"
import * as Metrics from "../observability/Metrics.ts"

export class FlowRefused extends Data.TaggedError("FlowRefused")<{
  readonly model: string
  readonly tenant: string
  readonly band: number
  /** full / shed / timeout: flow control refused it; reject: the model answers saturation with 429 at once. */
  readonly reason: "full" | "shed" | "timeout" | "reject"
  /** When a retry may find room (ms). */
  readonly retryAfterMs: number
}> {}

export interface FlowTicket {
  readonly model: string
  readonly tenant: string
  /** Priority band, 0 first. */
  readonly band: number
  /** The request's cost in tokens (estimated prompt + output). */
  readonly cost: number
  /** The longest this request may wait for its turn. */
  readonly maxWaitMs: number
}

export interface FlowControlOptions {
  readonly bands: number
  /** Waiting requests per model, over every tenant and band. */
  readonly maxQueued: number
  /** A tenant's weight in fair queuing (default 1). */
  readonly weight?: ((tenant: string) => number) | undefined
  /** A tenant's metric label (bounded: `Metrics.tenantLabel`); the tenant id when not given. */
  readonly label?: ((tenant: string) => string) | undefined
}

/** A model's waiters that got no turn for this long get one (see `nudge`). */
const NUDGE_MS = 1000

interface Waiter {
  readonly ticket: FlowTicket
  readonly enqueuedAt: number
  readonly turn: Deferred.Deferred<number, FlowRefused>
  /** Given a turn by `release` (not shed, not refused). */
  granted: boolean
}

export class FlowControl extends Context.Service<FlowControl, {
  /** Waits for a turn; succeeds with the milliseconds waited. The place belongs to the current scope. */
  readonly wait: (ticket: FlowTicket) => Effect.Effect<number, FlowRefused, Scope.Scope>
  /** Capacity for `model` freed: gives up to `n` waiters their turn, in fair order. */
  readonly release: (model: string, n?: number) => Effect.Effect<void>
  /** Requests waiting for `model` now. */
  readonly depth: (model: string) => number
  /**
   * Gives one turn to every model whose waiters have had none for `idleMs`: saturation that no
   * finishing request will end (a retry-after cool-down, an engine's own KV gauge) must not hold
   * them until their maximum wait. The config layer runs it on a timer.
   */
  readonly nudge: (idleMs: number) => Effect.Effect<void>
}>()("sluice/dispatch/FlowControl") {
  static readonly make = (options: FlowControlOptions): Effect.Effect<FlowControl["Service"]> =>
    Effect.sync(() => {
      const queues = new Map<string, FlowQueue<Waiter>>()
      /** When each model's waiters last got a turn (or its queue last started filling). */
      const lastTurn = new Map<string, number>()
      const queueOf = (model: string) => {
        let q = queues.get(model)
        if (q === undefined) {
          q = new FlowQueue<Waiter>({ bands: options.bands, maxQueued: options.maxQueued, weight: options.weight })
          queues.set(model, q)
        }
        return q
      }
      const label = options.label ?? ((tenant: string) => tenant)
      const gauge = (q: FlowQueue<Waiter>, t: FlowTicket) => Metrics.setFlowDepth(t.model, label(t.tenant), t.band, q.depth(t.tenant, t.band))
      const refuse = (t: FlowTicket, reason: "full" | "shed" | "timeout") =>
        new FlowRefused({ model: t.model, tenant: t.tenant, band: t.band, reason, retryAfterMs: t.maxWaitMs })

      const wait = (ticket: FlowTicket): Effect.Effect<number, FlowRefused, Scope.Scope> =>
        Effect.gen(function*() {
          const q = queueOf(ticket.model)
          const now = yield* Clock.currentTimeMillis
          // The idle clock of `nudge` starts when a model's queue starts holding someone.
          if (q.size === 0) lastTurn.set(ticket.model, now)
          const turn = Deferred.makeUnsafe<number, FlowRefused>()
          const waiter: Waiter = { ticket, enqueuedAt: now, turn, granted: false }
          const queued = q.enqueue({ tenant: ticket.tenant, band: ticket.band, cost: ticket.cost, deadlineMs: now + ticket.maxWaitMs, value: waiter })
          if (queued._tag === "Refused") {
            yield* Metrics.recordFlowRefused(ticket.model, label(ticket.tenant), ticket.band, "full")
            return yield* refuse(ticket, "full")
          }
          for (const shed of queued.shed) {
            Deferred.doneUnsafe(shed.value.turn, Exit.fail(refuse(shed.value.ticket, "shed")))
            yield* Metrics.recordFlowRefused(shed.value.ticket.model, label(shed.value.ticket.tenant), shed.value.ticket.band, "shed")
            yield* gauge(q, shed.value.ticket)
          }
          yield* gauge(q, ticket)
          // The place is the scope's: leaving (abort, timeout, shutdown) removes it at once.
          // A turn given to a waiter that left before taking it (interrupted, or timed out in the
          // same instant) is passed on, so capacity is never lost to a departed client.
          let taken = false
          const granted = () => waiter.granted && !taken
          yield* Effect.addFinalizer(() =>
            Effect.suspend(() =>
              q.remove(queued.ticket) ? gauge(q, ticket) : granted() ? release(ticket.model) : Effect.void
            )
          )
          const waited = yield* Deferred.await(turn).pipe(
            Effect.tap(() => Effect.sync(() => (taken = true))),
            Effect.timeoutOrElse({
              duration: ticket.maxWaitMs,
              orElse: () =>
                Effect.suspend(() => {
                  if (!q.remove(queued.ticket) && granted()) {
                    taken = true
                    return Effect.andThen(release(ticket.model), Effect.fail(refuse(ticket, "timeout")))
                  }
                  return Effect.andThen(
                    Effect.andThen(gauge(q, ticket), Metrics.recordFlowRefused(ticket.model, label(ticket.tenant), ticket.band, "timeout")),
                    Effect.fail(refuse(ticket, "timeout"))
                  )
                })
            })
          )
          yield* Metrics.recordFlowWait(ticket.model, label(ticket.tenant), ticket.band, waited)
          return waited
        })

      const release = (model: string, n = 1): Effect.Effect<void> =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.suspend(() => {
            lastTurn.set(model, now)
            const q = queues.get(model)
            if (q === undefined) return Effect.void
            const given: Array<Waiter> = []
            for (let i = 0; i < n; i++) {
              const next = q.next()
              if (next === undefined) break
              given.push(next.value)
              next.value.granted = true
              Deferred.doneUnsafe(next.value.turn, Exit.succeed(now - next.value.enqueuedAt))
            }
            return Effect.forEach(given, (w) => gauge(q, w.ticket), { discard: true })
          }))

      const nudge = (idleMs: number): Effect.Effect<void> =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.forEach(
            [...queues].filter(([model, q]) => q.size > 0 && now - (lastTurn.get(model) ?? 0) >= idleMs).map(([model]) => model),
            (model) => release(model),
            { discard: true }
          ))

      return FlowControl.of({ wait, release, depth: (model) => queues.get(model)?.size ?? 0, nudge })
    })

  static readonly layer = (options: FlowControlOptions) => Layer.effect(FlowControl, FlowControl.make(options))

  /**
   * From the plan's `flow_control:` (bands, queue bound, tenant weights; read at start), with
   * the nudge timer: a model whose waiters got no turn for NUDGE_MS gets one.
   */
  static readonly fromConfig = Layer.effect(
    FlowControl,
    Effect.gen(function*() {
      const { initial } = yield* GatewayConfig
      const configured = Metrics.configuredTenants(initial)
      const named = { has: (t: string) => configured.has(t) || initial.flowControl.tenants.has(t) }
      const flow = yield* FlowControl.make({
        bands: initial.flowControl.bands,
        maxQueued: initial.flowControl.maxQueued,
        weight: (tenant) => initial.flowControl.tenants.get(tenant)?.weight ?? 1,
        // Tenants the config names keep their own series; every other tenant is `other`.
        label: (tenant) => Metrics.tenantLabel(named, tenant)
      })
      yield* Effect.forkScoped(Effect.repeat(flow.nudge(NUDGE_MS), Schedule.spaced(NUDGE_MS)))
      return flow
    })
  )
}

/**
 * A request's priority band: its tenant's (`flow_control.tenants.<id>.band`, else the default
 * band), or the `x-sluice-priority` header when the tenant may set it; a header can only
 * lower the priority (a band at or below the tenant's own), never raise it.
 */
export const bandOf = (plan: FlowControlPlan, tenant: string, header: string | undefined): number => {
  const own = plan.tenants.get(tenant)
  const band = own?.band ?? plan.defaultBand
  if (own?.priorityHeader !== true || header === undefined || !/^\d{1,2}$/.test(header.trim())) return band
  return Math.min(plan.bands - 1, Math.max(band, Number(header.trim())))
}
