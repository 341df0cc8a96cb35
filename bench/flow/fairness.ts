/**
 * `tsx bench/flow/fairness.ts [--seconds 600] [--seed 1] [--quiet 1]`: issue 15's fairness check for flow
 * control, in virtual time (no sockets, no wall clock): one tenant sends 10× its share while
 * three others send theirs, against a pool whose capacity is four shares.
 *
 * The pool: `SLOTS` concurrent requests, each holding a slot for `cost / TOKENS_PER_S` seconds
 * (cost: prompt + output tokens, lognormal). Arrivals are Poisson; every tenant has weight 1.
 * When every slot is taken, a request waits in flow control's queue (admission/FlowQueue.ts,
 * the production data structure) and is dispatched when a slot frees. Compared with the same
 * arrivals in one FIFO queue (what the gateway did before: first come, first served).
 *
 * Reported per tenant: p90 time to start (queue wait) and to finish; for the flooder, the
 * tokens served against its weighted share (capacity ÷ 4). Targets (issue 15): each
 * well-behaved tenant's p90 within 1.25× of its solo run, the flooder ≥ 0.9× its share.
 *
 * Owns nothing of the gateway. Must never: read a clock.
 */
import { FlowQueue } from "../../src/admission/FlowQueue.ts"
import { makeRng } from "../../src/domain/Random.ts"

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}
const SECONDS = Number(arg("seconds", "600"))
const SEED = Number(arg("seed", "1"))
/** What each well-behaved tenant sends, as a fraction of its share (1: exactly its share). */
const QUIET = Number(arg("quiet", "1"))
const SLOTS = 32
const TOKENS_PER_S = 400 // per slot
const MEAN_COST = 500
/** One share: a quarter of the pool's token capacity, in requests/s. */
const SHARE_RPS = (SLOTS * TOKENS_PER_S) / MEAN_COST / 4

interface Req {
  readonly tenant: string
  readonly at: number
  readonly cost: number
}

const arrivals = (tenant: string, rps: number, seed: number): Array<Req> => {
  const r = makeRng(seed)
  const out: Array<Req> = []
  for (let t = 0; ;) {
    t += -Math.log(1 - r()) / rps
    if (t >= SECONDS) return out
    const z = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r())
    out.push({ tenant, at: t, cost: Math.max(16, Math.round(MEAN_COST * Math.exp(0.6 * z - 0.18))) })
  }
}

/** Runs the pool over `reqs` with a queue discipline; returns per-request start and end times. */
const simulate = (reqs: ReadonlyArray<Req>, fair: boolean) => {
  const sorted = [...reqs].sort((a, b) => a.at - b.at)
  const q = new FlowQueue<Req>({ bands: 1, maxQueued: Number.MAX_SAFE_INTEGER })
  const fifo: Array<Req> = []
  let head = 0
  const ends: Array<{ t: number }> = [] // min-heap would do; SLOTS is small
  const done: Array<{ req: Req; start: number; end: number }> = []
  let free = SLOTS
  const startOne = (req: Req, now: number) => {
    free--
    const end = now + req.cost / TOKENS_PER_S
    ends.push({ t: end })
    done.push({ req, start: now, end })
  }
  const dispatch = (now: number) => {
    while (free > 0) {
      const next = fair ? q.next()?.value : head < fifo.length ? fifo[head++] : undefined
      if (next === undefined) return
      startOne(next, now)
    }
  }
  let i = 0
  while (i < sorted.length || ends.length > 0) {
    ends.sort((a, b) => a.t - b.t)
    const nextEnd = ends[0]?.t ?? Infinity
    const nextArrival = sorted[i]?.at ?? Infinity
    if (nextEnd <= nextArrival) {
      ends.shift()
      free++
      dispatch(nextEnd)
    } else {
      const req = sorted[i++]!
      if (fair) q.enqueue({ tenant: req.tenant, band: 0, cost: req.cost, deadlineMs: Infinity, value: req })
      else fifo.push(req)
      dispatch(req.at)
    }
  }
  return done
}

const p90 = (xs: Array<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.max(0, Math.ceil(0.9 * s.length) - 1)] ?? NaN
}

const tenants = ["a", "b", "c"]
const quiet = tenants.map((t, k) => arrivals(t, QUIET * SHARE_RPS, SEED * 100 + k))
const flood = arrivals("flood", 10 * SHARE_RPS, SEED * 100 + 9)
/** Only what ends inside the arrival window counts as served (the flooder's backlog never ends). */
const servedTokens = (runs: ReturnType<typeof simulate>, tenant: string) =>
  runs.filter((d) => d.req.tenant === tenant && d.end <= SECONDS).reduce((n, d) => n + d.req.cost, 0)

const rows: Array<string> = []
const allSolo = simulate(quiet.flat(), true)
for (const fair of [true, false]) {
  const runs = simulate([...quiet.flat(), ...flood], fair)
  for (const t of tenants) {
    const mine = runs.filter((d) => d.req.tenant === t)
    const wait = p90(mine.map((d) => d.start - d.req.at))
    const finish = p90(mine.map((d) => d.end - d.req.at))
    const base = allSolo.filter((d) => d.req.tenant === t)
    const baseFinish = p90(base.map((d) => d.end - d.req.at))
    rows.push(`| ${fair ? "fair queuing" : "FIFO"} | ${t} | ${(wait * 1000).toFixed(0)} ms | ${(finish * 1000).toFixed(0)} ms | ${(finish / baseFinish).toFixed(2)}× | – |`)
  }
  const share = (SLOTS * TOKENS_PER_S * SECONDS) / 4
  const got = servedTokens(runs, "flood")
  rows.push(`| ${fair ? "fair queuing" : "FIFO"} | flood (10×) | – | – | – | ${(got / share).toFixed(2)}× |`)
}
console.log(`Flow-control fairness, virtual time: ${SECONDS} s, ${SLOTS} slots × ${TOKENS_PER_S} tok/s, share ${SHARE_RPS.toFixed(1)} req/s, ` +
  `well-behaved tenants at ${QUIET}× their share, seed ${SEED}.`)
console.log("Solo = the three well-behaved tenants without the flooder.\n")
console.log("| queue | tenant | p90 wait | p90 finish | p90 finish ÷ solo | tokens ÷ weighted share |")
console.log("|---|---|---:|---:|---:|---:|")
for (const r of rows) console.log(r)
