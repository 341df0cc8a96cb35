/**
 * Accounting: settlement on exit and the accounting record of every admitted request.
 *
 * `settle` is the release of the request's reservation, so it runs exactly once per
 * admitted request whatever way the request ends (completed, cut mid-stream, client gone,
 * every backend failed, defect): given the outcome (request/Outcome.ts decides it), it
 * computes what the tenant is charged from the answer's tally and what that costs at the
 * model's price (admission/Quotas.ts), settles the reservation with both,
 * and hands one record to the usage sink. The sink here keeps
 * recent records in memory; the shared audit store plugs in behind the same interface.
 *
 * Admission is recorded too (`admit`): with a durable sink it becomes a journal entry, so
 * a request admitted by a process that then dies is still settled, at the next start, as
 * `interrupted`.
 *
 * Charging policy: reported usage when the backend sent it; otherwise the prompt
 * estimate plus the completion tokens seen on the wire, but only once the first token
 * was produced. A request that never got a token (failed, or abandoned before its first
 * token) is charged nothing; the backends' cost of failed attempts is recorded
 * separately as attempt waste. An `interrupted` request is charged nothing either:
 * after a crash nothing about what was produced is known (the stream may have ended at
 * its first token or its last), and the policy never charges an estimate for work it
 * cannot show; its record keeps the reservation and the prompt estimate for
 * reconciliation.
 */
import { Context, Effect, Layer } from "effect"
import { type Reservation, TokenBudget } from "../admission/Budget.ts"
import * as Estimate from "../admission/Estimate.ts"
import { QuotaTable } from "../admission/Quotas.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { GatewayRequest } from "../admission/Request.ts"
import type { AttemptLog, AttemptRecord } from "../dispatch/Attempts.ts"
import type { Tally } from "../dispatch/Tally.ts"
import type { BackendId, ModelId, RequestId, TenantId } from "../domain/Ids.ts"
import type { RequestOutcome } from "../domain/Outcome.ts"
import { costMicros } from "../domain/Quotas.ts"
import type { Usage } from "../domain/Usage.ts"
import * as Metrics from "../observability/Metrics.ts"
import { Aggregate, type UsageGroup, type UsageQuery, type UsageUnavailable } from "./UsageReport.ts"

export type { AttemptRecord } from "../dispatch/Attempts.ts"

export interface AccountingRecord {
  /** Minted at admission; unique per admitted request (the store's idempotency key). */
  readonly recordId: string
  readonly requestId: RequestId
  readonly tenant: TenantId
  /** The public id of the API key that authenticated the request (none: anonymous). */
  readonly keyId?: string | undefined
  readonly model: ModelId
  readonly backend: BackendId | undefined
  readonly outcome: RequestOutcome
  readonly reservedTokens: number
  /** The prompt tokens estimated at admission. */
  readonly estimatedPromptTokens: number
  readonly charged: Usage
  /**
   * What `charged` costs at the model's price on the backend that answered, USD (a whole
   * number of micro-dollars; 0 without a price). Records written before prices existed read as 0.
   */
  readonly costUsd: number
  /** Whether `charged` came from the backend's own usage report. */
  readonly reported: boolean
  readonly attempts: ReadonlyArray<AttemptRecord>
  readonly wastedPromptTokens: number
  readonly ttftMs: number | undefined
  readonly durationMs: number
  /** When it was settled (ms since the epoch): the time usage reports group it by. */
  readonly settledAtMs: number
}

/** What is known of a request when it is admitted (the journal's admission entry). */
export interface Admission {
  readonly recordId: string
  readonly requestId: RequestId
  readonly tenant: TenantId
  readonly keyId?: string | undefined
  readonly model: ModelId
  readonly reservedTokens: number
  readonly estimatedPromptTokens: number
  readonly admittedAtMs: number
}

/** The durable ledger's state (absent for the in-memory sink). */
export interface LedgerStats {
  /** Records held in memory for the store. */
  readonly queued: number
  /** Records not yet in the store (memory and journal). */
  readonly pending: number
  /** Records written to the store since start. */
  readonly written: number
  readonly failedWrites: number
  /** Live journal segments and their bytes. */
  readonly journalSegments: number
  readonly journalBytes: number
  /** Records settled as `interrupted` at start (admitted by a process that died). */
  readonly recoveredInterrupted: number
}

export interface AccountingSnapshot {
  readonly records: number
  readonly byOutcome: Readonly<Record<string, number>>
  readonly recent: ReadonlyArray<AccountingRecord>
  readonly ledger?: LedgerStats | undefined
}

export class UsageSink extends Context.Service<UsageSink, {
  /** Records an admission (a journal entry, batched; never an fsync per request). */
  readonly admit: (admission: Admission) => Effect.Effect<void>
  readonly write: (record: AccountingRecord) => Effect.Effect<void>
  readonly snapshot: Effect.Effect<AccountingSnapshot>
  /** Resolves once every record written so far is durable in the sink's store. */
  readonly flushed: Effect.Effect<void>
  /**
   * The read side: requests and charged tokens per (UTC day, tenant, model) from the store
   * the records go to (the memory sink: what this process settled since start).
   */
  readonly read: (query: UsageQuery) => Effect.Effect<ReadonlyArray<UsageGroup>, UsageUnavailable>
}>()("sluice/accounting/UsageSink") {
  /** Keeps counts, the last `keep` records and the usage sums in memory. */
  static readonly memory = (keep = 1000) => Layer.sync(UsageSink, () => makeMemorySink(keep))
}

/** `sums: false` when a store answers the reports (the durable ledger): no usage sums kept here. */
export const makeMemorySink = (keep: number, options: { readonly sums: boolean } = { sums: true }): UsageSink["Service"] => {
  const aggregate = options.sums ? new Aggregate() : undefined
  // A ring of the last `keep` records: once full, `oldest` is the slot written next. (Dropping
  // the first of a full array per record moved all `keep` of them: ~5 µs per settled request.)
  const recent: Array<AccountingRecord> = []
  let oldest = 0
  const byOutcome: Record<string, number> = {}
  let records = 0
  return UsageSink.of({
    admit: () => Effect.void,
    write: (record) =>
      Effect.sync(() => {
        records++
        byOutcome[record.outcome] = (byOutcome[record.outcome] ?? 0) + 1
        aggregate?.add(record.tenant, record.model, record.settledAtMs, record.charged)
        if (recent.length < keep) {
          recent.push(record)
        } else if (keep > 0) {
          recent[oldest] = record
          oldest = oldest + 1 === keep ? 0 : oldest + 1
        }
      }),
    snapshot: Effect.sync(() => ({
      records,
      byOutcome: { ...byOutcome },
      recent: oldest === 0 ? [...recent] : [...recent.slice(oldest), ...recent.slice(0, oldest)]
    })),
    flushed: Effect.void,
    read: (query) => Effect.sync(() => aggregate?.read(query) ?? [])
  })
}

/**
 * What admission and settlement read of a request. Settlement runs when the request's scope
 * closes (a stream's last byte), so what it keeps alive until then is this, not the request
 * with its decoded body, raw bytes and prompt prefix (see `settlementView`).
 */
export type SettledRequest =
  & Pick<GatewayRequest, "id" | "kind" | "tenant" | "identity" | "model" | "receivedAtMs">
  & {
    readonly estimate: {
      readonly promptTokens: number
      /**
       * When `promptTokens` is an upper bound (admitted before the tokenizer tables had loaded):
       * the exact count, which a charge made from the estimate uses instead.
       */
      readonly exact?: Effect.Effect<number> | undefined
    }
  }

/** The fields of `req` settlement reads, copied (the request itself can then be collected). */
export const settlementView = (req: GatewayRequest): SettledRequest => ({
  id: req.id,
  kind: req.kind,
  tenant: req.tenant,
  identity: req.identity,
  model: req.model,
  receivedAtMs: req.receivedAtMs,
  // A bound keeps the prompt's text (not the request) until settlement, to count it if needed.
  estimate: req.estimate.promptBound === true
    ? { promptTokens: req.estimate.promptTokens, exact: Estimate.exactPromptTokens(Estimate.promptText(req), req.model.tokenizer) }
    : { promptTokens: req.estimate.promptTokens }
})

/** What the tenant is charged for a request that ended with `outcome`. */
export const charge = (
  req: SettledRequest,
  tally: Tally,
  outcome: RequestOutcome
): { readonly usage: Usage; readonly reported: boolean } => {
  if (tally.reported !== undefined && (outcome === "completed" || outcome === "partial" || outcome === "client_aborted")) {
    return { usage: tally.reported, reported: true }
  }
  const produced = tally.firstTokenAtMs !== undefined || (outcome === "completed" && (req.kind === "embedding" || req.kind === "rerank"))
  if (!produced || outcome === "failed" || outcome === "rejected" || outcome === "error" || outcome === "interrupted") {
    return { usage: { promptTokens: 0, completionTokens: 0, cachedTokens: 0 }, reported: false }
  }
  return {
    usage: { promptTokens: req.estimate.promptTokens, completionTokens: tally.countedCompletionTokens, cachedTokens: 0 },
    reported: false
  }
}

/** How an admitted request ended, as settlement needs it. */
export interface Ending {
  readonly outcome: RequestOutcome
  readonly attempts: AttemptLog
  readonly tally: Tally
  readonly nowMs: number
}

/** An admitted request: its reservation and the id its accounting record will carry. */
export interface Admitted {
  readonly reservation: Reservation
  readonly recordId: string
}

export class Accounting extends Context.Service<Accounting, {
  /** Admission, after the reservation: mints the record id and journals the admission. */
  readonly admit: (req: SettledRequest, reservation: Reservation) => Effect.Effect<Admitted>
  /** The release of a reservation: settle once, record once; returns what was charged. */
  readonly settle: (req: SettledRequest, admitted: Admitted, ending: Ending) => Effect.Effect<Usage>
}>()("sluice/accounting/Accounting") {
  static readonly layer = Layer.effect(
    Accounting,
    Effect.gen(function*() {
      const budget = yield* TokenBudget
      const quotas = yield* QuotaTable
      const sink = yield* UsageSink
      const config = yield* GatewayConfig
      return Accounting.of({
        admit: (req, reservation) =>
          Effect.suspend(() => {
            const admitted: Admitted = { reservation, recordId: crypto.randomUUID() }
            return Effect.as(
              sink.admit({
                recordId: admitted.recordId,
                requestId: req.id,
                tenant: req.tenant,
                keyId: req.identity.keyId,
                model: req.model.id,
                reservedTokens: reservation.tokens,
                estimatedPromptTokens: req.estimate.promptTokens,
                admittedAtMs: req.receivedAtMs
              }),
              admitted
            )
          }),
        settle: (admittedAs, { reservation, recordId }, { outcome, attempts, tally, nowMs }) =>
          Effect.gen(function*() {
            const first = charge(admittedAs, tally, outcome)
            const exact = admittedAs.estimate.exact
            // Charged from an estimate that was a bound: from the exact count instead.
            const req: SettledRequest = exact !== undefined && !first.reported && first.usage.promptTokens > 0
              ? { ...admittedAs, estimate: { promptTokens: yield* exact } }
              : admittedAs
            const { usage, reported } = req === admittedAs ? first : charge(req, tally, outcome)
            const micros = costMicros(quotas.price(req.model.id, attempts.backend), usage)
            yield* budget.settle(reservation, { inputTokens: usage.promptTokens, outputTokens: usage.completionTokens, costMicros: micros })
            if (micros > 0) {
              // The tenant label is bounded as on every request series: configured tenants by name.
              const plan = yield* config.current
              yield* Metrics.recordSpend(Metrics.tenantLabel(Metrics.configuredTenants(plan), req.tenant), req.model.id, micros / 1e6)
            }
            yield* sink.write({
              recordId,
              requestId: req.id,
              tenant: req.tenant,
              keyId: req.identity.keyId,
              model: req.model.id,
              backend: attempts.backend,
              outcome,
              reservedTokens: reservation.tokens,
              estimatedPromptTokens: req.estimate.promptTokens,
              charged: usage,
              costUsd: micros / 1e6,
              reported,
              attempts: attempts.failed,
              wastedPromptTokens: attempts.wastedPromptTokens,
              ttftMs: tally.ttftMs,
              durationMs: nowMs - req.receivedAtMs,
              settledAtMs: nowMs
            })
            return usage
          })
      })
    })
  )
}
