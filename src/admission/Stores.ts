/**
 * Chooses where shared admission state lives: in memory in one process (the embedded
 * default), or in Redis when `REDIS_URL` is set so every replica and every worker shares
 * every limit (the rules come from QuotaTable, Quotas.ts), under the `budgets.redis_down`
 * policy while Redis is unreachable. The Redis module (and ioredis with it) is loaded only
 * then; its connection is scoped to the graph: closed on shutdown.
 */
import { Config, Effect, Layer, Option, Redacted } from "effect"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import { makeInMemory, TokenBudget } from "./Budget.ts"
import { QuotaTable } from "./Quotas.ts"

export const budgetLayer: Layer.Layer<TokenBudget, never, GatewayConfig | QuotaTable> = Layer.effect(
  TokenBudget,
  Effect.gen(function*() {
    const { initial } = yield* GatewayConfig
    const quotas = yield* QuotaTable
    const url = yield* Config.option(Config.Redacted("REDIS_URL")).pipe(Effect.orElseSucceed(() => Option.none()))
    const { redisDown, localShare } = initial.budgets
    if (Option.isNone(url)) return makeInMemory(quotas.rules)
    // ioredis is CommonJS: it is imported statically by RedisBudget.ts (which the bundler
    // wraps with its CommonJS interop) and never by a dynamic import of the package itself,
    // whose default/named exports differ once bundled ("Redis is not a constructor").
    const RedisBudget = yield* Effect.promise(() => import("./RedisBudget.ts"))
    const redis = yield* RedisBudget.connect(Redacted.value(url.value))
    yield* Effect.logInfo("token budgets shared through redis").pipe(Effect.annotateLogs({ redis_down: redisDown, local_share: localShare }))
    // A request holds a concurrency slot at most its total deadline (plus the drain): longer
    // means its replica died, and another releases the slot.
    const { totalMs, drainMs } = initial.timeouts
    const maxOpenMs = totalMs > 0 ? totalMs + drainMs + 60_000 : undefined
    return yield* RedisBudget.make(redis, { rules: quotas.rules, redisDown, localShare, ...(maxOpenMs === undefined ? {} : { maxOpenMs }) })
  })
)
