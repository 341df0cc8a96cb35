/**
 * Where a stream's time to first token goes inside the gateway, phase by phase: reads the
 * per-request timestamps that the instrumented build writes (`bench/ttft/phases.patch`: each
 * phase boundary stamped with CLOCK_MONOTONIC in ms, dumped to /tmp/tt-<pid>.json when the
 * process exits) and prints the wall time of each phase (p50, p90). With a `--cpu-prof`
 * profile of the same process, it also prints where the CPU went inside the gateway's own
 * parts of the path: from the request's start to the upstream dispatch ("pre") and from the
 * first upstream byte to the first client write ("post").
 *
 *   git apply bench/ttft/phases.patch && npm run bench -- --only streaming --targets sluice --repeats 1
 *   node bench/ttft/phases.mjs /tmp/tt-<pid>.json [profile.cpuprofile] [--skip 100]
 *   git apply -R bench/ttft/phases.patch
 *
 * (`--profile` with SLUICE_BENCH_PROFILE_INTERVAL=50 samples every 50 µs; the profiler's own
 * cost then inflates every phase, so read the profile for shares, the unprofiled run for times.)
 */
import { readFileSync } from "node:fs"
import { format, summarize } from "../lib/profile.mjs"
import { percentile } from "../lib/stats.mjs"

const args = process.argv.slice(2)
const skipAt = args.indexOf("--skip")
const skip = skipAt >= 0 ? Number(args.splice(skipAt, 2)[1]) : 100
const [marksFile, profileFile] = args
if (marksFile === undefined) {
  console.error("usage: node bench/ttft/phases.mjs /tmp/tt-<pid>.json [profile.cpuprofile] [--skip N]")
  process.exit(2)
}
// the first requests carry the JIT's warm-up
const all = JSON.parse(readFileSync(marksFile, "utf8")).slice(skip)
const order = [
  "t0", "plan", "auth", "d_read", "d_parse", "d_schema", "decode", "guard", "a_count", "a_req", "a_reserve", "admit",
  "route", "callMake", "dispatch", "headers", "data", "committed", "emit"
]
const names = {
  plan: "accept: facts, finalizer, plan",
  auth: "authenticate",
  d_read: "decode: read the body",
  d_parse: "decode: scan + JSON.parse",
  d_schema: "decode: schema",
  decode: "decode: model lookup",
  guard: "request policies",
  a_count: "admit: count the prompt",
  a_req: "admit: build the request",
  a_reserve: "admit: reserve + journal",
  admit: "admit: rest",
  route: "route",
  callMake: "dispatch: breaker, hold, body",
  dispatch: "dispatch: send",
  headers: "engine: until its headers",
  data: "engine: until its first bytes",
  committed: "first frame read, committed",
  emit: "response started, first frame out"
}
const done = all.filter((m) => order.every((k) => typeof m[k] === "number"))
console.log(`${done.length} requests with every stamp (of ${all.length} after the first ${skip})`)
console.log(`${"phase".padEnd(36)}${"p50 µs".padStart(8)}${"p90 µs".padStart(8)}`)
for (let i = 1; i < order.length; i++) {
  const d = done.map((m) => (m[order[i]] - m[order[i - 1]]) * 1000)
  console.log(`${names[order[i]].padEnd(36)}${percentile(d, 50).toFixed(0).padStart(8)}${percentile(d, 90).toFixed(0).padStart(8)}`)
}
const own = done.map((m) => ((m.dispatch - m.t0) + (m.emit - m.data)) * 1000)
const whole = done.map((m) => (m.emit - m.t0) * 1000)
console.log(`${"gateway's own (start → send, first bytes → out)".padEnd(36)}${percentile(own, 50).toFixed(0).padStart(8)}${percentile(own, 90).toFixed(0).padStart(8)}`)
console.log(`${"start → first frame out".padEnd(36)}${percentile(whole, 50).toFixed(0).padStart(8)}${percentile(whole, 90).toFixed(0).padStart(8)}`)

if (profileFile !== undefined) {
  for (const [label, from, to] of [["pre (start → send)", "t0", "dispatch"], ["post (first bytes → out)", "data", "emit"]]) {
    const windows = done.map((m) => [m[from] * 1000, m[to] * 1000])
    console.log(`\n== ${label}, ${windows.length} windows`)
    console.log(format(summarize(profileFile, 30, windows), 30))
  }
}
