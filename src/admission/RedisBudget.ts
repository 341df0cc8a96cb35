/**
 * Every limit shared by every replica through Redis: one Lua script checks and reserves all
 * the counters a request is held to, one settles them, so concurrent gateways never
 * overbook a counter.
 *
 * Keys: one hash per counter and bucket, `<rule base>:<bucket>` (the legacy budget's is
 * `sluice:budget:<tenant>:<window>`, the others `sluice:limit:<subject>:<field>:<bucket>`),
 * with `used`, `reserved`, one `r:<id>` field per open reservation and one `f:<id>` per
 * settlement applied from a local reservation; they expire a window after their bucket
 * ends (a crashed replica's reservations expire with them). Settling deletes the `r:`
 * field and applying sets the `f:` field in the same script, so each is applied at most
 * once however often it is retried: a settlement is exactly-once even when a timed-out
 * command was executed late. The sliding minute reads the previous bucket's `used`.
 *
 * While Redis does not answer (`degraded`), the `redis_down` policy decides:
 * - `fail_closed`: reservations fail with BudgetUnavailable (503);
 * - `local_share`: reservations come from an in-process budget whose limit is
 *   `local_share` × what Redis last said was left in each counter's bucket (× the whole
 *   limit in a bucket this replica knows nothing of). With `local_share` = 1/replicas the
 *   fleet together spends at most what was left.
 * Settlements that cannot reach Redis (and the spend of local reservations) are queued
 * and applied, in order, by a background fiber once Redis answers again; a reservation
 * whose command failed is queued for release too (it may have been executed late). The
 * fiber also probes Redis while degraded; the first answer ends the degraded state.
 * Queued settlements whose counters have expired are dropped (their keys are gone).
 */
import { createHash } from "node:crypto"
import { Clock, Effect, Schedule, type Scope } from "effect"
import { Redis } from "../stores/Ioredis.ts"
import { amountOf, bucketOf, previousWeight, type Rule, ttlMs } from "../domain/Quotas.ts"
import {
  BudgetUnavailable,
  makeInMemory,
  reservationOf,
  type Reservation,
  reserved as reservedOf,
  type RulesOf,
  settled as settledOf,
  TokenBudget,
  verdict
} from "./Budget.ts"

/**
 * KEYS: per rule its counter and the previous bucket's; ARGV: the reservation id, the time,
 * then per rule limit, amount, previous-bucket weight, ttl and how long a reservation may
 * stay open (0: until its bucket expires). Replies {ok, failing rule, then per rule its level
 * and the previous bucket's weighted share, as strings}.
 *
 * A counter without buckets (concurrent requests) would keep a crashed replica's open
 * reservations for as long as traffic keeps the key alive: each reservation there carries a
 * deadline (`d:<id>`, past the longest a request may run) and expired ones are released
 * before the check.
 */
const RESERVE = `
local n = #KEYS / 2
local now = tonumber(ARGV[2])
local reply = {0, 0}
local failing = 0
for i = 1, n do
  local a = 2 + (i - 1) * 5
  local limit = tonumber(ARGV[a + 1])
  local amount = tonumber(ARGV[a + 2])
  local weight = tonumber(ARGV[a + 3])
  local stale = tonumber(ARGV[a + 5])
  local cur = KEYS[2 * i - 1]
  if stale > 0 then
    local fields = redis.call('HGETALL', cur)
    for j = 1, #fields, 2 do
      if string.sub(fields[j], 1, 2) == 'd:' and tonumber(fields[j + 1]) < now then
        local id = string.sub(fields[j], 3)
        local held = redis.call('HGET', cur, 'r:' .. id)
        if held then
          redis.call('HDEL', cur, 'r:' .. id)
          redis.call('HINCRBY', cur, 'reserved', -tonumber(held))
        end
        redis.call('HDEL', cur, fields[j])
      end
    end
  end
  local level = tonumber(redis.call('HGET', cur, 'used') or '0') + tonumber(redis.call('HGET', cur, 'reserved') or '0')
  local prev = 0
  if weight > 0 then prev = tonumber(redis.call('HGET', KEYS[2 * i], 'used') or '0') * weight end
  reply[#reply + 1] = tostring(level + prev)
  reply[#reply + 1] = tostring(prev)
  if failing == 0 and level + prev + amount > limit then failing = i end
end
if failing > 0 then
  reply[2] = failing
  return reply
end
for i = 1, n do
  local a = 2 + (i - 1) * 5
  local cur = KEYS[2 * i - 1]
  redis.call('HINCRBY', cur, 'reserved', ARGV[a + 2])
  redis.call('HSET', cur, 'r:' .. ARGV[1], ARGV[a + 2])
  if tonumber(ARGV[a + 5]) > 0 then redis.call('HSET', cur, 'd:' .. ARGV[1], now + tonumber(ARGV[a + 5])) end
  redis.call('PEXPIRE', cur, ARGV[a + 4])
end
reply[1] = 1
return reply
`

/** KEYS: the counters; ARGV: the reservation id, then per counter the amount used and ttl. */
const SETTLE = `
local applied = 0
for i = 1, #KEYS do
  local held = redis.call('HGET', KEYS[i], 'r:' .. ARGV[1])
  if held then
    redis.call('HDEL', KEYS[i], 'r:' .. ARGV[1], 'd:' .. ARGV[1])
    redis.call('HINCRBY', KEYS[i], 'reserved', -tonumber(held))
    redis.call('HINCRBY', KEYS[i], 'used', ARGV[2 * i])
    redis.call('PEXPIRE', KEYS[i], ARGV[2 * i + 1])
    applied = applied + 1
  end
end
return applied
`

/** As SETTLE, for what a local reservation spent: applied once per counter (the `f:` field). */
const APPLY = `
local applied = 0
for i = 1, #KEYS do
  if redis.call('HSETNX', KEYS[i], 'f:' .. ARGV[1], 1) == 1 then
    redis.call('HINCRBY', KEYS[i], 'used', ARGV[2 * i])
    redis.call('PEXPIRE', KEYS[i], ARGV[2 * i + 1])
    applied = applied + 1
  end
end
return applied
`

const sha = (script: string) => createHash("sha1").update(script).digest("hex")
const scripts = {
  reserve: { script: RESERVE, hash: sha(RESERVE) },
  settle: { script: SETTLE, hash: sha(SETTLE) },
  apply: { script: APPLY, hash: sha(APPLY) }
} as const

/** Runs a script by hash, loading it on NOSCRIPT. */
const run = (
  redis: Redis,
  { script, hash }: { readonly script: string; readonly hash: string },
  keys: ReadonlyArray<string>,
  args: ReadonlyArray<string | number>
) =>
  Effect.tryPromise({
    try: () =>
      redis.evalsha(hash, keys.length, ...keys, ...args).catch((e: unknown) =>
        e instanceof Error && e.message.startsWith("NOSCRIPT") ? redis.eval(script, keys.length, ...keys, ...args) : Promise.reject(e)
      ),
    catch: (e) => e
  })

/** The Redis key of a counter's bucket. */
export const keyOf = (base: string, bucket: number) => `${base}:${bucket}`

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
  readonly keys: ReadonlyArray<string>
  /** Per key: the amount used and the ttl. */
  readonly args: ReadonlyArray<number>
  readonly id: string
  /** After this the counters have expired and the op is dropped. */
  readonly expiresAtMs: number
}

export interface RedisBudgetOptions {
  /** The rules a claim is held to (their bases carry the key prefix). */
  readonly rules: RulesOf
  /** While Redis does not answer (default `local_share`). */
  readonly redisDown?: "fail_closed" | "local_share"
  /** Fraction of the limit (of what was left, when known) this replica may spend alone (default 1). */
  readonly localShare?: number
  /** How often the queue is retried and Redis probed while degraded (default 500 ms). */
  readonly retryIntervalMs?: number
  /** Queued settlements kept at most (default 100,000; the oldest go first). */
  readonly maxPending?: number
  /**
   * The longest a request may hold a reservation on a counter without buckets (concurrent
   * requests) before another replica releases it as a crashed replica's (default 1 h).
   */
  readonly maxOpenMs?: number
}

export const make = (redis: Redis, options: RedisBudgetOptions): Effect.Effect<TokenBudget["Service"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const share = options.localShare ?? 1
    const failClosed = options.redisDown === "fail_closed"
    const maxPending = options.maxPending ?? 100_000
    const maxOpenMs = options.maxOpenMs ?? 3_600_000
    const replica = crypto.randomUUID().slice(0, 8)
    /** What Redis last said was left in a counter's bucket. */
    const lastRemaining = new Map<string, { readonly bucket: number; readonly remaining: number }>()
    let clockNow = 0
    const local = makeInMemory((claim) =>
      options.rules(claim).map((rule): Rule => {
        const known = lastRemaining.get(rule.base)
        const bucket = bucketOf(rule.window, clockNow)
        const base = known !== undefined && known.bucket === bucket ? Math.max(0, known.remaining) : rule.limit
        return { ...rule, limit: Math.floor(share * base) }
      })
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
    let chargedMicros = 0
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

    const apply = (op: PendingOp) => run(redis, op.kind === "settle" ? scripts.settle : scripts.apply, op.keys, [op.id, ...op.args])

    /** The settle (or apply) op of a reservation's holds, charging `used` per hold. */
    const opOf = (kind: PendingOp["kind"], id: string, reservation: Reservation, used: (i: number) => number, now: number): PendingOp => {
      const args: Array<number> = []
      let ttl = 0
      reservation.holds.forEach((h, i) => {
        const t = ttlMs(h.rule.window, h.bucket, now)
        ttl = Math.max(ttl, t)
        args.push(used(i), t)
      })
      return { kind, id, keys: reservation.holds.map((h) => keyOf(h.rule.base, h.bucket)), args, expiresAtMs: now + ttl }
    }

    /** Applies queued settlements in order; stops at the first failure. Probes Redis when there are none. */
    const drain = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      let applied = 0
      while (pending.length > 0) {
        const op = pending[0]!
        if (op.expiresAtMs < now) {
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

    const reserveLocal = (claim: Parameters<TokenBudget["Service"]["reserve"]>[0], now: number) =>
      failClosed
        ? Effect.fail(new BudgetUnavailable({ tenant: claim.tenant, retryAfterMs: 1000 }))
        : Effect.suspend(() => {
          clockNow = now
          return Effect.map(local.reserve(claim), (r) => {
            fallback.add(r.id)
            localReservedTokens += r.tokens
            return r
          })
        })

    return TokenBudget.of({
      reserve: (claim) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          if (degraded) return yield* reserveLocal(claim, now)
          const rules = options.rules(claim)
          const id = nextId--
          const tokens = claim.inputTokens + claim.outputTokens
          if (rules.length === 0) {
            const reservation: Reservation = { id, tenant: claim.tenant, tokens, holds: [] }
            open.set(id, reservation)
            reservedTokens += tokens
            return reservation
          }
          const q = reservedOf(claim)
          const buckets = rules.map((r) => bucketOf(r.window, now))
          const keys: Array<string> = []
          const args: Array<string | number> = [resId(id), now]
          rules.forEach((rule, i) => {
            keys.push(keyOf(rule.base, buckets[i]!), keyOf(rule.base, buckets[i]! - 1))
            args.push(
              rule.limit,
              amountOf(rule.metric, q),
              previousWeight(rule.window, now),
              ttlMs(rule.window, buckets[i]!, now),
              rule.window === "none" ? maxOpenMs : 0
            )
          })
          const holds = rules.map((rule, i) => ({ rule, bucket: buckets[i]!, amount: amountOf(rule.metric, q) }))
          const result = yield* Effect.result(run(redis, scripts.reserve, keys, args))
          if (result._tag === "Failure") {
            yield* degrade(result.failure)
            // The command may still run once Redis answers: release it then, exactly once.
            yield* enqueue(opOf("settle", resId(id), { id, tenant: claim.tenant, tokens, holds }, () => 0, now))
            return yield* reserveLocal(claim, now)
          }
          const reply = Array.isArray(result.success) ? result.success.map(Number) : []
          const ok = reply[0] === 1
          const levels = rules.map((_, i) => reply[2 + 2 * i] ?? 0)
          const previous = rules.map((_, i) => reply[3 + 2 * i] ?? 0)
          rules.forEach((rule, i) =>
            lastRemaining.set(rule.base, { bucket: buckets[i]!, remaining: rule.limit - levels[i]! - (ok ? holds[i]!.amount : 0) })
          )
          if (!ok) {
            const failing = Math.min(rules.length, Math.max(1, reply[1] ?? 1)) - 1
            const refused = verdict(claim, rules, buckets, levels, previous, now, failing)
            if (refused !== undefined) return yield* refused
          }
          const reservation = reservationOf(id, claim, tokens, holds, rules, levels, buckets, now)
          open.set(id, reservation)
          reservedTokens += tokens
          return reservation
        }),
      settle: (reservation, actual) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const q = settledOf(actual)
          const used = (i: number) => amountOf(reservation.holds[i]!.rule.metric, q)
          if (fallback.delete(reservation.id)) {
            yield* local.settle(reservation, actual)
            // What the local share spent reaches Redis too, so the fleet sees it when it is back.
            const spent = reservation.holds.some((_, i) => used(i) > 0)
            if (spent) yield* enqueue(opOf("apply", `${replica}:f${reservation.id}`, reservation, used, now))
            return
          }
          if (!open.delete(reservation.id)) {
            doubleSettlements++
            return
          }
          settlements++
          reservedTokens -= reservation.tokens
          chargedTokens += actual.inputTokens + actual.outputTokens
          chargedMicros += actual.costMicros
          if (reservation.holds.length === 0) return
          const op = opOf("settle", resId(reservation.id), reservation, used, now)
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
        chargedMicros: chargedMicros + l.chargedMicros,
        shared: { degraded, pendingSettlements: pending.length, droppedSettlements, localReservedTokens }
      }))
    })
  })
