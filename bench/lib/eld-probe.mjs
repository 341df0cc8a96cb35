/**
 * `--eld`: a preload (`--import`) for a Node target (Sluice, the floor proxy) that records, in
 * the target's own process, what its event loop and garbage collector did, for the bench to
 * line up with its load windows afterwards (target 2: what makes the tail).
 *
 * Every 250 ms it appends one JSON line to `BENCH_ELD_OUT`: the wall time, the event-loop
 * delay histogram of those 250 ms (`monitorEventLoopDelay` at 1 ms resolution: each sample is
 * how long a 1 ms libuv timer actually took; percentiles in ms) and every GC of those 250 ms
 * (start as wall time, duration in ms, kind: 1 scavenge, 2 mark-compact, 4 incremental
 * marking, 8 weak callbacks). Nothing is read back by the target; the bench reads the file
 * after each window (`eldWindow` in ./eld.mjs). Cost to the target: a 1 ms timer in libuv
 * (no JavaScript), a GC observer, and a small synchronous append four times a second, so it
 * is off unless `--eld` is given.
 */
import { appendFileSync } from "node:fs"
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks"

const out = process.env.BENCH_ELD_OUT
if (out) {
  const h = monitorEventLoopDelay({ resolution: 1 })
  h.enable()
  let gc = []
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.push([Math.round(performance.timeOrigin + e.startTime), Number(e.duration.toFixed(3)), e.detail?.kind ?? 0])
    }
  }).observe({ entryTypes: ["gc"] })
  const flush = () => {
    const n = h.count
    const rec = {
      t: Date.now(),
      n,
      max: n > 0 ? h.max / 1e6 : 0,
      p: n > 0 ? [...h.percentiles].map(([p, ns]) => [p, Number((ns / 1e6).toFixed(3))]) : [],
      gc
    }
    gc = []
    h.reset()
    appendFileSync(out, JSON.stringify(rec) + "\n")
  }
  setInterval(flush, 250).unref()
}
