/**
 * Event-loop benchmark: `npm run bench:event-loop [-- options]` (bundles first, then runs this).
 *
 * Does a stream of hostile bodies stall the gateway for everyone else? Two phases, each
 * against a fresh production bundle (dist/main.mjs, bench/config/overhead.yaml) pinned to
 * its own CPU in front of the in-process mock upstream:
 *
 *   baseline  normal traffic only: non-streaming chat requests, open loop at a steady rate
 *   hostile   the same normal traffic, plus hostile bodies (bench/lib/hostile.mjs: long
 *             words, huge arrays, deep nesting, many messages, keys and values at the
 *             limits, 4 MiB bodies) at a steady rate, cycled
 *
 * Figures per phase: the gateway's own event-loop delay p50/p99/max, read from its
 * `sluice_event_loop_delay_seconds` summary (monitorEventLoopDelay; a 30–35 s window that
 * the measured window covers), and the normal traffic's latency from each request's due
 * time. The hostile phase is reported against the baseline of the same run (ratios), with
 * each hostile kind's statuses. Target: event-loop p99 ≤ 20 ms with hostile bodies.
 * Writes bench/results/event-loop-<timestamp>.json. Starts and stops only its own
 * processes (also on failure and Ctrl-C).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import http from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { Pool, requestBytes } from "./lib/client.mjs"
import { hostileBodies } from "./lib/hostile.mjs"
import { fixedRate, sleep } from "./lib/load.mjs"
import { MODEL, startMock } from "./lib/mock.mjs"
import { installCleanup, pinningPlan, pinSelf, stopAll } from "./lib/procs.mjs"
import { ratio, round } from "./lib/stats.mjs"
import { repoDir, startTarget, writeSluiceConfig } from "./lib/targets.mjs"

const benchDir = fileURLToPath(new URL(".", import.meta.url))

const USAGE = `usage: npm run bench:event-loop -- [options]

  --duration S      measured seconds per phase (default 40; at least 35, the metric's window)
  --warmup S        seconds of traffic before measuring (default 10)
  --rate N          normal requests per second (default 100)
  --hostile-rate N  hostile bodies per second in the hostile phase (default 4)
  --quick           --duration 35 --warmup 5
  --out FILE        results file (default bench/results/event-loop-<timestamp>.json)
  --no-pin          do not pin processes to CPUs
`

const parseArgs = (argv) => {
  const o = { durationS: 40, warmupS: 10, rate: 100, hostileRate: 4, out: undefined, pin: true }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => Number(argv[++i])
    switch (a) {
      case "--duration": o.durationS = next(); break
      case "--warmup": o.warmupS = next(); break
      case "--rate": o.rate = next(); break
      case "--hostile-rate": o.hostileRate = next(); break
      case "--quick": o.durationS = 35; o.warmupS = 5; break
      case "--out": o.out = argv[++i]; break
      case "--no-pin": o.pin = false; break
      case "-h": case "--help": process.stdout.write(USAGE); process.exit(0)
      default: throw new Error(`unknown option ${a}\n${USAGE}`)
    }
  }
  if (o.durationS < 35) throw new Error("--duration must be at least 35 s (the event-loop metric's window)")
  return o
}

const HEADERS = ["content-type: application/json", "accept: application/json", "user-agent: sluice-bench/1"]

const normalBytes = (target) =>
  Array.from({ length: 16 }, (_, u) =>
    requestBytes("POST", "/v1/chat/completions", `${target.host}:${target.port}`, JSON.stringify({
      model: MODEL,
      messages: [
        { role: "system", content: "You are a concise assistant." },
        { role: "user", content: "Write one short sentence about rivers and the sea." }
      ],
      max_tokens: 32,
      user: `bench-user-${u}`
    }), HEADERS))

const get = (target, path) =>
  new Promise((resolve, reject) => {
    http.get({ host: target.host, port: target.port, path }, (res) => {
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (c) => (text += c))
      res.on("end", () => resolve({ status: res.statusCode, text }))
    }).on("error", reject)
  })

/** The gateway's own view: p50/p99/max of its event-loop delay, ms. */
const eventLoopDelay = async (target) => {
  const { text } = await get(target, "/metrics")
  const value = (q) => {
    const m = new RegExp(`^sluice_event_loop_delay_seconds\\{quantile="${q}"\\} (\\S+)$`, "m").exec(text)
    if (m === null) throw new Error("the gateway exposes no sluice_event_loop_delay_seconds (an older build?)")
    return Number(m[1]) * 1000
  }
  return { p50: value("0.5"), p99: value("0.99"), max: value("1") }
}

/** Sends the hostile bodies, cycled, at `rate`/s until `stop()`; counts statuses per kind. */
const hostileStream = (target, bodies, rate) => {
  const pool = new Pool(target.host, target.port, 16)
  const kinds = bodies.map((b) => ({ name: b.name, expect: b.expect, sent: 0, statuses: {}, maxMs: 0, bytes: b.body.length }))
  const built = bodies.map((b) => requestBytes("POST", b.path, `${target.host}:${target.port}`, b.body, HEADERS))
  let i = 0
  let stopped = false
  let inFlight = 0
  const tick = () => {
    if (stopped) return
    const k = i++ % built.length
    const kind = kinds[k]
    kind.sent++
    inFlight++
    const t0 = performance.now()
    const done = (status) => {
      inFlight--
      kind.statuses[status] = (kind.statuses[status] ?? 0) + 1
      kind.maxMs = Math.max(kind.maxMs, performance.now() - t0)
    }
    pool.request(built[k], { onEnd: (_t, status) => done(String(status)), onError: (e) => done(String(e?.code ?? e?.message ?? e)) })
    timer = setTimeout(tick, 1000 / rate)
  }
  let timer = setTimeout(tick, 0)
  return {
    kinds,
    stop: async () => {
      stopped = true
      clearTimeout(timer)
      const until = performance.now() + 30_000
      while (inFlight > 0 && performance.now() < until) await sleep(20)
      pool.close()
      return kinds
    }
  }
}

const phase = async (name, ctx, o, bodies) => {
  const target = await startTarget("sluice", { ...ctx, label: name })
  try {
    // The tokenizer tables load on the first request (a one-time cost, before measuring).
    await fixedRate({ host: target.host, port: target.port, pick: ((b) => () => b[0])(normalBytes(target)), rate: 20, warmupMs: 0, durationMs: 1000, pid: target.pid, plan: ctx.plan })
    const normal = normalBytes(target)
    let n = 0
    const hostile = bodies === undefined ? undefined : hostileStream(target, bodies, o.hostileRate)
    const load = await fixedRate({
      host: target.host,
      port: target.port,
      pick: () => normal[n++ % normal.length],
      rate: o.rate,
      warmupMs: o.warmupS * 1000,
      durationMs: o.durationS * 1000,
      pid: target.pid,
      plan: ctx.plan,
      maxConnections: 256
    })
    const delay = await eventLoopDelay(target)
    const kinds = hostile === undefined ? undefined : await hostile.stop()
    const alive = target.alive()
    const ready = (await get(target, "/health/ready")).status
    return { name, delay, load, kinds, alive, ready }
  } finally {
    await target.stop()
  }
}

const ms = (x) => (Number.isFinite(x) ? (Math.abs(x) < 10 ? x.toFixed(2) : x.toFixed(1)) : String(x))

const main = async () => {
  const o = parseArgs(process.argv.slice(2))
  installCleanup()
  const plan = pinningPlan(!o.pin)
  if (plan.pinned && !pinSelf(plan.harness)) plan.pinned = false
  const mock = await startMock()
  const workDir = mkdtempSync(join(tmpdir(), "sluice-event-loop-"))
  const ctx = { mock, workDir, configPath: writeSluiceConfig(workDir, mock.url), cpus: plan.pinned ? plan.target : undefined, plan, stamp: Date.now() }
  const bodies = hostileBodies(join(repoDir, "README.md"))
  process.stdout.write(
    `event-loop bench: ${o.rate} normal req/s, ${o.hostileRate} hostile/s, ${o.warmupS} s warm-up + ${o.durationS} s measured per phase; ` +
      `${plan.pinned ? `gateway on CPU ${plan.target}, harness on CPU ${plan.harness}` : `unpinned (${plan.reason})`}\n`
  )
  try {
    const baseline = await phase("baseline", ctx, o, undefined)
    const hostile = await phase("hostile", ctx, o, bodies)
    const rows = [
      ["event-loop delay p50 (ms)", baseline.delay.p50, hostile.delay.p50],
      ["event-loop delay p99 (ms)", baseline.delay.p99, hostile.delay.p99],
      ["event-loop delay max (ms)", baseline.delay.max, hostile.delay.max],
      ["normal latency p50 (ms)", baseline.load.latency.p50, hostile.load.latency.p50],
      ["normal latency p99 (ms)", baseline.load.latency.p99, hostile.load.latency.p99],
      ["normal completed req/s", baseline.load.completedRate, hostile.load.completedRate],
      ["normal errors", baseline.load.errors, hostile.load.errors],
      ["gateway CPU (share of a core)", baseline.load.cpu?.targetCpuShare, hostile.load.cpu?.targetCpuShare],
      ["other work on its CPU (cores)", baseline.load.cpu?.foreignOnTargetCpu, hostile.load.cpu?.foreignOnTargetCpu],
      ["gateway waited for a CPU (ms)", baseline.load.cpu?.targetWaitMs, hostile.load.cpu?.targetWaitMs]
    ]
    const lines = [
      "",
      `${"".padEnd(28)}${"baseline".padStart(10)}${"hostile".padStart(10)}${"ratio".padStart(8)}`,
      ...rows.map(([label, a, b]) => `${label.padEnd(28)}${ms(a).padStart(10)}${ms(b).padStart(10)}${ms(ratio(b, a)).padStart(8)}`),
      "",
      "hostile bodies (statuses; slowest answer):",
      ...hostile.kinds.map((k) =>
        `  ${k.name.padEnd(44)} ${(k.bytes / 1048576).toFixed(2).padStart(5)} MiB  ${JSON.stringify(k.statuses).padEnd(22)} ${ms(k.maxMs)} ms`
      ),
      "",
      `gateway alive and ready after the hostile phase: ${hostile.alive && hostile.ready === 200 ? "yes" : `NO (alive ${hostile.alive}, ready ${hostile.ready})`}`,
      `target: event-loop p99 <= 20 ms with hostile bodies: ${hostile.delay.p99 <= 20 ? "met" : "NOT met"} (${ms(hostile.delay.p99)} ms)`,
      "(other work on the gateway's CPU, or waits for it, disturb both phases: compare them only when those rows are near 0)",
      ""
    ]
    process.stdout.write(lines.join("\n"))
    const out = o.out ?? join(benchDir, "results", `event-loop-${new Date().toISOString().replace(/[:.]/g, "-")}.json`)
    mkdirSync(join(out, ".."), { recursive: true })
    writeFileSync(out, JSON.stringify({ options: o, plan, baseline, hostile, rows: rows.map(([l, a, b]) => ({ figure: l, baseline: round(a), hostile: round(b) })) }, null, 2))
    process.stdout.write(`results: ${out}\n`)
  } finally {
    await stopAll()
    await mock.close()
    rmSync(workDir, { recursive: true, force: true })
  }
}

main().catch(async (e) => {
  process.stderr.write(`${e?.stack ?? e}\n`)
  await stopAll()
  process.exit(1)
})
