/**
 * `npm run bench:routing`: replays the routing workloads against a heterogeneous simulated
 * fleet once per policy, through the real gateway, and prints the routing-quality table.
 *
 *   tsx bench/routing/run.ts [--workloads shared-prefix,multi-turn,sharegpt,bursty]
 *                            [--policies inference,round_robin,least_outstanding,random]
 *                            [--time-scale N] [--warmup S] [--duration S] [--drain S]
 *                            [--load 1] [--seed 1] [--quick] [--out bench/routing/results]
 *                            [--overload 1.5,2] [--capacity] [--host-wait S] [--lag-retries N]
 *                            [--kv-blocks N] [--repeats 1]
 *
 * `--kv-blocks N` gives every engine an N-block KV cache (high cache churn); policy `inference+kv`
 * is `inference` with the precise prefix index (engine KV events). `--repeats R` runs each
 * (workload, policy) R times, interleaved, and reports the run with the median p90 TTFT.
 *
 * A child process runs the six engines (simulated time runs `time-scale`× faster than the
 * wall clock; each workload has its own default, see PHASES); this process runs the gateway
 * (the production Layer graph, `url:` backends) and the load generator. For every (workload,
 * policy): the engines are reset (KV and prefix caches dropped), a fresh gateway starts with
 * that policy, requests arrive for `duration` simulated seconds (plus closed-loop follow-ups),
 * streams may finish for `drain` more seconds, then whatever still runs is cut off (counted as
 * unfinished). Only requests arriving after `warmup` are measured (engine counters too), so
 * every policy is judged in steady state, not on its cold start. Every policy replays exactly
 * the same requests. Writes `<out>/latest.md` and `<out>/latest.json`.
 *
 * Overload (issue 16): `--overload 1.5,2` runs every workload at those multiples of the fleet's
 * capacity on this host (CAPACITY below, in units of the workload's `--load`) instead of at
 * `--load`; the rows are labelled `<workload> @1.5×cap`. `--capacity` measures CAPACITY: a run
 * per workload and policy at `--load` (use one well above capacity, e.g. 3), where capacity =
 * load × (requests completed in the measured window ÷ requests that arrived in it); the
 * fleet's capacity is the best policy's.
 */
import { Effect, Layer, ManagedRuntime, References } from "effect"
import { HttpServer } from "effect/http"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as Tokenizer from "../../src/admission/Tokenizer.ts"
import { EngineLauncher } from "../../src/backends/Fleet.ts"
import { GatewayConfig } from "../../src/config/GatewayConfig.ts"
import * as Load from "../../src/config/Load.ts"
import * as Gateway from "../../src/Gateway.ts"
import { RequestLog } from "../../src/observability/RequestLog.ts"
import { type Outcome, stream } from "./client.ts"
import { gatewayYaml, type Policy, POLICIES, startFleet } from "./fleet.ts"
import { type EngineDelta, type Row, summarize, table, verdicts } from "./report.ts"
import { type Request, type Workload, WORKLOADS, type WorkloadName } from "./workloads.ts"

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}

/**
 * Per workload: time scale and phases (simulated seconds). Streaming-heavy workloads run at a
 * lower time scale: the load generator and gateway share one host with the engines, and a
 * millisecond of host delay is `time-scale` milliseconds of simulated latency.
 */
const PHASES: Readonly<Record<WorkloadName, { timeScale: number; warmup: number; duration: number; drain: number }>> = {
  "shared-prefix": { timeScale: 2.5, warmup: 20, duration: 60, drain: 10 },
  "multi-turn": { timeScale: 3, warmup: 15, duration: 60, drain: 10 },
  sharegpt: { timeScale: 2, warmup: 5, duration: 35, drain: 20 },
  bursty: { timeScale: 2, warmup: 5, duration: 35, drain: 20 }
}
const quick = process.argv.includes("--quick")
/** Prints every engine's queue, batch, KV use and hit rate every few seconds (debugging a policy). */
const trace = process.argv.includes("--trace")
const phasesOf = (name: WorkloadName) => {
  const p = PHASES[name]
  const pick = (flag: string, value: number) => Number(arg(flag, String(value)))
  const shrink = quick ? 0.5 : 1
  return {
    timeScale: pick("time-scale", p.timeScale),
    warmup: pick("warmup", p.warmup * shrink),
    duration: pick("duration", p.duration * shrink),
    drain: pick("drain", p.drain)
  }
}
const load = Number(arg("load", "1"))
/**
 * The fleet's capacity on this host per workload, as a `--load` multiple (bench/routing/README.md,
 * "Overload"): load 1 is served in full by the best policy on every workload (the first round's
 * table: 100% goodput), while load 2 (shared-prefix) and loads 3–4 (the others) are not served
 * (queues grow without bound, or the host falls behind: `--capacity --load 3` measured
 * 0.07–0.8). Capacity lies in [1, 2) on every workload; 1 is the unit, so `--overload 1.5,2`
 * offers at least 1.5× and 2× of what the fleet serves here.
 */
const CAPACITY: Readonly<Record<WorkloadName, number>> = {
  "shared-prefix": 1,
  "multi-turn": 1,
  sharegpt: 1,
  bursty: 1
}
const overload = arg("overload", "").split(",").filter((x) => x !== "").map(Number)
if (overload.some((x) => !(x > 0))) throw new Error("--overload: positive capacity multiples, e.g. 1.5,2")
const measureCapacity = process.argv.includes("--capacity")
/** Runs repeated when the engines lagged too much (the host was busy). */
const lagRetries = Number(arg("lag-retries", "2"))
/** Longest wait for a quiet host before each run, seconds (0: start at once, e.g. on a shared machine). */
const hostWaitS = Number(arg("host-wait", "120"))
const seed = Number(arg("seed", "1"))
const out = arg("out", "bench/routing/results")
const KNOWN_POLICIES: ReadonlyArray<Policy> = [...POLICIES, "inference+kv", "inference/p2c", "inference/weighted_random"]
const kvBlocksArg = arg("kv-blocks", "")
const kvBlocks = kvBlocksArg === "" ? undefined : Number(kvBlocksArg)
const repeats = Number(arg("repeats", "1"))
/** Longest wait for an idle host before each run (s). */
const isWorkload = (s: string): s is WorkloadName => Object.hasOwn(WORKLOADS, s)
const isPolicy = (s: string): s is Policy => (KNOWN_POLICIES as ReadonlyArray<string>).includes(s)
const listArg = <A extends string>(name: string, fallback: ReadonlyArray<A>, valid: (s: string) => s is A): Array<A> => {
  const raw = arg(name, fallback.join(",")).split(",")
  const bad = raw.filter((s) => !valid(s))
  if (bad.length > 0) throw new Error(`--${name}: unknown ${bad.join(", ")}`)
  return raw.filter(valid)
}
const workloadNames = listArg("workloads", Object.keys(WORKLOADS).filter(isWorkload), isWorkload)
const policies = listArg("policies", POLICIES, isPolicy)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Busy and total CPU jiffies of the host (/proc/stat), to see whether something else is running. */
const cpuTimes = (): { busy: number; total: number } | undefined => {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
    const idle = fields[3]! + (fields[4] ?? 0)
    const total = fields.reduce((a, b) => a + b, 0)
    return { busy: total - idle, total }
  } catch {
    return undefined
  }
}

/**
 * Waits (up to `maxMs`) until the host is mostly idle between runs: the engines, the gateway and
 * the load generator share it, and another process's load shows up as engine lag. Returns the
 * busy share last seen.
 */
const waitForQuietHost = async (maxMs: number): Promise<number> => {
  const until = performance.now() + maxMs
  for (;;) {
    const a = cpuTimes()
    await sleep(1000)
    const b = cpuTimes()
    if (a === undefined || b === undefined) return 0
    const busy = (b.busy - a.busy) / Math.max(1, b.total - a.total)
    if (busy < 0.25 || performance.now() > until) return busy
    console.error(`    host busy (${Math.round(busy * 100)}% CPU used by other processes); waiting`)
  }
}

/**
 * The kernel's count of connections dropped because a listener's accept queue was full
 * (TcpExt ListenOverflows, host-wide): a gateway whose event loop falls behind stops accepting,
 * and its clients see resets. Undefined where /proc is not there.
 */
const listenOverflows = (): number | undefined => {
  try {
    const lines = readFileSync("/proc/net/netstat", "utf8").split("\n").filter((l) => l.startsWith("TcpExt:"))
    const keys = lines[0]!.split(/\s+/)
    const values = lines[1]!.split(/\s+/)
    const i = keys.indexOf("ListenOverflows")
    return i < 0 ? undefined : Number(values[i])
  } catch {
    return undefined
  }
}

/** A run whose engines lagged more than this share of the measured window is repeated (at most twice). */
const MAX_LAG_SHARE = 0.03

interface Stats {
  readonly prefixHitTokens: number
  readonly prefixQueryTokens: number
  readonly preemptions: number
  readonly lagSeconds: number
}

type Phases = ReturnType<typeof phasesOf>

const engineStats = async (urls: ReadonlyMap<string, string>): Promise<Array<Stats>> =>
  Promise.all([...urls.values()].map(async (u) => (await (await fetch(`${u}/admin/stats`)).json()) as Stats))

const resetEngines = async (urls: ReadonlyMap<string, string>) => {
  await Promise.all([...urls.values()].map((u) =>
    fetch(`${u}/admin/crash`, { method: "POST", body: JSON.stringify({ mode: "reset" }) })))
  await sleep(300)
}

const startGateway = async (policy: Policy, urls: ReadonlyMap<string, string>) => {
  const parsed = await Effect.runPromise(Load.parse(gatewayYaml(policy, urls, seed), "bench-routing.yaml", {}))
  const runtime = ManagedRuntime.make(Gateway.make({
    config: GatewayConfig.fromPlan({ ...parsed, server: { ...parsed.server, host: "127.0.0.1", port: 0 } }),
    launcher: EngineLauncher.none,
    requestLog: Layer.merge(RequestLog.stdout(false), Layer.succeed(References.MinimumLogLevel, "Error"))
  }))
  const server = await runtime.runPromise(Effect.map(HttpServer.HttpServer, (s) => s))
  return { url: HttpServer.formatAddress(server.address), close: () => runtime.dispose() }
}

/**
 * Replays `workload` against the gateway at `base`; resolves with every request's outcome.
 * `atWarmup` runs when the warm-up ends (engine counters are read then).
 */
const replay = (
  base: string,
  workload: Workload,
  ph: Phases,
  atWarmup: () => void
): Promise<{ outcomes: Array<Outcome>; startWall: number }> =>
  new Promise((resolve) => {
    const timeScale = ph.timeScale
    const outcomes: Array<Outcome> = []
    const abort = new AbortController()
    const startWall = performance.now() + 50
    const cutoff = startWall + ((ph.duration + ph.drain) * 1000) / timeScale
    setTimeout(atWarmup, 50 + (ph.warmup * 1000) / timeScale)
    const due: Array<Request> = [...workload.initial].sort((a, b) => a.at - b.at)
    let next = 0
    let inFlight = 0
    let finished = false
    const dueAt = (r: Request) => startWall + r.at / timeScale
    const done = () => {
      if (!finished && next >= due.length && inFlight === 0) {
        finished = true
        clearTimeout(killer)
        resolve({ outcomes, startWall })
      }
    }
    const send = (r: Request) => {
      inFlight++
      const sentAt = dueAt(r)
      void stream(base, r, sentAt, workload.collectText, abort.signal).then((o) => {
        outcomes.push(o)
        inFlight--
        if (o.status === "ok" && workload.next !== undefined) {
          const follow = workload.next(r, o.text, (performance.now() - startWall) * timeScale)
          if (follow !== undefined) insert(follow)
        }
        tick()
        done()
      })
    }
    const insert = (r: Request) => {
      let i = due.length
      while (i > next && due[i - 1]!.at > r.at) i--
      due.splice(i, 0, r)
    }
    let timer: ReturnType<typeof setTimeout> | undefined
    const tick = () => {
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      const now = performance.now()
      while (next < due.length && dueAt(due[next]!) <= now) send(due[next++]!)
      if (next < due.length) {
        const wait = dueAt(due[next]!) - performance.now()
        timer = setTimeout(tick, Math.max(0, wait - 0.5))
      }
      done()
    }
    const killer = setTimeout(() => {
      next = due.length
      abort.abort()
    }, cutoff - performance.now())
    setTimeout(tick, 50)
  })

const traceEngines = (urls: ReadonlyMap<string, string>) => {
  let last: Array<Stats> | undefined
  const loop = monitorEventLoopDelay({ resolution: 5 })
  loop.enable()
  return setInterval(async () => {
    const now = await engineStats(urls)
    const ids = [...urls.keys()]
    const line = now.map((s, i) => {
      const x = s as Stats & { running: number; waiting: number; kvUsage: number }
      const p = last?.[i]
      const hit = p === undefined ? 0 : (s.prefixHitTokens - p.prefixHitTokens) / Math.max(1, s.prefixQueryTokens - p.prefixQueryTokens)
      return `${ids[i]} r${x.running} w${x.waiting} kv${(x.kvUsage * 100).toFixed(0)} hit${(hit * 100).toFixed(0)}`
    }).join(" | ")
    const lag = Math.max(...now.map((s, i) => s.lagSeconds - (last?.[i]?.lagSeconds ?? s.lagSeconds)))
    last = now
    console.error(`    ${line} | engine lag +${lag.toFixed(2)} s, gateway loop p99 ${(loop.percentile(99) / 1e6).toFixed(0)} ms max ${(loop.max / 1e6).toFixed(0)} ms`)
    loop.reset()
  }, 3000)
}

const delta = (before: ReadonlyArray<Stats>, after: ReadonlyArray<Stats>): EngineDelta => {
  let hit = 0
  let query = 0
  let pre = 0
  let lag = 0
  after.forEach((a, i) => {
    const b = before[i]!
    hit += a.prefixHitTokens - b.prefixHitTokens
    query += a.prefixQueryTokens - b.prefixQueryTokens
    pre += a.preemptions - b.preemptions
    lag = Math.max(lag, a.lagSeconds - b.lagSeconds)
  })
  return { hitTokens: hit, queryTokens: query, preemptions: pre, lagSeconds: lag }
}

/** One (workload, policy) run on a freshly reset fleet behind a fresh gateway. */
const runOnce = async (policy: Policy, workload: Workload, ph: Phases, urls: ReadonlyMap<string, string>) => {
  await waitForQuietHost(hostWaitS * 1000)
  await resetEngines(urls)
  const gw = await startGateway(policy, urls)
  const overflowsBefore = listenOverflows()
  const tracer = trace ? traceEngines(urls) : undefined
  let before: Promise<Array<Stats>> | undefined
  const { outcomes, startWall } = await replay(gw.url, workload, ph, () => {
    before = engineStats(urls)
  })
  if (tracer !== undefined) clearInterval(tracer)
  const overflowsAfter = listenOverflows()
  if (overflowsBefore !== undefined && overflowsAfter !== undefined && overflowsAfter > overflowsBefore) {
    console.error(`  ${policy.padEnd(18)} host listen overflows during the run: ${overflowsAfter - overflowsBefore} (accept queues full)`)
  }
  await gw.close()
  const after = await engineStats(urls)
  const measured = outcomes.filter((o) => o.req.at >= ph.warmup * 1000)
  const row = summarize(
    workload.name,
    policy,
    measured,
    delta(await before!, after),
    ph.timeScale,
    startWall + (ph.warmup * 1000) / ph.timeScale,
    ((ph.duration - ph.warmup) * 1000) / ph.timeScale,
    outcomes
  )
  const windowStart = startWall + (ph.warmup * 1000) / ph.timeScale
  return { row, measured, outcomes, window: { start: windowStart, end: windowStart + ((ph.duration - ph.warmup) * 1000) / ph.timeScale } }
}

const printRow = (row: Row, measured: ReadonlyArray<Outcome>, ph: Phases) => {
  if (trace) {
    const per = new Map<string, Array<number>>()
    for (const o of measured) {
      if (o.ttftMs === undefined || o.backend === undefined) continue
      const list = per.get(o.backend) ?? []
      list.push(o.ttftMs * ph.timeScale)
      per.set(o.backend, list)
    }
    for (const [b, xs] of per) {
      xs.sort((x, y) => x - y)
      const q = (f: number) => xs[Math.min(xs.length - 1, Math.ceil(f * xs.length) - 1)]!.toFixed(0)
      console.error(`    ${b.padEnd(14)} n=${xs.length} ttft p50/p90/p99 ${q(0.5)}/${q(0.9)}/${q(0.99)} ms`)
    }
  }
  const spread = Object.fromEntries(Object.entries(row.spread).map(([k, v]) => [k, Math.round(v * 100)]))
  console.error(`  ${row.policy.padEnd(18)} ${row.requests} reqs, ttft p50/p90/p99 ${row.ttft.p50.toFixed(0)}/${row.ttft.p90.toFixed(0)}/${row.ttft.p99.toFixed(0)} ms, ` +
    `itl p50/p99 ${row.itl.p50.toFixed(0)}/${row.itl.p99.toFixed(0)} ms, ${row.outputTokensPerS.toFixed(0)} tok/s, ` +
    `goodput ${row.goodput.toFixed(2)} req/s, hit ${(row.hitRate * 100).toFixed(0)}%, failed ${row.failed}, ` +
    `${row.failed > 0 ? `(${Object.entries(row.failures).map(([k, v]) => `${k}: ${v}`).join(", ")}) ` : ""}` +
    `unfinished ${row.unfinished}, engine lag ${row.lagSeconds.toFixed(1)} s, spread % ${JSON.stringify(spread)}`)
}

const main = async () => {
  await Effect.runPromise(Tokenizer.load("cl100k"))
  const rows: Array<Row> = []
  const setups: Array<string> = []
  const began = performance.now()
  const capacities: Array<string> = []
  const levels: ReadonlyArray<number | undefined> = overload.length > 0 ? overload : [undefined]
  for (const name of workloadNames) {
    const ph = phasesOf(name)
    const fleet = await startFleet(ph.timeScale, seed, kvBlocks)
    try {
      for (const level of levels) {
        const runLoad = level === undefined ? load : level * CAPACITY[name]
        const workload = WORKLOADS[name]({ durationMs: ph.duration * 1000, seed, load: runLoad })
        const label = level === undefined ? workload.name : `${workload.name} @${level}×cap`
        const setup = `**${label}** (time scale ${ph.timeScale}×; ${ph.warmup} s warm-up, measured until ${ph.duration} s, ` +
          `${ph.drain} s drain${level === undefined ? "" : `; load ${runLoad.toFixed(2)}`}): ${workload.description}`
        setups.push(`- ${setup}`)
        console.error(`\n${setup}`)
        const runs = new Map<Policy, Array<Row>>()
        for (let rep = 0; rep < repeats; rep++) {
          for (const policy of policies) {
            for (let attempt = 0; ; attempt++) {
              const { row, measured, outcomes, window } = await runOnce(policy, { ...workload, name: label }, ph, fleet.urls)
              const maxLag = MAX_LAG_SHARE * (ph.duration - ph.warmup)
              if (row.lagSeconds > maxLag && attempt < lagRetries) {
                console.error(`  ${policy.padEnd(18)} engine lag ${row.lagSeconds.toFixed(1)} s > ${maxLag.toFixed(1)} s: host too busy, run repeated`)
                continue
              }
              runs.set(policy, [...(runs.get(policy) ?? []), row])
              printRow(row, measured, ph)
              if (measureCapacity) {
                let done = 0
                for (const o of outcomes) {
                  const end = o.tokenTimes.at(-1)
                  if (o.status === "ok" && end !== undefined && end >= window.start && end <= window.end) done++
                }
                const cap = runLoad * done / Math.max(1, measured.length)
                const line = `${name} (${policy}): ${done} completed / ${measured.length} arrived in the window at load ${runLoad} → capacity ≈ load ${cap.toFixed(2)}`
                capacities.push(`- ${line}`)
                console.error(`  ${line}`)
              }
              break
            }
          }
        }
        // With --repeats, the run with the median p90 TTFT stands for the policy.
        for (const policy of policies) {
          const sorted = [...runs.get(policy)!].sort((x, y) => x.ttft.p90 - y.ttft.p90)
          rows.push(sorted[Math.floor((sorted.length - 1) / 2)]!)
        }
      }
    } finally {
      await fleet.stop()
    }
  }
  const checks = verdicts(rows)
  const md = [
    `Routing quality — ${overload.length > 0 ? `overload ${overload.map((x) => `${x}×`).join(", ")} capacity` : `load ×${load}`}, seed ${seed}` +
    `${kvBlocks === undefined ? "" : `, ${kvBlocks}-block KV caches`}${repeats > 1 ? `, median p90 of ${repeats} runs` : ""}` +
    `, wall time ${((performance.now() - began) / 1000).toFixed(0)} s. ` +
    "Times are simulated (engine) time.",
    "",
    ...setups,
    "",
    table(rows),
    "",
    ...capacities,
    ...checks.map((c) => `- ${c.ok ? "✅" : "❌"} ${c.check}: ${c.detail}`)
  ].join("\n")
  mkdirSync(out, { recursive: true })
  writeFileSync(`${out}/latest.md`, md + "\n")
  writeFileSync(`${out}/latest.json`, JSON.stringify({ phases: PHASES, quick, load, overload, capacity: CAPACITY, seed, kvBlocks, repeats, rows, checks }, null, 2) + "\n")
  console.log("\n" + md)
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
