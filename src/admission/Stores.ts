/**
 * Chooses where shared admission state lives: in memory in one process (the embedded
 * default), or in Redis when `REDIS_URL` is set so every replica and every worker shares
 * budgets. The Redis connection is scoped to the graph: closed on shutdown.
 */
import { Config, Effect, Layer, Option, Redacted } from "effect"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import { makeInMemory, TokenBudget } from "./Budget.ts"

/** A connected ioredis client that fails commands fast instead of queueing them while Redis is down. */
export const connect = (url: string) =>
  Effect.acquireRelease(
    // ioredis is loaded only when Redis is configured. It is CommonJS: `default` is its
    // module.exports both under Node's ESM loader and in the esbuild bundle, where the
    // named export `Redis` does not exist (the bundle failed with "Redis is not a constructor").
    Effect.promise(() => import("ioredis")).pipe(Effect.map(({ default: { Redis } }) =>
      new Redis(url, {
        lazyConnect: false,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        commandTimeout: 250,
        connectTimeout: 2000
      })
    )),
    (redis) => Effect.promise(() => redis.quit().catch(() => "OK"))
  )

export const budgetLayer: Layer.Layer<TokenBudget, never, GatewayConfig> = Layer.effect(
  TokenBudget,
  Effect.gen(function*() {
    const { initial } = yield* GatewayConfig
    const url = yield* Config.option(Config.Redacted("REDIS_URL")).pipe(Effect.orElseSucceed(() => Option.none()))
    const { tokensPerWindow, windowMs } = initial.budgets
    if (Option.isNone(url)) return makeInMemory(tokensPerWindow, windowMs)
    const redis = yield* connect(Redacted.value(url.value))
    const RedisBudget = yield* Effect.promise(() => import("./RedisBudget.ts"))
    yield* Effect.logInfo("token budgets shared through redis")
    return RedisBudget.make(redis, { limit: tokensPerWindow, windowMs })
  })
)
