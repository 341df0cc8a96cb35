/**
 * Request load shapes, driven from the harness process through client.mjs:
 *
 *   fixedRate   open loop at a constant rate; request i is due at t0 + i/rate and its
 *               latency counts from that due time, not from when it was written (no
 *               coordinated omission). A request that finds every connection busy waits
 *               in the pool with its clock running.
 *   saturate    closed loop, `concurrency` connections each sending back to back: the
 *               most the target completes per second.
 *
 * Streaming shapes are in streams.mjs and share the pacer below. The pacer sleeps on
 * timers between sends (or also spins, see setPaceMode). The target's CPU, the machine's
 * other work and the threads' waits for a CPU are read from /proc at the window edges
 * (procs.cpuWindow). This module never starts processes and never judges results.
 */
import { performance } from "node:perf_hooks"
import { Pool } from "./client.mjs"
import { cpuWindow } from "./procs.mjs"
import { summary } from "./stats.mjs"

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * Pacing: "timer" sleeps between sends (a send is up to ~1 ms late, and the harness stays a
 * sleeper the scheduler favours on a shared machine); "spin" also spins on setImmediate
 * when the next send is < 2 ms away (sends on time, but the harness never sleeps, so any
 * other runnable task on its CPU makes it wait). Latency counts from the due time either way.
 */
let paceMode = "timer"
export const setPaceMode = (mode) => {
  paceMode = mode
}

/** Runs `fire(i, dueAt)` for i in [0, total) at `rate`/s; calls `marks[k].fn()` when time passes `marks[k].at`. */
export const pace = (rate, total, fire, marks = []) =>
  new Promise((resolve) => {
    const period = 1000 / rate
    const t0 = performance.now() + 5
    const pending = marks.map((m) => ({ ...m, at: t0 + m.offsetMs, done: false }))
    let i = 0
    const tick = () => {
      const now = performance.now()
      for (const m of pending) {
        if (!m.done && now >= m.at) {
          m.done = true
          m.fn(now)
        }
      }
      while (i < total && t0 + i * period <= now) {
        fire(i, t0 + i * period)
        i++
      }
      const nextMark = pending.filter((m) => !m.done).reduce((a, m) => Math.min(a, m.at), Infinity)
      if (i >= total && nextMark === Infinity) return resolve(t0)
      const next = Math.min(i < total ? t0 + i * period : Infinity, nextMark)
      const wait = next - performance.now()
      if (paceMode === "spin") {
        if (wait > 2) setTimeout(tick, wait - 1)
        else setImmediate(tick)
      } else setTimeout(tick, Math.max(0, wait))
    }
    setTimeout(tick, 5)
  })

export const waitFor = async (cond, timeoutMs, stepMs = 5) => {
  const until = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > until) return false
    await sleep(stepMs)
  }
  return true
}

/**
 * Open-loop unary load; `pick()` gives each request's bytes. Returns latency summary (ms from due time), send-lag summary, the
 * achieved send and completion rates, errors, and the target's CPU ticks over the window.
 */
export const fixedRate = async ({ host, port, pick, rate, warmupMs, durationMs, pid, plan, maxConnections = 512, prewarm = 32 }) => {
  const pool = new Pool(host, port, maxConnections)
  await pool.prewarm(prewarm)
  const warm = Math.round((rate * warmupMs) / 1000)
  const measured = Math.round((rate * durationMs) / 1000)
  const total = warm + measured
  const lat = new Float64Array(measured).fill(NaN)
  const sendLag = new Float64Array(measured)
  let errors = 0
  let statusErrors = 0
  let finished = 0
  /** Non-200 statuses and socket errors of measured requests: "503" or "ECONNRESET" → count. */
  const failures = {}
  const fail = (key) => (failures[key] = (failures[key] ?? 0) + 1)
  let windowStart = 0
  let windowEnd = 0
  let sentInWindow = 0
  let doneInWindow = 0
  let cpu
  const w = cpuWindow(pid, plan)
  const fire = (i, due) => {
    const k = i - warm
    const now = performance.now()
    if (k >= 0) {
      sendLag[k] = now - due
      if (now <= windowEnd || windowEnd === 0) sentInWindow++
    }
    pool.request(pick(), {
      onEnd: (t, status) => {
        if (windowStart > 0 && t >= windowStart && (windowEnd === 0 || t <= windowEnd)) doneInWindow++
        if (k < 0) return
        finished++
        if (status !== 200) {
          statusErrors++
          fail(String(status))
        }
        lat[k] = t - due
      },
      onError: (e) => {
        if (k < 0) return
        finished++
        errors++
        fail(String(e?.code ?? e?.message ?? e))
      }
    })
  }
  const t0 = await pace(rate, total, fire, [
    { offsetMs: warmupMs, fn: (t) => ((windowStart = t), w.begin()) },
    { offsetMs: warmupMs + durationMs, fn: (t) => ((windowEnd = t), (cpu = w.end())) }
  ])
  await waitFor(() => finished >= measured, 5000)
  const end = performance.now()
  let unfinished = 0
  for (let k = 0; k < measured; k++) {
    if (Number.isNaN(lat[k])) {
      // never answered (error or still pending): count it as slow as it got, conservatively
      lat[k] = end - (t0 + (warm + k) * (1000 / rate))
      unfinished++
    }
  }
  pool.close()
  const windowMs = windowEnd - windowStart
  return {
    rate,
    measured,
    latency: summary(lat),
    sendLag: summary(sendLag),
    offeredRate: rate,
    sentRate: (sentInWindow / windowMs) * 1000,
    // responses received inside the window, whatever their due time: a target that keeps
    // up answers at the offered rate, an overloaded one at its capacity
    completedRate: (doneInWindow / windowMs) * 1000,
    errors: errors + statusErrors,
    failures,
    unfinished,
    connections: pool.opened,
    poolWaits: pool.waited,
    cpu,
    windowMs
  }
}

/** Closed loop: `concurrency` connections back to back (`pick()` gives each request's bytes); completions and CPU over the window. */
export const saturate = async ({ host, port, pick, concurrency, warmupMs, durationMs, pid, plan }) => {
  const pool = new Pool(host, port, concurrency)
  await pool.prewarm(concurrency)
  const startAt = performance.now()
  const windowStart = startAt + warmupMs
  const windowEnd = windowStart + durationMs
  let completed = 0
  let errors = 0
  const failures = {}
  const fail = (key) => (failures[key] = (failures[key] ?? 0) + 1)
  let running = concurrency
  const lat = []
  const w = cpuWindow(pid, plan)
  let begun = false
  let cpu
  await new Promise((resolve) => {
    const watchdog = setTimeout(() => pool.close(), warmupMs + durationMs + 15_000)
    const loop = () => {
      const sent = performance.now()
      if (!begun && sent >= windowStart) {
        begun = true
        w.begin()
      }
      if (sent >= windowEnd) {
        if (cpu === undefined) cpu = w.end()
        if (--running === 0) {
          clearTimeout(watchdog)
          resolve()
        }
        return
      }
      pool.request(pick(), {
        onEnd: (t, status) => {
          if (status !== 200) {
            errors++
            fail(String(status))
          }
          if (sent >= windowStart && t < windowEnd) {
            completed++
            lat.push(t - sent)
          }
          loop()
        },
        onError: (e) => {
          errors++
          fail(String(e?.code ?? e?.message ?? e))
          setTimeout(loop, 1)
        }
      })
    }
    for (let c = 0; c < concurrency; c++) loop()
  })
  pool.close()
  return {
    concurrency,
    rps: (completed / durationMs) * 1000,
    completed,
    errors,
    failures,
    latency: summary(lat),
    cpu,
    windowMs: durationMs
  }
}
