/**
 * Per-tenant token budgets: a reservation (prompt estimate + maximum output) is taken
 * before dispatch and settled to actual usage exactly once; the remainder is refunded.
 *
 * This is the interface every store implements (in memory here; Redis in RedisBudget.ts).
 * The in-memory ledger keeps fixed windows per tenant: `used` (settled in the window)
 * plus `reserved` (outstanding) may not exceed the limit. It never charges twice: a
 * second settlement of the same reservation is refused and counted as a defect.
 */
import { Clock, Context, Data, Effect, Layer } from "effect"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { TenantId } from "../domain/Ids.ts"

export interface Reservation {
  readonly id: number
  readonly tenant: TenantId
  readonly tokens: number
  /** The window the reservation was taken in (its settlement is charged there). */
  readonly window: number
}

export class BudgetExceeded extends Data.TaggedError("BudgetExceeded")<{
  readonly tenant: TenantId
  readonly requested: number
  readonly remaining: number
  readonly retryAfterMs: number
}> {}

/** The shared budget store cannot be reached and the policy is `fail_closed` (a 503, not the tenant's fault). */
export class BudgetUnavailable extends Data.TaggedError("BudgetUnavailable")<{
  readonly tenant: TenantId
  readonly retryAfterMs: number
}> {}

/** The state of a shared budget store (absent for the in-memory one). */
export interface SharedBudgetState {
  /** The store did not answer; reservations follow the `redis_down` policy. */
  readonly degraded: boolean
  /** Settlements waiting for the store to come back. */
  readonly pendingSettlements: number
  /** Settlements given up (their window had expired, or the queue was full). */
  readonly droppedSettlements: number
  /** Tokens reserved from the local share since start. */
  readonly localReservedTokens: number
}

export interface BudgetSnapshot {
  /** Tokens held by open reservations, all tenants. */
  readonly reservedTokens: number
  readonly openReservations: number
  readonly settlements: number
  /** Settlements refused because the reservation was already settled (must stay 0). */
  readonly doubleSettlements: number
  /** Tokens charged, all tenants, all windows. */
  readonly chargedTokens: number
  readonly shared?: SharedBudgetState | undefined
}

export class TokenBudget extends Context.Service<TokenBudget, {
  readonly reserve: (tenant: TenantId, tokens: number) => Effect.Effect<Reservation, BudgetExceeded | BudgetUnavailable>
  /** Settles to `usedTokens` (may exceed the reservation: the overage is charged too). */
  readonly settle: (reservation: Reservation, usedTokens: number) => Effect.Effect<void>
  readonly snapshot: Effect.Effect<BudgetSnapshot>
}>()("sluice/admission/TokenBudget") {
  static readonly layer = Layer.effect(
    TokenBudget,
    Effect.gen(function*() {
      const { initial } = yield* GatewayConfig
      return makeInMemory(initial.budgets.tokensPerWindow, initial.budgets.windowMs)
    })
  )
}

interface TenantWindow {
  window: number
  used: number
  reserved: number
}

/** A limit for every tenant and window, or one that depends on them (undefined: unlimited). */
export type Limit = number | undefined | ((tenant: TenantId, window: number) => number | undefined)

export const makeInMemory = (limit: Limit, windowMs: number): TokenBudget["Service"] => {
  const limitOf = typeof limit === "function" ? limit : () => limit
  const tenants = new Map<TenantId, TenantWindow>()
  const open = new Map<number, Reservation>()
  let nextId = 1
  let reservedTokens = 0
  let settlements = 0
  let doubleSettlements = 0
  let chargedTokens = 0

  const windowOf = (tenant: TenantId, window: number): TenantWindow => {
    let w = tenants.get(tenant)
    if (w === undefined) {
      w = { window, used: 0, reserved: 0 }
      tenants.set(tenant, w)
    } else if (w.window !== window) {
      // A new window: usage resets, outstanding reservations carry over.
      w.window = window
      w.used = 0
    }
    return w
  }

  return TokenBudget.of({
    reserve: (tenant, tokens) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const window = Math.floor(now / windowMs)
        const w = windowOf(tenant, window)
        const max = limitOf(tenant, window)
        if (max !== undefined && w.used + w.reserved + tokens > max) {
          return Effect.fail(
            new BudgetExceeded({
              tenant,
              requested: tokens,
              remaining: Math.max(0, max - w.used - w.reserved),
              retryAfterMs: (window + 1) * windowMs - now
            })
          )
        }
        w.reserved += tokens
        reservedTokens += tokens
        const reservation: Reservation = { id: nextId++, tenant, tokens, window }
        open.set(reservation.id, reservation)
        return Effect.succeed(reservation)
      }),
    settle: (reservation, usedTokens) =>
      Effect.sync(() => {
        if (!open.delete(reservation.id)) {
          doubleSettlements++
          return
        }
        settlements++
        reservedTokens -= reservation.tokens
        chargedTokens += usedTokens
        const w = tenants.get(reservation.tenant)
        if (w !== undefined) {
          w.reserved -= reservation.tokens
          if (w.window === reservation.window) w.used += usedTokens
        }
      }),
    snapshot: Effect.sync(() => ({
      reservedTokens,
      openReservations: open.size,
      settlements,
      doubleSettlements,
      chargedTokens
    }))
  })
}
