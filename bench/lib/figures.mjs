/**
 * Turns raw group results into figures: one row per measured quantity, a value per target
 * (the median over repeats), ratios against the floor, against direct and, when they ran,
 * against the reference proxies (nginx, Portkey) from the same run, and, where the issue sets one, the goal and a pass/fail verdict for `sluice`.
 * "Added" figures are computed per repeat (target − direct of that repeat) and then the
 * median is taken, so slow drift on a shared machine cancels. Pure: no I/O, no clock.
 */
import { median, ratio } from "./stats.mjs"

const MiB = 2 ** 20

/** The goals from the issue, by figure id. `on`: which number is judged. */
export const GOALS = {
  "latency.1000.added_p99": { op: "<=", limit: 1, on: "sluice", text: "≤ 1 ms" },
  "saturation.rps_per_cpu_s": { op: ">=", limit: 0.6, on: "vsFloor", text: "≥ 0.6× floor" },
  "stream.added_ttft_p50": { op: "<=", limit: 1, on: "sluice", text: "≤ 1 ms" },
  "stream.coalesced_reads": { op: "<=", limit: 0, on: "sluice", text: "none" },
  "stream.usage_leaks": { op: "<=", limit: 0, on: "sluice", text: "none (check)" },
  "stream.incomplete": { op: "<=", limit: 0, on: "sluice", text: "none (check)" },
  "rss.streams_9000_mib": { op: "<=", limit: 250, on: "sluice", text: "≤ 250 MiB" },
  "rss.idle_mib": { op: "<=", limit: 80, on: "sluice", text: "≤ 80 MiB" },
  "startup.ms": { op: "<=", limit: 500, on: "sluice", text: "≤ 500 ms" },
  "startup.first_completion_ms": { op: "<=", limit: 300, on: "sluice", text: "≤ 300 ms" },
  "ladder.max_rate": { op: ">=", limit: 3000, on: "sluice", text: "≥ 3000 req/s" },
  "rss.recovered_ratio": { op: "<=", limit: 1.3, on: "sluice", text: "≤ 1.3× idle" },
  "abort.100.p99_ms": { op: "<=", limit: 10, on: "sluice", text: "≤ 10 ms" },
  "abort.100.unclosed": { op: "<=", limit: 0, on: "sluice", text: "none (check)" },
  "abort.5000.added_p99_ms": { op: "<=", limit: 100, on: "sluice", text: "≤ 100 ms" },
  "abort.5000.running_500ms": { op: "<=", limit: 0, on: "sluice", text: "none" },
  "abort.5000.unclosed": { op: "<=", limit: 0, on: "sluice", text: "none (check)" },
  "abort.9000.added_p99_ms": { op: "<=", limit: 100, on: "sluice", text: "≤ 100 ms" },
  "abort.9000.running_500ms": { op: "<=", limit: 0, on: "sluice", text: "none" },
  "abort.9000.unclosed": { op: "<=", limit: 0, on: "sluice", text: "none (check)" }
}

const judge = (fig) => {
  const goal = GOALS[fig.id]
  if (goal === undefined) return fig
  const x = goal.on === "vsFloor" ? fig.vsFloor : fig.values[goal.on]
  fig.goal = goal
  if (x === undefined || x === null || Number.isNaN(x)) fig.verdict = "n/a"
  else fig.verdict = (goal.op === "<=" ? x <= goal.limit : x >= goal.limit) ? "pass" : "fail"
  return fig
}

const finish = (fig, { ratios = true } = {}) => {
  const v = fig.values
  if (ratios) {
    fig.vsFloor = ratio(v.sluice, v.floor)
    fig.vsDirect = ratio(v.sluice, v.direct)
    // only when the reference ran: a results file without them has no such keys
    if (v.nginx !== undefined) fig.vsNginx = ratio(v.sluice, v.nginx)
    if (v.portkey !== undefined) fig.vsPortkey = ratio(v.sluice, v.portkey)
  }
  return judge(fig)
}

/** A figure from per-target arrays of per-repeat numbers. */
const fromRepeats = (id, group, label, unit, perRepeat, opts = {}) => {
  const values = {}
  for (const [t, xs] of Object.entries(perRepeat)) values[t] = opts.sum ? xs.reduce((a, b) => a + b, 0) : median(xs)
  return finish({ id, group, label, unit, values, perRepeat, notes: opts.notes ?? [], flags: opts.flags ?? {} }, opts)
}

const added = (runs, get) => {
  const out = {}
  const direct = runs.direct
  for (const [t, rs] of Object.entries(runs)) {
    if (t === "direct" || direct === undefined) continue
    out[t] = rs.map((r, i) => (direct[i] === undefined ? NaN : get(r) - get(direct[i])))
  }
  return out
}

const each = (runs, get, skip = []) =>
  Object.fromEntries(Object.entries(runs).filter(([t]) => !skip.includes(t)).map(([t, rs]) => [t, rs.map(get)]))

/** "503: 12, ECONNRESET: 3" over runs. */
const failureList = (rs) => {
  const all = {}
  for (const r of rs) for (const [k, v] of Object.entries(r.failures ?? {})) all[k] = (all[k] ?? 0) + v
  return Object.entries(all).map(([k, v]) => `${k}: ${v}`).join(", ")
}

const overloaded = (r) => r.completedRate < 0.95 * r.offeredRate || r.unfinished > 0

/** "~" for a target with a run kept although other work disturbed it (or "!" when given). */
const disturbedFlags = (runs, flags = {}) => {
  for (const [t, rs] of Object.entries(runs)) if (flags[t] === undefined && rs.some((r) => r.disturbed || r.generatorBehind)) flags[t] = "~"
  return flags
}

export const build = (results, meta) => {
  const figs = []
  const hz = meta.clockTicks

  if (results.startup) {
    const runs = results.startup.runs
    figs.push(fromRepeats("startup.ms", "startup", "start-up to first 200 (ms)", "ms", each(runs, (r) => r.startupMs)))
    figs.push(fromRepeats("startup.first_completion_ms", "startup", "start-up to first answered completion (ms)", "ms", each(runs, (r) => r.firstAnswerMs)))
    figs.push(fromRepeats("startup.first_completion_own_ms", "startup", "  of which the first completion itself (ms)", "ms", each(runs, (r) => r.firstAnswerMs - r.startupMs)))
    figs.push(fromRepeats("startup.first_completion_cpu_ms", "startup", "  CPU used until the first completion (ms)", "ms", each(runs, (r) => r.firstAnswerCpuMs)))
    const idleWait = `${((meta.idleWaitMs ?? 2000) / 1000).toFixed(0)} s`
    figs.push(fromRepeats("rss.idle_mib", "startup", `idle RSS, ${idleWait} after first completion (MiB)`, "MiB", each(runs, (r) => r.idleRssBytes / MiB)))
  }

  if (results.latency) {
    const runs = results.latency.runs
    for (const rate of meta.rates) {
      const at = Object.fromEntries(Object.entries(runs).map(([t, byRate]) => [t, byRate[rate] ?? []]).filter(([, rs]) => rs.length > 0))
      if (Object.keys(at).length === 0) continue
      const notes = []
      const flags = {}
      for (const [t, rs] of Object.entries(at)) {
        const bad = rs.filter(overloaded).length
        if (bad > 0) {
          flags[t] = "!"
          notes.push(`${t}: ${bad}/${rs.length} runs could not keep up with ${rate}/s (answered ${rs.map((r) => r.completedRate.toFixed(0)).join(", ")}/s; a queue builds, so latency grows with run length)`)
        }
        const disturbed = rs.filter((r) => r.disturbed).length
        if (disturbed > 0) {
          notes.push(`${t}: ${disturbed}/${rs.length} run(s) kept although other work on the machine disturbed them (other work on target/harness CPU ` +
            `${rs.map((r) => `${(r.cpu?.foreignOnTargetCpu ?? 0).toFixed(2)}/${(r.cpu?.foreignOnHarnessCpu ?? 0).toFixed(2)}`).join(", ")} cores; ` +
            `hypervisor steal ${rs.map((r) => (r.cpu?.stealCores ?? 0).toFixed(2)).join(", ")} cores; ` +
            `harness waited for its CPU ${rs.map((r) => (r.cpu?.harnessWaitMs ?? 0).toFixed(0)).join(", ")} ms in ${(rs[0].windowMs / 1000).toFixed(0)} s windows)`)
        }
        const errors = rs.reduce((a, r) => a + r.errors, 0)
        if (errors > 0) {
          notes.push(`${t}: ${errors} request(s) failed (${failureList(rs)}) — latency of a failed request counts until it failed`)
        }
        const behind = rs.filter((r) => r.generatorBehind).length
        if (behind > 0) notes.push(`${t}: generator fell behind in ${behind} run(s) even after repeats`)
      }
      disturbedFlags(at, flags)
      figs.push(fromRepeats(`latency.${rate}.p50`, "latency", `non-stream ${rate}/s: latency p50 (ms)`, "ms", each(at, (r) => r.latency.p50), { notes, flags }))
      figs.push(fromRepeats(`latency.${rate}.p99`, "latency", `non-stream ${rate}/s: latency p99 (ms)`, "ms", each(at, (r) => r.latency.p99), { flags }))
      figs.push(fromRepeats(`latency.${rate}.p999`, "latency", `non-stream ${rate}/s: latency p99.9 (ms)`, "ms", each(at, (r) => r.latency.p999), { flags }))
      figs.push(fromRepeats(`latency.${rate}.added_p50`, "latency", `non-stream ${rate}/s: added p50 (ms)`, "ms", added(at, (r) => r.latency.p50), { flags }))
      figs.push(fromRepeats(`latency.${rate}.added_p99`, "latency", `non-stream ${rate}/s: added p99 (ms)`, "ms", added(at, (r) => r.latency.p99), { flags }))
      figs.push(fromRepeats(`cpu.${rate}.us_per_req`, "latency", `non-stream ${rate}/s: CPU per request (µs)`, "µs",
        each(at, (r) => (r.cpu ? ((r.cpu.targetCpuTicks / hz) * 1e6) / r.measured : NaN), ["direct"])))
    }
    const info = runs["sluice-info"]?.[meta.logRate]
    const warn = runs.sluice?.[meta.logRate]
    if (info?.length && warn?.length) {
      const cpu = (r) => ((r.cpu.targetCpuTicks / hz) * 1e6) / r.measured
      const d = (get) => ({ "sluice-info": info.map((r, i) => (warn[i] ? get(r) - get(warn[i]) : NaN)) })
      figs.push(fromRepeats("log.cpu_us_per_req", "log", `info log line: extra CPU per request (µs)`, "µs", d(cpu), { ratios: false }))
      figs.push(fromRepeats("log.p99_ms", "log", `info log line: extra p99 at ${meta.logRate}/s (ms)`, "ms", d((r) => r.latency.p99), { ratios: false,
        notes: [`sluice-info wrote ${runs["sluice-info"].logLines ?? "?"} log lines during the latency group`] }))
    }
  }

  if (results.saturation) {
    const runs = results.saturation.runs
    const notes = ["direct = the harness's own ceiling (generator + mock on one core): a proxy figure near it is generator-bound"]
    for (const [t, rs] of Object.entries(runs)) {
      if (t === "direct") continue
      const share = median(rs.map((r) => r.cpu?.targetCpuShare))
      const harness = median(rs.map((r) => r.cpu?.harnessCpuShare))
      const foreign = median(rs.map((r) => r.cpu?.foreignOnTargetCpu ?? r.cpu?.foreignCores))
      const hwait = median(rs.map((r) => (r.cpu ? r.cpu.harnessWaitMs / r.cpu.windowMs : NaN)))
      const steal = median(rs.map((r) => r.cpu?.stealOnTargetCpu ?? r.cpu?.stealCores))
      notes.push(`${t}: used ${share.toFixed(2)} of its core (other work took ${foreign.toFixed(2)}, the hypervisor stole ${steal.toFixed(2)}); harness used ${harness.toFixed(2)} of its core and waited for it ${(100 * hwait).toFixed(0)}% of the time` +
        (share < 0.85 && foreign < 0.05 && hwait > 0.2 ? " — the generator was starved, so the target was not saturated: its figures understate it" : "") +
        (share < 0.85 && foreign < 0.05 && steal > 0.1 ? " — steal: the virtual CPU itself was slowed, every figure of this run is low" : "") +
        (share < 0.85 && foreign < 0.05 && hwait <= 0.2 && steal <= 0.1 ? " — not CPU-bound: the per-CPU-second figure overstates it" : ""))
    }
    for (const [t, rs] of Object.entries(runs)) {
      const errors = rs.reduce((a, r) => a + r.errors, 0)
      if (errors > 0) notes.push(`${t}: ${errors} request(s) failed during saturation (${failureList(rs)})`)
    }
    notes.push("the goal is judged on req per CPU-second (robust to other work on a shared machine); both agree when the target has its core to itself")
    const flags = disturbedFlags(runs)
    figs.push(fromRepeats("saturation.rps", "saturation", `saturation, 1 core, ${meta.satConcurrency} conns (req/s)`, "req/s", each(runs, (r) => r.rps), { notes, flags }))
    figs.push(fromRepeats("saturation.rps_per_cpu_s", "saturation", "saturation per CPU-second of the target (req)", "req",
      each(runs, (r) => (r.cpu?.targetCpuTicks ? r.completed / (r.cpu.targetCpuTicks / hz) : NaN), ["direct"]), { flags }))
    figs.push(fromRepeats("saturation.cpu_us_per_req", "saturation", "saturation: CPU per request (µs)", "µs",
      each(runs, (r) => (r.cpu?.targetCpuTicks ? ((r.cpu.targetCpuTicks / hz) * 1e6) / r.completed : NaN), ["direct"])))
    figs.push(fromRepeats("saturation.p99_ms", "saturation", "saturation: latency p99 (ms)", "ms", each(runs, (r) => r.latency.p99), { flags }))
    if (runs["sluice-info"] && runs.sluice) {
      const f = fromRepeats("log.saturation_ratio", "log", "info log line: saturation vs warn (×)", "×",
        { "sluice-info": runs["sluice-info"].map((r, i) => ratio(r.rps, runs.sluice[i]?.rps)) }, { ratios: false })
      figs.push(f)
    }
  }

  if (results.ladder) {
    const runs = results.ladder.runs
    const notes = []
    const flags = {}
    for (const [t, rs] of Object.entries(runs)) {
      notes.push(`${t}: ${rs.map((r) => `${r.maxRate > 0 ? r.maxRate : "none"} (next step: ${r.stoppedBy})`).join("; ")}`)
      if (rs.some((r) => r.stoppedBy.startsWith("generator") || r.stoppedBy.startsWith("top"))) flags[t] = "^"
    }
    disturbedFlags(runs, flags)
    figs.push(fromRepeats("ladder.max_rate", "ladder", `highest sustained rate, 1 core (p99 ≤ ${meta.ladderP99Ms} ms, ≥ 95% answered) (req/s)`, "req/s", each(runs, (r) => r.maxRate), { notes, flags }))
    figs.push(fromRepeats("ladder.cpu_us_at_max", "ladder", "  CPU per request at that rate (µs)", "µs",
      each(runs, (r) => r.cpuUsAtMax, ["direct"])))
  }

  if (results.streaming) {
    const runs = results.streaming.runs
    const interval = meta.chunkIntervalMs
    const flags = disturbedFlags(runs)
    figs.push(fromRepeats("stream.ttft_p50", "streaming", `stream ${meta.streamRate}/s: TTFT p50 (ms)`, "ms", each(runs, (r) => r.ttft.p50), { flags }))
    figs.push(fromRepeats("stream.added_ttft_p50", "streaming", "stream: added TTFT p50 (ms)", "ms", added(runs, (r) => r.ttft.p50), { flags }))
    figs.push(fromRepeats("stream.added_ttft_p99", "streaming", "stream: added TTFT p99 (ms)", "ms", added(runs, (r) => r.ttft.p99), { flags }))
    figs.push(fromRepeats("stream.gap_p99", "streaming", `stream: chunk gap p99 (ms; sent every ${interval})`, "ms", each(runs, (r) => r.gap.p99), { flags }))
    figs.push(fromRepeats("stream.added_gap_p99", "streaming", "stream: added chunk gap p99 (ms)", "ms", added(runs, (r) => r.gap.p99), { flags }))
    figs.push(fromRepeats("stream.coalesced_reads", "streaming", "stream: reads carrying >1 chunk (all repeats)", "reads", each(runs, (r) => r.coalescedReads), { sum: true, flags,
      notes: Object.entries(runs).map(([t, rs]) => `${t}: ${rs.reduce((a, r) => a + r.coalescedReads, 0)} of ${rs.reduce((a, r) => a + r.contentEvents, 0)} content chunks arrived in a read with another (max ${Math.max(...rs.map((r) => r.maxEventsPerRead))} per read)`) }))
    figs.push(fromRepeats("stream.usage_leaks", "streaming", "stream: usage chunk shown when not asked", "streams", each(runs, (r) => r.usageLeaks), { sum: true, ratios: false }))
    figs.push(fromRepeats("stream.incomplete", "streaming", "stream: incomplete or failed streams", "streams", each(runs, (r) => r.incomplete), { sum: true, ratios: false }))
    figs.push(fromRepeats("stream.cpu_us_per_stream", "streaming", `stream: CPU per stream (µs, ${meta.chunks} chunks)`, "µs",
      each(runs, (r) => (r.cpu ? ((r.cpu.targetCpuTicks / hz) * 1e6) / r.streams : NaN), ["direct"])))
  }

  if (results.abort) {
    // runs by level (older results files: one level, `meta.aborts`, runs by target)
    const byLevel = results.abort.levels ? results.abort.runs : { [meta.aborts]: results.abort.runs }
    for (const [level, runs] of Object.entries(byLevel)) {
      const notes = []
      for (const [t, rs] of Object.entries(runs)) {
        const failed = rs.reduce((a, r) => a + r.errors, 0)
        if (failed > 0) notes.push(`${t}: ${failed} stream(s) failed or ended before the abort`)
      }
      const interval = Object.values(runs)[0]?.[0]?.intervalMs
      figs.push(fromRepeats(`abort.${level}.p50_ms`, "abort", `abort ×${level}${interval ? ` (chunk every ${interval} ms)` : ""}: client destroy → upstream close p50 (ms)`, "ms", each(runs, (r) => r.latency.p50), { notes }))
      figs.push(fromRepeats(`abort.${level}.p99_ms`, "abort", `abort ×${level}: → upstream close p99 (ms)`, "ms", each(runs, (r) => r.latency.p99)))
      figs.push(fromRepeats(`abort.${level}.added_p99_ms`, "abort", `abort ×${level}: → upstream close p99, added to direct's (ms)`, "ms", added(runs, (r) => r.latency.p99)))
      figs.push(fromRepeats(`abort.${level}.max_ms`, "abort", `abort ×${level}: → upstream close max (ms)`, "ms", each(runs, (r) => r.latency.max)))
      figs.push(fromRepeats(`abort.${level}.running_500ms`, "abort", `abort ×${level}: upstream streams still running 0.5 s after`, "streams", each(runs, (r) => r.runningAfter ?? NaN), { ratios: false }))
      // the mock runs in the harness, so it records no close until the harness's destroy loop ends:
      // a long loop (the harness starved of its CPU) lifts every target's figures alike
      figs.push(fromRepeats(`abort.${level}.destroy_loop_ms`, "abort", `abort ×${level}: the harness's destroy loop (ms; a floor under p50)`, "ms", each(runs, (r) => r.destroyLoopMs ?? NaN), { ratios: false }))
      figs.push(fromRepeats(`abort.${level}.unclosed_500ms`, "abort", `abort ×${level}: upstream connections not yet closed 0.5 s after`, "streams", each(runs, (r) => r.openAfter ?? NaN), { ratios: false }))
      figs.push(fromRepeats(`abort.${level}.unclosed`, "abort", `abort ×${level}: upstream never closed (${Number(level) > 1000 ? 15 : 5} s)`, "streams", each(runs, (r) => r.unclosed), { sum: true, ratios: false }))
    }
  }

  if (results["open-streams"]) {
    const runs = results["open-streams"].runs
    for (const level of meta.levels) {
      const notes = []
      const per = {}
      for (const [t, rs] of Object.entries(runs)) {
        per[t] = rs.map((r) => {
          const l = r.levels.find((x) => x.level === level)
          if (l === undefined) return NaN
          if (l.open < level) {
            notes.push(`${t}: ${l.open} of ${level} streams open (${l.failed} failed: ${Object.entries(l.reasons ?? {}).map(([k, v]) => `${v}× ${k}`).join(", ")})`)
          }
          return l.measured.rssBytes / MiB
        })
      }
      figs.push(fromRepeats(`rss.streams_${level}_mib`, "open-streams", `RSS with ${level} open streams (MiB)`, "MiB", per, { notes }))
    }
    const top = meta.levels[meta.levels.length - 1]
    figs.push(fromRepeats("rss.per_stream_kib", "open-streams", `RSS per open stream, base → ${top} (KiB)`, "KiB", each(runs, (r) => {
      const l = r.levels.find((x) => x.level === top)
      return l && l.open > 0 ? (l.measured.rssBytes - r.baseRssBytes) / 1024 / l.open : NaN
    })))
    figs.push(fromRepeats("rss.after_close_mib", "open-streams", "RSS 2 s after all streams closed (MiB)", "MiB", each(runs, (r) => r.afterCloseRssBytes / MiB)))
    if (Object.values(runs).some((rs) => rs.some((r) => r.recoveredRssBytes !== undefined))) {
      const after = `${((meta.recoverMs ?? 60_000) / 1000).toFixed(0)} s`
      figs.push(fromRepeats("rss.recovered_mib", "open-streams", `RSS ${after} after all streams closed (MiB)`, "MiB", each(runs, (r) => r.recoveredRssBytes / MiB)))
      figs.push(fromRepeats("rss.recovered_ratio", "open-streams", `  ÷ RSS before the streams (idle)`, "×", each(runs, (r) => r.recoveredRssBytes / r.baseRssBytes)))
    }
    // the issue's "9,000 streams opened at 500/s: all in 18 s" (the pauses at each level excluded)
    const topOf = (r) => r.levels.find((x) => x.level === top)
    const short = (l) => l !== undefined && (!l.allFirst || l.failed > 0)
    const rampFlags = {}
    const rampNotes = []
    for (const [t, rs] of Object.entries(runs)) {
      for (const l of rs.map(topOf).filter(short)) {
        rampFlags[t] = "!"
        rampNotes.push(`${t}: ${l.open} of ${top} had their first chunk, ${l.failed} failed` +
          (l.allFirst ? "" : "; the rest had neither 30 s after the last was sent (the figure then includes that wait)"))
      }
    }
    figs.push(fromRepeats("open_streams.ramp_s", "open-streams", `${top} streams opened at ${meta.durations?.openRate ?? "?"}/s: all with a first chunk after (s)`, "s",
      each(runs, (r) => (topOf(r) === undefined ? NaN : r.levels.reduce((a, x) => a + (x.rampMs ?? NaN), 0) / 1000)), { flags: rampFlags, notes: rampNotes }))
    figs.push(fromRepeats("open_streams.close_ms", "open-streams", "all client sockets destroyed → upstream all closed (ms)", "ms", each(runs, (r) => r.closeMs)))
  }
  return figs
}
