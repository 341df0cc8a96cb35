/**
 * Streaming load shapes, driven from the harness process through client.mjs:
 *
 *   streams      open loop of streaming requests; per stream: time to first token, the gaps
 *                between content events, and how many content events each socket read
 *                carried (more than one = coalesced).
 *   holdStreams  ramps long-lived streams to given levels at a fixed opening rate.
 *   abortStreams opens N streams, then destroys every client socket at once.
 *
 * Content events are recognized by the mock's `"content":"t<i>"` payload. Never starts
 * processes and never judges results.
 */
import { performance } from "node:perf_hooks"
import { Connection, Pool } from "./client.mjs"
import { pace, sleep, waitFor } from "./load.mjs"
import { cpuWindow } from "./procs.mjs"
import { summary } from "./stats.mjs"

const CONTENT_RE = /"content":"t(\d+)"/

/** Parses SSE events out of decoded body bytes as they arrive; calls onEvent(text, t, readId). */
const sseReader = (onEvent) => {
  let carry = ""
  return (buf, t, readId) => {
    const text = carry + buf.toString("latin1")
    let start = 0
    let end
    while ((end = text.indexOf("\n\n", start)) >= 0) {
      onEvent(text.slice(start, end), t, readId)
      start = end + 2
    }
    carry = text.slice(start)
  }
}

/** One streaming request's observer: first token, gaps, events per read, usage leak, [DONE]. */
const streamObserver = (due) => {
  const s = {
    due,
    firstAt: undefined,
    lastAt: undefined,
    contents: 0,
    gaps: [],
    coalescedReads: 0,
    maxPerRead: 0,
    usageSeen: false,
    done: false,
    lastRead: -1,
    inRead: 0
  }
  s.onEvent = (ev, t, readId) => {
    if (ev.includes("[DONE]")) {
      s.done = true
      return
    }
    if (CONTENT_RE.test(ev)) {
      if (s.firstAt === undefined) s.firstAt = t
      else s.gaps.push(t - s.lastAt)
      s.lastAt = t
      s.contents++
      if (readId === s.lastRead) {
        s.inRead++
        if (s.inRead === 2) s.coalescedReads++
      } else {
        s.lastRead = readId
        s.inRead = 1
      }
      if (s.inRead > s.maxPerRead) s.maxPerRead = s.inRead
      return
    }
    if (ev.includes('"usage"') && ev.includes('"choices":[]')) s.usageSeen = true
  }
  return s
}

/** Open-loop streaming load (the mock must be in `finite` mode). */
export const streams = async ({ host, port, makeBytes, rate, warmupMs, durationMs, chunks, pid, plan }) => {
  const pool = new Pool(host, port, 4000)
  await pool.prewarm(Math.min(200, Math.ceil(rate / 2)))
  const warm = Math.round((rate * warmupMs) / 1000)
  const measured = Math.round((rate * durationMs) / 1000)
  const observed = []
  let finished = 0
  let errors = 0
  let cpu
  const w = cpuWindow(pid, plan)
  const fire = (i, due) => {
    const k = i - warm
    const s = streamObserver(due)
    if (k >= 0) observed.push(s)
    const read = sseReader(s.onEvent)
    pool.request(makeBytes(i), {
      wantsBody: true,
      onData: read,
      onEnd: (t, status) => {
        if (k < 0) return
        finished++
        if (status !== 200) s.error = `status ${status}`
      },
      onError: (e) => {
        if (k < 0) return
        finished++
        errors++
        s.error = String(e?.message ?? e)
      }
    })
  }
  await pace(rate, warm + measured, fire, [
    { offsetMs: warmupMs, fn: () => w.begin() },
    { offsetMs: warmupMs + durationMs, fn: () => (cpu = w.end()) }
  ])
  await waitFor(() => finished >= measured, 10_000)
  pool.close()
  const ttft = []
  const gaps = []
  let coalescedReads = 0
  let contentEvents = 0
  let maxPerRead = 0
  let usageLeaks = 0
  let incomplete = 0
  for (const s of observed) {
    if (s.firstAt !== undefined) ttft.push(s.firstAt - s.due)
    for (const g of s.gaps) gaps.push(g)
    coalescedReads += s.coalescedReads
    contentEvents += s.contents
    maxPerRead = Math.max(maxPerRead, s.maxPerRead)
    if (s.usageSeen) usageLeaks++
    if (s.error !== undefined || !s.done || s.contents !== chunks) incomplete++
  }
  return {
    rate,
    streams: measured,
    ttft: summary(ttft),
    gap: summary(gaps),
    contentEvents,
    coalescedReads,
    maxEventsPerRead: maxPerRead,
    usageLeaks,
    incomplete,
    errors,
    cpu
  }
}

/**
 * Ramps held streams (mock in `hold` mode) to each level at `openRate`/s; at each level,
 * once every stream has its first event, waits `settleMs` and calls `atLevel(level, open)`.
 * Then destroys every client socket and waits for the mock to see them all close.
 * `rampMs`: per level, its first send → every stream so far with a first event (or failed,
 * or `firstTimeoutMs` after its last send); their sum is the ramp without the pauses.
 */
export const holdStreams = async ({ host, port, makeBytes, levels, openRate, settleMs, mock, atLevel, firstTimeoutMs = 30_000 }) => {
  const conns = []
  let firsts = 0
  let alive = 0
  let failed = 0
  let opened = 0
  const results = []
  /** Why streams ended early: "status 503", "connection closed", ... → count. */
  const reasons = {}
  for (const level of levels) {
    const n = level - opened
    const rampStart = performance.now()
    if (n > 0) {
      await pace(openRate, n, (i) => {
        const k = opened + i
        let got = false
        const conn = new Connection(host, port, () => {}, () => {})
        conns.push(conn)
        const read = sseReader((ev) => {
          if (!got && CONTENT_RE.test(ev)) {
            got = true
            firsts++
            alive++
          }
        })
        const gone = (why) => {
          failed++
          if (got) alive--
          const key = `${got ? "after" : "before"} first chunk: ${why}`
          reasons[key] = (reasons[key] ?? 0) + 1
        }
        conn.send(makeBytes(k), {
          wantsBody: true,
          onData: read,
          onEnd: (_t, status) => gone(`ended, status ${status}`),
          onError: (e) => gone(String(e?.code ?? e?.message ?? e))
        })
      })
      opened = level
    }
    const allFirst = await waitFor(() => firsts + failed >= opened, firstTimeoutMs, 20)
    const rampMs = performance.now() - rampStart
    await sleep(settleMs)
    const r = { level, open: alive, failed, reasons: { ...reasons }, allFirst, rampMs, upstreamOpen: mock.openStreams }
    r.measured = await atLevel(level, r)
    results.push(r)
    if (failed > 0 && failed >= opened / 2) break
  }
  const before = performance.now()
  for (const c of conns) c.destroy()
  const drained = await waitFor(() => mock.openStreams === 0, 15_000, 10)
  return { levels: results, closeMs: performance.now() - before, drained, leftOpen: mock.openStreams }
}

/**
 * Opens `n` endless streams (mock in `endless` mode with `track` on) at `openRate`/s (or over
 * `spreadMs`, whichever is longer), waits for every first event, destroys all client sockets
 * in one synchronous loop, and returns per stream the time from its destroy to the mock's
 * first sign that its upstream request is gone, and how many upstream streams the mock still
 * counts running `runningAfterMs` after the loop (its `vllm:num_requests_running`).
 */
export const abortStreams = async ({ host, port, makeBytes, n, mock, tag, spreadMs = 200, openRate = Infinity, waitMs = 5000, runningAfterMs = 500, pid, plan }) => {
  const conns = []
  let firsts = 0
  let errors = 0
  /** Why streams ended before the abort: "ended, status 503", "ECONNRESET" → count. */
  const reasons = {}
  const before = mock.openStreams
  // opened over `spreadMs` so the streams' chunk timers are not in phase: the abort then
  // lands at every point of a chunk interval, as a crashing client's would
  const rate = Math.min((n * 1000) / spreadMs, openRate)
  await pace(rate, n, (k) => {
    const id = `${tag}-${k}`
    let got = false
    const conn = new Connection(host, port, () => {}, () => {})
    const read = sseReader((ev) => {
      if (!got && CONTENT_RE.test(ev)) {
        got = true
        firsts++
      }
    })
    const failed = (why) => {
      errors++
      reasons[why] = (reasons[why] ?? 0) + 1
    }
    conn.send(makeBytes(id), {
      wantsBody: true,
      onData: read,
      onEnd: (_t, status) => failed(`ended, status ${status}`),
      onError: (e) => failed(String(e?.code ?? e?.message ?? e))
    })
    conns.push({ id, conn })
  })
  const ready = await waitFor(() => firsts + errors >= n, 15_000 + n * 2)
  await sleep(50)
  const runningBefore = mock.openStreams - before
  const destroyedAt = new Map()
  // the target's CPU from the first destroy until every upstream stream is closed (and the
  // span, so a --profile run can be cut to the abort itself)
  const w = cpuWindow(pid, plan)
  w.begin()
  const t0 = performance.now()
  for (const { id, conn } of conns) {
    destroyedAt.set(id, performance.now())
    conn.destroy()
  }
  const loopMs = performance.now() - t0
  let runningAfter
  let openAfter
  const sampled = sleep(Math.max(0, t0 + runningAfterMs - performance.now())).then(() => {
    runningAfter = mock.openStreams - before
    openAfter = 0
    for (const id of destroyedAt.keys()) {
      const rec = mock.streams.get(id)
      if (rec !== undefined && rec.closeAt === undefined) openAfter++
    }
  })
  // a stream whose request never reached the upstream (the gateway had not sent it yet when
  // its client left, and rightly never did) has no record: it is counted apart, not waited for
  await waitFor(() => [...destroyedAt.keys()].every((id) => {
    const rec = mock.streams.get(id)
    return rec === undefined ? !ready : rec.closeAt !== undefined
  }), waitMs, n > 1000 ? 20 : 5)
  const cpu = w.end()
  await sampled
  const latencies = []
  let unclosed = 0
  let completed = 0
  let neverSent = 0
  for (const [id, at] of destroyedAt) {
    const rec = mock.streams.get(id)
    if (rec === undefined) {
      neverSent++
      continue
    }
    if (rec.closeAt === undefined) {
      unclosed++
      latencies.push(Infinity)
    } else {
      if (rec.completed) completed++
      latencies.push(rec.closeAt - at)
    }
  }
  return { n, ready, firsts, errors, reasons, runningBefore, runningAfter, openAfter, runningAfterMs, destroyLoopMs: loopMs, cpu, neverSent, unclosed, completedUpstream: completed, latency: summary(latencies) }
}
