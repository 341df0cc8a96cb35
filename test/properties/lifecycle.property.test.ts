/**
 * The lifecycle invariants of ARCHITECTURE.md §1, checked by fast-check on real sockets,
 * against the real gateway graph and fake engines:
 *
 *  - every admitted request yields exactly one accounting record and one settlement, and a
 *    request its request-policy extension stopped (rejected, failed, died, hung past
 *    `extensions.timeout`, interrupted by the client leaving) yields none;
 *  - when idle: no slot, queued waiter, reservation, KV pin, upstream request or in-flight
 *    request is held, no extension call is left unreleased, and the engines are working on
 *    nothing;
 *  - a tenant is charged exactly what the policy says (never twice, never the estimate when
 *    usage was reported, never for a backend that did not serve it);
 *  - after the first byte the gateway never switches backends: one attempt's chunks, an
 *    error event last, no `[DONE]` after it.
 *
 * Every run is a batch with at least one request of each outcome class (lifecycle.scenarios.ts)
 * sent together (each within 80 ms of the start, so they overlap), and the run fails unless
 * the observed outcome mix contains every class: a breaker, a health check or a timeout that
 * masks a path is a failure, not a silent gap. The oracle (lifecycle.oracle.ts) judges each
 * request against its scenario, this file judges the run as a whole. A failed run whose
 * problems are all of the kind a starved process causes by itself, on a machine where the
 * event loop stalled past LAG_LIMIT_MS, is run again (see `judge`).
 * Breakers and health are set so they never judge during the property (each fake backend has
 * its own GPU SKU, and no run produces enough evidence to open a breaker); their own
 * properties are in resilience.property.test.ts.
 *
 * Environment: SLUICE_PROPERTY_SEEDS (`1-20` or `3,7`; one `it` per seed, each with a fresh
 * gateway), SLUICE_PROPERTY_SEED (one seed), SLUICE_PROPERTY_RUNS (runs per seed, default 4),
 * SLUICE_PROPERTY_END_ON_FAILURE=1 (stop at the first failure, no shrinking: the mutation check).
 */
import * as fc from "fast-check"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { describe, expect, it } from "vitest"
import type { AccountingRecord } from "../../src/accounting/Accounting.ts"
import { eventually } from "../support/Gateway.ts"
import { check, classify, type Observation, type Problem } from "./lifecycle.oracle.ts"
import { ALL_CLASSES, batch, type Batch, isExtensionClass, MAX_BATCH, type OutcomeClass } from "./lifecycle.scenarios.ts"
import { idleJson, newKey, send, sendQueueGroup, sleep, startWorld, type World } from "./lifecycle.world.ts"

const parseSeeds = (): ReadonlyArray<number> => {
  const list = process.env["SLUICE_PROPERTY_SEEDS"]
  if (list !== undefined && list !== "") {
    return list.split(",").flatMap((part) => {
      const [from, to] = part.split("-").map((x) => Number(x.trim()))
      if (from === undefined || !Number.isInteger(from)) throw new Error(`SLUICE_PROPERTY_SEEDS: bad seed "${part}"`)
      if (to === undefined) return [from]
      if (!Number.isInteger(to) || to < from) throw new Error(`SLUICE_PROPERTY_SEEDS: bad range "${part}"`)
      return Array.from({ length: to - from + 1 }, (_, i) => from + i)
    })
  }
  const one = process.env["SLUICE_PROPERTY_SEED"]
  if (one !== undefined && one !== "") return [Number(one)]
  return [Math.floor(Math.random() * 2 ** 31)]
}

const SEEDS = parseSeeds()
const RUNS = Number(process.env["SLUICE_PROPERTY_RUNS"] ?? 4)
const END_ON_FAILURE = process.env["SLUICE_PROPERTY_END_ON_FAILURE"] === "1"
/**
 * A run that fails with only timing problems while the process was starved (the event loop
 * stalled longer than this at least once) cannot tell a lifecycle bug from a late timer: it
 * is run again, at most MAX_TRIES times in all, and the last verdict stands. A run that
 * passes always counts; a run with any other problem fails at once.
 */
const LAG_LIMIT_MS = 150
const MAX_TRIES = 4

const recordsById = (records: ReadonlyArray<AccountingRecord>) => {
  const map = new Map<string, Array<AccountingRecord>>()
  for (const r of records) {
    const list = map.get(r.requestId) ?? []
    list.push(r)
    map.set(r.requestId, list)
  }
  return map
}


/** How long the checks wait for finalizers that run after the last response ended. */
const SETTLE_MS = 1500

/** One run: the batch at once, then every invariant and the outcome mix; the problems found. */
const runBatch = async (world: World, b: Batch): Promise<Array<Problem>> => {
  const { gw, engines, ledger } = world
  const before = await gw.run(gw.sink.snapshot)
  const budgetBefore = await gw.run(gw.budget.snapshot)
  const transitionsBefore = gw.breakers.transitions().length

  const concurrentKeys = b.concurrent.map(() => newKey())
  const queueKeys = [newKey(), newKey(), newKey()] as const
  const [concurrent, queue] = await Promise.all([
    Promise.all(b.concurrent.map((sc, i) => send(world, concurrentKeys[i]!, sc))),
    sendQueueGroup(world, b.queue, queueKeys)
  ])
  const keys = [...concurrentKeys, ...queueKeys]
  const scenarios = [...b.concurrent, b.queue.holder, b.queue.timesOut, b.queue.leaves]
  const results = [...concurrent, ...queue]
  // Requests the request policy stops are never admitted: no record, no settlement.
  const admitted = scenarios.filter((sc) => !isExtensionClass(sc.cls)).length

  const problems: Array<Problem> = []
  const broken = (text: string) => problems.push({ text, timing: false })

  // Nothing held once the gateway is idle (extension calls included), the engines are
  // working on nothing, and every admitted request has its record.
  const [held, active, after, probesOpen] = await Promise.all([
    eventually(() => gw.held(), (h) => JSON.stringify(h) === idleJson, SETTLE_MS),
    eventually(async () => engines.map((e) => e.active()), (xs) => xs.every((x) => x === 0), SETTLE_MS),
    eventually(() => gw.run(gw.sink.snapshot), (s) => s.records >= before.records + admitted, SETTLE_MS),
    eventually(async () => ledger.probesOpen, (n) => n === 0, SETTLE_MS)
  ])
  if (JSON.stringify(held) !== idleJson) broken(`held when idle: ${JSON.stringify(held)}`)
  if (probesOpen !== 0) broken(`${probesOpen} request-policy call(s) never released`)
  if (active.some((x) => x !== 0)) broken(`engines still serving requests the gateway left: ${JSON.stringify(active)}`)

  // One record and one settlement per admitted request.
  const byId = recordsById(after.recent)
  if (after.records - before.records !== admitted) broken(`${after.records - before.records} accounting records for ${admitted} admitted requests`)
  const budget = await gw.run(gw.budget.snapshot)
  if (budget.settlements - budgetBefore.settlements !== admitted) {
    broken(`${budget.settlements - budgetBefore.settlements} settlements for ${admitted} admitted requests`)
  }
  if (budget.doubleSettlements !== 0) broken(`${budget.doubleSettlements} double settlements`)
  if (budget.reservedTokens !== 0 || budget.openReservations !== 0) {
    broken(`reservations left: ${budget.openReservations} holding ${budget.reservedTokens} tokens`)
  }

  // Each request: its class, its attempts, its bytes, its exact charge.
  const observations: Array<Observation> = keys.map((key, i) => ({
    key,
    scenario: scenarios[i]!,
    client: results[i]!.client,
    hung: results[i]!.hung,
    records: byId.get(key) ?? [],
    line: gw.lines.find((l) => l.request_id === key),
    engineAttempts: ledger.attemptsOf(key),
    probe: ledger.probes.get(key)
  }))
  for (const obs of observations) problems.push(...check(obs))
  const charged = observations.reduce((n, o) => n + (o.records[0] === undefined ? 0 : o.records[0].charged.promptTokens + o.records[0].charged.completionTokens), 0)
  if (budget.chargedTokens - budgetBefore.chargedTokens !== charged) {
    broken(`the budget was charged ${budget.chargedTokens - budgetBefore.chargedTokens} tokens, the records say ${charged}`)
  }

  // The outcome mix actually reached: every class, each at least 1/MAX_BATCH of the run.
  const mix = new Map<string, number>()
  for (const obs of observations) {
    const cls = classify(obs)
    mix.set(cls, (mix.get(cls) ?? 0) + 1)
  }
  const missing = ALL_CLASSES.filter((c: OutcomeClass) => (mix.get(c) ?? 0) / keys.length < 1 / MAX_BATCH)
  if (missing.length > 0) {
    problems.push({ text: `outcome mix misses ${missing.join(", ")}: ${JSON.stringify(Object.fromEntries(mix))}`, timing: true })
  }

  // Breakers and health stayed out of the way (else they would have masked paths).
  const transitions = gw.breakers.transitions().slice(transitionsBefore)
  if (transitions.length > 0) broken(`breaker transitions during the property: ${JSON.stringify(transitions)}`)
  const unhealthy = gw.fleet.all.filter((x) => x.health === "unhealthy").map((x) => x.id)
  if (unhealthy.length > 0) broken(`backends turned unhealthy: ${unhealthy.join(", ")}`)

  return problems
}

/**
 * Runs a batch and judges it. A run whose every problem is of the kind a starved process
 * causes on its own, and during which the event loop did stall past LAG_LIMIT_MS, is run
 * again (at most MAX_TRIES times in all; the last verdict stands).
 */
const judge = async (world: World, b: Batch): Promise<void> => {
  for (let tries = 1; ; tries++) {
    const lag = monitorEventLoopDelay({ resolution: 10 })
    lag.enable()
    const problems = await runBatch(world, b)
    lag.disable()
    if (problems.length === 0) return
    const maxLagMs = lag.max / 1e6
    const starved = maxLagMs > LAG_LIMIT_MS && problems.every((p) => p.timing)
    if (!starved || tries === MAX_TRIES) {
      const texts = problems.map((p) => p.text)
      texts.push(`(try ${tries} of ${MAX_TRIES}; the event loop stalled at most ${maxLagMs.toFixed(0)} ms during this run)`)
      // The message names the first problem; the diff lists them all.
      expect(texts, `${problems.length} lifecycle problem(s); first: ${texts[0]}`).toEqual([])
      return
    }
    console.warn(`lifecycle property: a run failed while the event loop stalled ${maxLagMs.toFixed(0)} ms (> ${LAG_LIMIT_MS} ms), with only timing problems; running it again. ${problems.map((p) => p.text).join("; ")}`)
    // Give a starved machine a moment before the next try.
    await sleep(1000)
  }
}

describe("lifecycle invariants (property)", () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}`, async () => {
      const world = await startWorld()
      try {
        await fc.assert(fc.asyncProperty(batch, (b) => judge(world, b)), {
          seed,
          numRuns: RUNS,
          endOnFailure: END_ON_FAILURE,
          includeErrorInReport: true,
          // Shrinking replays whole batches over sockets: bounded, so a failure is reported in time.
          interruptAfterTimeLimit: 150_000,
          markInterruptAsFailure: true
        })
      } finally {
        await world.close()
      }
    }, 180_000 + RUNS * 10_000)
  }
})
