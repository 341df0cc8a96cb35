/**
 * Reads what `eld-probe.mjs` recorded in a target during one load window: the event-loop
 * delay (beyond the probe's 1 ms timer) and the GC pauses whose start falls in the window.
 */
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

export const eldProbe = fileURLToPath(new URL("./eld-probe.mjs", import.meta.url))

/** The probe's records (250 ms each) that end in [fromMs, toMs] (wall clock), merged. */
export const eldWindow = (file, fromMs, toMs) => {
  if (file === undefined || !existsSync(file)) return undefined
  const delays = []
  const gcs = []
  let max = 0
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (line === "") continue
    const r = JSON.parse(line)
    for (const g of r.gc) if (g[0] >= fromMs && g[0] <= toMs) gcs.push(g)
    // a record covers the 250 ms before its time stamp
    if (r.t - 250 < fromMs || r.t > toMs + 250) continue
    // the histogram's samples, rebuilt from its percentile table (as src/observability/EventLoopDelay.ts)
    let recorded = 0
    for (const [percentile, ms] of r.p) {
      const upTo = Math.round((percentile / 100) * r.n)
      for (; recorded < upTo; recorded++) delays.push(Math.max(0, ms - 1))
    }
    max = Math.max(max, r.max - 1)
  }
  delays.sort((a, b) => a - b)
  const q = (p) => (delays.length === 0 ? 0 : delays[Math.min(delays.length - 1, Math.ceil(p * delays.length) - 1)])
  const pauses = gcs.map((g) => g[1]).sort((a, b) => a - b)
  const sum = (xs) => xs.reduce((a, b) => a + b, 0)
  return {
    samples: delays.length,
    delay: { p50: q(0.5), p99: q(0.99), p999: q(0.999), max },
    // stalls: probe ticks that came more than 5 / 20 ms late (each is one stall of that length),
    // and the window's time spent in stalls of more than 5 ms
    late5: delays.filter((d) => d > 5).length,
    late20: delays.filter((d) => d > 20).length,
    stalledMs: delays.filter((d) => d > 5).reduce((a, b) => a + b, 0),
    gc: {
      count: gcs.length,
      scavenges: gcs.filter((g) => g[2] === 1).length,
      markCompacts: gcs.filter((g) => g[2] === 2).length,
      totalMs: sum(pauses),
      maxMs: pauses.at(-1) ?? 0,
      p50Ms: pauses.length === 0 ? 0 : pauses[Math.floor(pauses.length / 2)]
    }
  }
}

/** One log line's worth of an `eldWindow` result. */
export const eldLine = (e) =>
  e === undefined ? "" : `; loop delay p50 ${e.delay.p50.toFixed(2)} p99 ${e.delay.p99.toFixed(2)} max ${e.delay.max.toFixed(1)} ms` +
    `, ${e.late5} stalls > 5 ms (${e.stalledMs.toFixed(0)} ms of the window), ${e.late20} > 20 ms; GC ${e.gc.count} pauses (${e.gc.scavenges} scavenges, ${e.gc.markCompacts} mark-compacts)` +
    ` total ${e.gc.totalMs.toFixed(1)} max ${e.gc.maxMs.toFixed(1)} ms`
