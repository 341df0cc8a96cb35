/**
 * The circuit breakers of the gateway, one per (model, GPU SKU) (ARCHITECTURE.md §2).
 *
 * An actor in the small: it owns the breakers and changes them only through `admit` and
 * `record`; readers get states. Every transition is logged and counted, and exposed to the
 * router (views) and to metrics. The dispatcher ties a half-open probe permit to the
 * attempt's scope, so an interrupted probe always gives its permit back.
 */
import { Clock, Context, Effect, Layer, Scope } from "effect"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { BreakersPlan } from "../config/Plan.ts"
import type { GpuSku, ModelId } from "../domain/Ids.ts"
import type { BreakerState } from "../domain/States.ts"
import { Breaker, type Outcome, type Transition } from "./Breaker.ts"

export const keyOf = (model: ModelId, gpu: GpuSku): string => `${model}|${gpu}`

export interface BreakerTransition extends Transition {
  readonly key: string
  readonly atMs: number
}

export class Breakers extends Context.Service<Breakers, {
  /** The state now (synchronous: read once per candidate per request). */
  readonly state: (model: ModelId, gpu: GpuSku, now: number) => BreakerState
  /**
   * Admits an attempt: "no" when open (or half-open with every probe permit taken);
   * otherwise the attempt may go, holding a probe permit until the current scope closes.
   */
  readonly admit: (model: ModelId, gpu: GpuSku) => Effect.Effect<boolean, never, Scope.Scope>
  readonly record: (model: ModelId, gpu: GpuSku, outcome: Outcome) => Effect.Effect<void>
  readonly snapshot: (now: number) => ReadonlyArray<{ readonly key: string; readonly state: BreakerState }>
  /** The transitions so far (bounded; newest last). */
  readonly transitions: () => ReadonlyArray<BreakerTransition>
}>()("sluice/resilience/Breakers") {
  static readonly layer = Layer.effect(
    Breakers,
    Effect.gen(function*() {
      const { initial } = yield* GatewayConfig
      return make(initial.breakers)
    })
  )
}

export const make = (config: BreakersPlan): Breakers["Service"] => {
  const breakers = new Map<string, Breaker>()
  const history: Array<BreakerTransition> = []
  const get = (key: string) => {
    let b = breakers.get(key)
    if (b === undefined) {
      b = new Breaker(config)
      breakers.set(key, b)
    }
    return b
  }
  const note = (key: string, t: Transition | undefined, atMs: number) =>
    t === undefined ? Effect.void : Effect.suspend(() => {
      const entry = { ...t, key, atMs }
      history.push(entry)
      if (history.length > 1000) history.shift()
      return Effect.logWarning("circuit breaker transition").pipe(
        Effect.annotateLogs({ breaker: key, from: t.from, to: t.to, failure_rate: t.failureRate, slow_rate: t.slowRate })
      )
    })

  return Breakers.of({
    state: (model, gpu, now) => breakers.get(keyOf(model, gpu))?.state(now) ?? "closed",
    admit: (model, gpu) =>
      Effect.uninterruptible(Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const b = get(keyOf(model, gpu))
        const verdict = b.admit(now)
        if (verdict === "no") return Effect.succeed(false)
        if (verdict === "yes") return Effect.succeed(true)
        const period = b.probePeriod
        return Effect.as(Effect.addFinalizer(() => Effect.sync(() => b.releaseProbe(period))), true)
      })),
    record: (model, gpu, outcome) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const key = keyOf(model, gpu)
        return note(key, get(key).record(outcome, now), now)
      }),
    snapshot: (now) => [...breakers].map(([key, b]) => ({ key, state: b.state(now) })),
    transitions: () => history
  })
}
