/**
 * Token budgets shared by every replica through Redis: reserve and settle are single Lua
 * scripts, so concurrent gateways never overbook a tenant's window.
 *
 * Keys: `sluice:budget:<tenant>:<window>` hashes with `used`, `reserved`, one `r:<id>`
 * field per open reservation and one `f:<id>` per settlement applied from a local
 * reservation; they expire two windows after their last write (a crashed replica's
 * reservations expire with them). Settling deletes the `r:` field and applying sets the
 * `f:` field in the same script, so each is applied at most once however often it is
 * retried: a settlement is exactly-once even when a timed-out command was executed late.
 *
 * While Redis does not answer (`degraded`), the `redis_down` policy decides:
 * - `fail_closed`: reservations fail with BudgetUnavailable (503);
 * - `local_share`: reservations come from an in-process budget whose limit is
 *   `local_share` × what Redis last said was left in that tenant's window (× the whole
 *   limit in a window this replica knows nothing of). With `local_share` = 1/replicas the
 *   fleet together spends at most what was left.
 * Settlements that cannot reach Redis (and the spend of local reservations) are queued
 * and applied, in order, by a background fiber once Redis answers again; a reservation
 * whose command failed is queued for release too (it may have been executed late). The
 * fiber also probes Redis while degraded; the first answer ends the degraded state.
 * Queued settlements of windows that have expired are dropped (their keys are gone).
 */
import { createHash } from "node:crypto"
import { Clock, Effect, Schedule, type Scope } from "effect"
import { Redis } from "../stores/Ioredis.ts"
import type { TenantId } from "../domain/Ids.ts"
import { BudgetExceeded, BudgetUnavailable, makeInMemory, type Reservation, TokenBudget } from "./Budget.ts"

const RESERVE = `
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
local tokens = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if limit >= 0 and used + reserved + tokens > limit then
  return {0, limit - used - reserved}
end
redis.call('HINCRBY', KEYS[1], 'reserved', tokens)
redis.call('HSET', KEYS[1], 'r:' .. ARGV[4], tokens)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, limit - used - reserved - tokens}
`

const SETTLE = `
local tokens = redis.call('HGET', KEYS[1], 'r:' .. ARGV[1])
if not tokens then return 0 end
redis.call('HDEL', KEYS[1], 'r:' .. ARGV[1])
redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(tokens))
redis.call('HINCRBY', KEYS[1], 'used', tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`

const APPLY = `
if redis.call('HSETNX', KEYS[1], 'f:' .. ARGV[1], 1) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'used', tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`

const sha = (script: string) => createHash("sha1").update(script).digest("hex")
const scripts = {
  reserve: { script: RESERVE, hash: sha(RESERVE) },
  settle: { script: SETTLE, hash: sha(SETTLE) },
  apply: { script: APPLY, hash: sha(APPLY) }
} as const

/** Runs a script by hash, loading it on NOSCRIPT. */
const run = (redis: Redis, { script, hash }: { readonly script: string; readonly hash: string }, key: string, args: ReadonlyArray<string | number>) =>
  Effect.tryPromise({
    try: () =>
      redis.evalsha(hash, 1, key, ...args).catch((e: unknown) =>
        e instanceof Error && e.message.startsWith("NOSCRIPT") ? redis.eval(script, 1, key, ...args) : Promise.reject(e)
      ),
    catch: (e) => e
  })

export const keyOf = (prefix: string, tenant: TenantId, window: number) => `${prefix}:${tenant}:${window}`

/** A connected ioredis client that fails commands fast instead of queueing them while Redis is down. */
export const connect = (url: string): Effect.Effect<Redis, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<Redis>((resume) => {
      const redis = new Redis(url, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        commandTimeout: 250,
        connectTimeout: 2000
      })
      // Outages are reported by the budget (degraded, recovered), not as unhandled events.
      redis.on("error", () => undefined)
      // Start serving when connected, or after the connect timeout with Redis down (degraded).
      const timer = setTimeout(() => resume(Effect.succeed(redis)), 2000)
      redis.once("ready", () => {
        clearTimeout(timer)
        resume(Effect.succeed(redis))
      })
    }),
    (redis) => Effect.promise(() => redis.quit().catch(() => "OK"))
  )

/** A settlement (or release) that must reach Redis once. */
interface PendingOp {
  readonly kind: "settle" | "apply"
  readonly key: string
  readonly window: number
  readonly id: string
  readonly tokens: number
}

export interface RedisBudgetOptions {
  readonly limit: number | undefined
  readonly windowMs: number
  readonly prefix?: string
  /** While Redis does not answer (default `local_share`). */
  readonly redisDown?: "fail_closed" | "local_share"
  /** Fraction of the limit (of what was left, when known) this replica may spend alone (default 1). */
  readonly localShare?: number
  /** How often the queue is retried and Redis probed while degraded (default 500 ms). */
  readonly retryIntervalMs?: number
  /** Queued settlements kept at most (default 100,000; the oldest go first). */
  readonly maxPending?: number
}

export const make = (redis: Redis, options: RedisBudgetOptions): Effect.Effect<TokenBudget["Service"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = options.prefix ?? "sluice:budget"
    const limit = options.limit ?? -1
    const ttl = options.windowMs * 2
    const share = options.localShare ?? 1
    const failClosed = options.redisDown === "fail_closed"
    const maxPending = options.maxPending ?? 100_000
    const replica = crypto.randomUUID().slice(0, 8)
    /** What Redis last said was left in a tenant's window. */
    const lastRemaining = new Map<TenantId, { readonly window: number; readonly remaining: number }>()
    const local = makeInMemory(
      options.limit === undefined ? undefined : (tenant, window) => {
        const known = lastRemaining.get(tenant)
        const base = known !== undefined && known.window === window ? Math.max(0, known.remaining) : options.limit!
        return Math.floor(share * base)
      },
      options.windowMs
    )
    /** Reservations taken from Redis and not yet settled (the exactly-once guard). */
    const open = new Map<number, Reservation>()
    /** Reservations taken from the local share. */
    const fallback = new Set<number>()
    let pending: Array<PendingOp> = []
    let nextId = -1
    let reservedTokens = 0
    let settlements = 0
    let doubleSettlements = 0
    let chargedTokens = 0
    let droppedSettlements = 0
    let localReservedTokens = 0
    let degraded = false

    const resId = (id: number) => `${replica}:${-id}`

    const degrade = (cause: unknown) =>
      degraded ? Effect.void : Effect.suspend(() => {
        degraded = true
        return Effect.logWarning(`redis budget store unavailable; ${failClosed ? "refusing reservations (fail_closed)" : `admitting from a local share of ${share}`}`).pipe(
          Effect.annotateLogs({ cause: cause instanceof Error ? cause.message : String(cause) })
        )
      })

    const enqueue = (op: PendingOp) =>
      Effect.suspend(() => {
        pending.push(op)
        if (pending.length <= maxPending) return Effect.void
        pending.shift()
        droppedSettlements++
        return droppedSettlements === 1 ? Effect.logError("budget settlement queue full; dropping the oldest") : Effect.void
      })

    const apply = (op: PendingOp) =>
      run(redis, op.kind === "settle" ? scripts.settle : scripts.apply, op.key, [op.id, op.tokens, ttl])

    /** Applies queued settlements in order; stops at the first failure. Probes Redis when there are none. */
    const drain = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const oldest = Math.floor(now / options.windowMs) - 1
      let applied = 0
      while (pending.length > 0) {
        const op = pending[0]!
        if (op.window < oldest) {
          pending.shift()
          droppedSettlements++
          continue
        }
        const result = yield* Effect.result(apply(op))
        if (result._tag === "Failure") return
        pending.shift()
        applied++
      }
      if (degraded) {
        if (applied === 0 && (yield* Effect.result(Effect.tryPromise(() => redis.ping())))._tag === "Failure") return
        degraded = false
        yield* Effect.logInfo("redis budget store is back").pipe(Effect.annotateLogs({ appliedSettlements: applied }))
      }
    })
    yield* Effect.forkScoped(
      drain.pipe(Effect.repeat(Schedule.spaced(options.retryIntervalMs ?? 500)))
    )

    const reserveLocal = (tenant: TenantId, tokens: number) =>
      failClosed
        ? Effect.fail(new BudgetUnavailable({ tenant, retryAfterMs: 1000 }))
        : Effect.map(local.reserve(tenant, tokens), (r) => {
          fallback.add(r.id)
          localReservedTokens += tokens
          return r
        })

    return TokenBudget.of({
      reserve: (tenant, tokens) =>
        Effect.gen(function*() {
          if (degraded) return yield* reserveLocal(tenant, tokens)
          const now = yield* Clock.currentTimeMillis
          const window = Math.floor(now / options.windowMs)
          const key = keyOf(prefix, tenant, window)
          const id = nextId--
          const result = yield* Effect.result(run(redis, scripts.reserve, key, [tokens, limit, ttl, resId(id)]))
          if (result._tag === "Failure") {
            yield* degrade(result.failure)
            // The command may still run once Redis answers: release it then, exactly once.
            yield* enqueue({ kind: "settle", key, window, id: resId(id), tokens: 0 })
            return yield* reserveLocal(tenant, tokens)
          }
          const reply = result.success
          const [ok, remaining] = Array.isArray(reply) ? reply.map(Number) : [0, 0]
          lastRemaining.set(tenant, { window, remaining: remaining ?? 0 })
          if (ok !== 1) {
            return yield* new BudgetExceeded({
              tenant,
              requested: tokens,
              remaining: Math.max(0, remaining ?? 0),
              retryAfterMs: (window + 1) * options.windowMs - now
            })
          }
          const reservation: Reservation = { id, tenant, tokens, window }
          open.set(id, reservation)
          reservedTokens += tokens
          return reservation
        }),
      settle: (reservation, usedTokens) =>
        Effect.gen(function*() {
          const key = keyOf(prefix, reservation.tenant, reservation.window)
          if (fallback.delete(reservation.id)) {
            yield* local.settle(reservation, usedTokens)
            // What the local share spent reaches Redis too, so the fleet sees it when it is back.
            if (usedTokens > 0) {
              yield* enqueue({ kind: "apply", key, window: reservation.window, id: `${replica}:f${reservation.id}`, tokens: usedTokens })
            }
            return
          }
          if (!open.delete(reservation.id)) {
            doubleSettlements++
            return
          }
          settlements++
          reservedTokens -= reservation.tokens
          chargedTokens += usedTokens
          const op: PendingOp = { kind: "settle", key, window: reservation.window, id: resId(reservation.id), tokens: usedTokens }
          // Behind a queue (or while degraded) a settlement waits its turn; otherwise it is tried once now.
          if (degraded || pending.length > 0) return yield* enqueue(op)
          const result = yield* Effect.result(apply(op))
          if (result._tag === "Failure") {
            yield* degrade(result.failure)
            yield* enqueue(op)
          }
        }),
      snapshot: Effect.map(local.snapshot, (l) => ({
        reservedTokens: reservedTokens + l.reservedTokens,
        openReservations: open.size + l.openReservations,
        settlements: settlements + l.settlements,
        doubleSettlements: doubleSettlements + l.doubleSettlements,
        chargedTokens: chargedTokens + l.chargedTokens,
        shared: { degraded, pendingSettlements: pending.length, droppedSettlements, localReservedTokens }
      }))
    })
  })
