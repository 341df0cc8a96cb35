/**
 * All cores: how Sluice scales from one worker to two (`--workers N`, node:cluster).
 *
 *   npm run bench:workers                 # 3 repeats × (1 worker, 2 workers), ~1 min
 *   npm run bench:workers -- --repeats 5
 *
 * The same in-process mock upstream and raw-socket load generator as `npm run bench`, the
 * same bench config (every feature on), non-streaming requests at saturation (64
 * connections). Nothing is pinned here: the point is to let the workers spread over the
 * cores. On a 2-core machine the load generator and the mock share those cores with the
 * workers, so two workers cannot reach 2×: the report gives throughput, the CPU the whole
 * Sluice process tree used (primary + workers), and requests per CPU-second, medians over
 * repeats, and says how much of the machine the harness itself took.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { requestBytes } from "./lib/client.mjs"
import { HEADERS } from "./lib/groups.mjs"
import { saturate } from "./lib/load.mjs"
import { MODEL, startMock } from "./lib/mock.mjs"
import { spawn } from "node:child_process"
import { closeSync, openSync } from "node:fs"
import { cpuTicks, clockTicks, installCleanup, stop } from "./lib/procs.mjs"
import { probe } from "./lib/client.mjs"
import { bundlePath, freePort, HOST, repoDir, writeSluiceConfig } from "./lib/targets.mjs"

const args = process.argv.slice(2)
const repeats = Number(args[args.indexOf("--repeats") + 1] || 3) || 3
const durationMs = 5000
const concurrency = 64

if (Number(process.versions.node.split(".")[0]) < 24) {
  console.error(`bench: node v${process.versions.node}: run through npm so the project's pinned Node 24 is used`)
  process.exit(2)
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

const workDir = mkdtempSync(join(tmpdir(), "sluice-workers-"))
installCleanup(() => rmSync(workDir, { recursive: true, force: true }))
const mock = await startMock(HOST)
const configPath = writeSluiceConfig(workDir, mock.url)

const messages = [
  { role: "system", content: "You are a concise assistant." },
  { role: "user", content: "Write one short sentence about rivers and the sea." }
]

const run = async (workers) => {
  const port = await freePort()
  // Spawned directly (not through procs.spawnNode): its orphan guard compares each
  // process's parent with the harness, and cluster workers' parent is the primary.
  const env = { ...process.env, HOST, PORT: String(port), SLUICE_LOG_LEVEL: "warn" }
  for (const k of ["SLUICE_CONFIG", "SLUICE_UPSTREAM", "LOG_LEVEL", "SLUICE_WORKERS"]) delete env[k]
  const out = openSync(join(workDir, `sluice-w${workers}-${port}.log`), "a")
  const child = spawn(process.execPath, [bundlePath, "--config", configPath, "--workers", String(workers)], {
    cwd: repoDir,
    env,
    stdio: ["ignore", out, out]
  })
  closeSync(out)
  process.once("exit", () => child.kill("SIGKILL"))
  const t0 = performance.now()
  while ((await probe(HOST, port, "/v1/models", 500)) !== 200) {
    if (performance.now() - t0 > 30_000) throw new Error(`sluice --workers ${workers} did not start`)
    await new Promise((r) => setTimeout(r, 20))
  }
  // Every worker must be up (cluster workers start one after another).
  await new Promise((r) => setTimeout(r, 1500))
  const variants = Array.from({ length: 16 }, (_, u) =>
    requestBytes("POST", "/v1/chat/completions", `${HOST}:${port}`,
      JSON.stringify({ model: MODEL, messages, max_tokens: 32, temperature: 0.2, user: `bench-user-${u}` }),
      HEADERS))
  let i = 0
  const pick = () => variants[i++ % variants.length]
  await saturate({ host: HOST, port, pick, concurrency, warmupMs: 0, durationMs: 1000, pid: child.pid, plan: undefined })
  const cpu0 = cpuTicks(child.pid)
  const harness0 = process.cpuUsage()
  const w0 = performance.now()
  const r = await saturate({ host: HOST, port, pick, concurrency, warmupMs: 0, durationMs, pid: child.pid, plan: undefined })
  const windowS = (performance.now() - w0) / 1000
  const cpuS = (cpuTicks(child.pid) - cpu0) / clockTicks()
  const h = process.cpuUsage(harness0)
  await stop(child, 8000)
  const rate = r.completed / (durationMs / 1000)
  // Errors are not completions: a run answered mostly with errors (401 without the bench's key,
  // 429 from a budget) measures the refusal path, not the gateway's work.
  if (r.errors > 0.01 * (r.completed + r.errors)) {
    console.error(`bench: sluice --workers ${workers} answered ${r.errors} of ${r.completed + r.errors} requests with errors (see ${workDir})`)
  }
  return { workers, rate, cores: cpuS / windowS, perCpuSecond: r.completed / cpuS, harnessCores: (h.user + h.system) / 1e6 / windowS, errors: r.errors }
}

const results = { 1: [], 2: [] }
for (let k = 0; k < repeats; k++) {
  for (const w of [1, 2]) {
    const r = await run(w)
    results[w].push(r)
    console.log(`  workers=${w} #${k + 1}: ${r.rate.toFixed(0)} req/s, Sluice used ${r.cores.toFixed(2)} cores, ` +
      `${r.perCpuSecond.toFixed(0)} req per CPU-second, harness ${r.harnessCores.toFixed(2)} cores, errors ${r.errors}`)
  }
}
const m = (w, key) => median(results[w].map((r) => r[key]))
console.log("")
console.log("workers  req/s (median)  Sluice cores  req per CPU-s  harness cores")
for (const w of [1, 2]) {
  console.log(`${String(w).padStart(7)}  ${m(w, "rate").toFixed(0).padStart(14)}  ${m(w, "cores").toFixed(2).padStart(12)}  ${m(w, "perCpuSecond").toFixed(0).padStart(13)}  ${m(w, "harnessCores").toFixed(2).padStart(13)}`)
}
console.log(`scaling 1 → 2 workers: throughput ${(m(2, "rate") / m(1, "rate")).toFixed(2)}×, ` +
  `efficiency per CPU-second ${(m(2, "perCpuSecond") / m(1, "perCpuSecond")).toFixed(2)}×`)
await mock.close?.()
process.exit(0)
