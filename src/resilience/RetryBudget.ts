/**
 * The gateway-wide retry budget, so a failing fleet is not hammered: every first attempt
 * deposits `ratio` of a token, every retry withdraws one, and a small floor of retries
 * per second is always allowed. With ratio 0.2 retries add at most ~20% to the load.
 * Plain counters: it is consulted once per attempt on the hot path.
 */
import { Clock, Context, Effect, Layer } from "effect"
import { GatewayConfig } from "../config/GatewayConfig.ts"

export class RetryBudget extends Context.Service<RetryBudget, {
  /** Records a first attempt. */
  readonly deposit: Effect.Effect<void>
  /** True when one retry may be spent now (and spends it). */
  readonly tryWithdraw: Effect.Effect<boolean>
  readonly snapshot: Effect.Effect<{ readonly balance: number; readonly retries: number; readonly denied: number }>
}>()("sluice/resilience/RetryBudget") {
  static readonly layer = Layer.effect(
    RetryBudget,
    Effect.gen(function*() {
      const { initial } = yield* GatewayConfig
      return make(initial.retries.budgetRatio, initial.retries.minPerSecond)
    })
  )
}

/** `cap` bounds the saved-up balance so a long quiet period cannot fund a retry storm. */
export const make = (ratio: number, minPerSecond: number, cap = 100): RetryBudget["Service"] => {
  let balance = 0
  let retries = 0
  let denied = 0
  let floorSecond = -1
  let floorUsed = 0
  return RetryBudget.of({
    deposit: Effect.sync(() => {
      balance = Math.min(cap, balance + ratio)
    }),
    tryWithdraw: Effect.map(Clock.currentTimeMillis, (now) => {
      if (balance >= 1) {
        balance -= 1
        retries++
        return true
      }
      const second = Math.floor(now / 1000)
      if (second !== floorSecond) {
        floorSecond = second
        floorUsed = 0
      }
      if (floorUsed < minPerSecond) {
        floorUsed++
        retries++
        return true
      }
      denied++
      return false
    }),
    snapshot: Effect.sync(() => ({ balance, retries, denied }))
  })
}
