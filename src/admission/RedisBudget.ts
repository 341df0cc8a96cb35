/**
 * Token budgets shared by every replica through Redis: reserve and settle are single Lua
 * scripts, so concurrent gateways never overbook a tenant's window.
 *
 * Keys: `sluice:budget:<tenant>:<window>` hashes with `used` and `reserved`, expiring two
 * windows after their last write (a crashed replica's reservations expire with them).
 * Exactly-once settlement is guarded locally (a reservation is settled by the process that
 * took it). Local fallback policy: when Redis does not answer within its command timeout,
 * the reservation is taken from an in-process budget with the same per-tenant limit (fail
 * open, per replica) and settled there; the first fallback and every recovery are logged.
 */
import { createHash } from "node:crypto"
import { Clock, Effect } from "effect"
import type { Redis } from "ioredis"
import type { TenantId } from "../domain/Ids.ts"
import { BudgetExceeded, makeInMemory, type Reservation, TokenBudget } from "./Budget.ts"

const RESERVE = `
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
local tokens = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if limit >= 0 and used + reserved + tokens > limit then
  return {0, limit - used - reserved}
end
redis.call('HINCRBY', KEYS[1], 'reserved', tokens)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, limit - used - reserved - tokens}
`

const SETTLE = `
redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(ARGV[1]))
redis.call('HINCRBY', KEYS[1], 'used', tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`

const sha = (script: string) => createHash("sha1").update(script).digest("hex")

/** Runs a script by hash, loading it on NOSCRIPT. */
const run = (redis: Redis, script: string, hash: string, key: string, args: ReadonlyArray<string | number>) =>
  Effect.tryPromise({
    try: () =>
      redis.evalsha(hash, 1, key, ...args).catch((e: unknown) =>
        e instanceof Error && e.message.startsWith("NOSCRIPT") ? redis.eval(script, 1, key, ...args) : Promise.reject(e)
      ),
    catch: (e) => e
  })

export const keyOf = (prefix: string, tenant: TenantId, window: number) => `${prefix}:${tenant}:${window}`

export const make = (
  redis: Redis,
  options: { readonly limit: number | undefined; readonly windowMs: number; readonly prefix?: string }
): TokenBudget["Service"] => {
  const prefix = options.prefix ?? "sluice:budget"
  const limit = options.limit ?? -1
  const ttl = options.windowMs * 2
  const local = makeInMemory(options.limit, options.windowMs)
  const reserveSha = sha(RESERVE)
  const settleSha = sha(SETTLE)
  /** Reservations taken from Redis and not yet settled (the exactly-once guard). */
  const open = new Map<number, Reservation>()
  /** Reservations taken from the local fallback. */
  const fallback = new Set<number>()
  let nextId = -1
  let reservedTokens = 0
  let settlements = 0
  let doubleSettlements = 0
  let chargedTokens = 0
  let degraded = false

  const onRedisError = (cause: unknown) =>
    degraded ? Effect.void : Effect.suspend(() => {
      degraded = true
      return Effect.logWarning("redis budget store unavailable; using the local fallback").pipe(
        Effect.annotateLogs({ cause: cause instanceof Error ? cause.message : String(cause) })
      )
    })

  return TokenBudget.of({
    reserve: (tenant, tokens) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const window = Math.floor(now / options.windowMs)
        const result = yield* Effect.result(run(redis, RESERVE, reserveSha, keyOf(prefix, tenant, window), [tokens, limit, ttl]))
        if (result._tag === "Failure") {
          yield* onRedisError(result.failure)
          const r = yield* local.reserve(tenant, tokens)
          fallback.add(r.id)
          return r
        }
        if (degraded) {
          degraded = false
          yield* Effect.logInfo("redis budget store is back")
        }
        const [ok, remaining] = result.success as [number, number]
        if (ok !== 1) {
          return yield* new BudgetExceeded({
            tenant,
            requested: tokens,
            remaining: Math.max(0, remaining),
            retryAfterMs: (window + 1) * options.windowMs - now
          })
        }
        // Negative ids keep Redis reservations apart from the local fallback's.
        const reservation: Reservation = { id: nextId--, tenant, tokens, window }
        open.set(reservation.id, reservation)
        reservedTokens += tokens
        return reservation
      }),
    settle: (reservation, usedTokens) =>
      Effect.gen(function*() {
        if (fallback.delete(reservation.id)) return yield* local.settle(reservation, usedTokens)
        if (!open.delete(reservation.id)) {
          doubleSettlements++
          return
        }
        settlements++
        reservedTokens -= reservation.tokens
        chargedTokens += usedTokens
        const key = keyOf(prefix, reservation.tenant, reservation.window)
        // A settlement must not be lost: retry briefly; if Redis stays down the window key
        // expires with its reservation (the tenant is never overcharged).
        yield* run(redis, SETTLE, settleSha, key, [reservation.tokens, usedTokens, ttl]).pipe(
          Effect.retry({ times: 3 }),
          Effect.catch((e) =>
            Effect.logWarning("budget settlement could not reach redis").pipe(
              Effect.annotateLogs({ tenant: reservation.tenant, tokens: usedTokens, cause: String(e) })
            )
          )
        )
      }),
    snapshot: Effect.map(local.snapshot, (l) => ({
      reservedTokens: reservedTokens + l.reservedTokens,
      openReservations: open.size + l.openReservations,
      settlements: settlements + l.settlements,
      doubleSettlements: doubleSettlements + l.doubleSettlements,
      chargedTokens: chargedTokens + l.chargedTokens
    }))
  })
}
