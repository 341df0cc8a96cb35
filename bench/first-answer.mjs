/**
 * Start-up of the embedded default (`npm start`): the time from spawning `node dist/main.mjs`
 * with the default config (config/sluice.yaml: four simulated engines) to the first answered
 * chat completion (HTTP 200 with a body), the CPU time the process tree used until then (all
 * threads; a figure that other load on a shared machine disturbs far less than wall time), and
 * the idle RSS of the process tree a second later. Medians of repeats; each run is a fresh
 * process on a free port.
 *
 *   npm run bundle && node bench/first-answer.mjs [--repeats 7] [--workers 2] [--base /path/to/other/checkout]
 *
 * With `--base`, the other checkout's `dist/main.mjs` (bundled there) runs too, interleaved run by run
 * with this one, and both medians are printed: a before/after in one session.
 *
 * Run it on the commit before and after a change, in the same session (the machine is
 * shared; compare medians measured minutes apart, not days apart). It needs no Postgres,
 * Redis or mock: only the bundle.
 */
import { spawn, execFileSync } from "node:child_process"
import { createServer } from "node:net"
import { performance } from "node:perf_hooks"
import { readFileSync } from "node:fs"

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const repeats = Number(arg("repeats", "7"))
const workers = arg("workers", undefined)
const base = arg("base", undefined)

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer()
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })

const body = JSON.stringify({ model: "llama-3.1-8b", messages: [{ role: "user", content: "Hi" }], max_tokens: 4 })

/** The process and its descendants (Linux). */
const tree = (pid) => {
  const pids = [pid]
  for (let i = 0; i < pids.length; i++) {
    try {
      const kids = execFileSync("pgrep", ["-P", String(pids[i])], { encoding: "utf8" }).trim().split("\n").filter(Boolean)
      pids.push(...kids.map(Number))
    } catch {
      // no children
    }
  }
  return pids
}

/** RSS of a process tree, bytes. */
const treeRss = (pid) => {
  let sum = 0
  for (const p of tree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, "utf8"))
      if (m) sum += Number(m[1]) * 1024
    } catch {
      // gone
    }
  }
  return sum
}

/** User + system CPU of a process tree (every thread), ms. */
const treeCpuMs = (pid) => {
  let ticks = 0
  for (const p of tree(pid)) {
    try {
      const fields = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1].split(" ")
      ticks += Number(fields[11]) + Number(fields[12])
    } catch {
      // gone
    }
  }
  return ticks * 10
}

const once = async (cwd) => {
  const port = await freePort()
  const args = ["dist/main.mjs", "--config", "config/sluice.yaml", "--port", String(port), ...(workers ? ["--workers", workers] : [])]
  const t0 = performance.now()
  const child = spawn(process.execPath, args, { cwd, stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, SLUICE_LOG_LEVEL: "warning" } })
  let firstAnswerMs
  let cpuMs
  while (performance.now() - t0 < 30_000) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body
      })
      const text = await res.text()
      if (res.status === 200 && text.length > 0) {
        firstAnswerMs = performance.now() - t0
        cpuMs = treeCpuMs(child.pid)
        break
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 5))
  }
  await new Promise((r) => setTimeout(r, 1000))
  const rss = treeRss(child.pid)
  child.kill("SIGTERM")
  await new Promise((r) => child.once("exit", r))
  return { firstAnswerMs, cpuMs, rss }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

const targets = [["this", process.cwd()], ...(base ? [["base", base]] : [])]
const runs = Object.fromEntries(targets.map(([name]) => [name, []]))
for (let i = 0; i < repeats; i++) {
  for (const [name, cwd] of targets) {
    const r = await once(cwd)
    runs[name].push(r)
    console.log(`${name} run ${i + 1}: first answer ${r.firstAnswerMs?.toFixed(0) ?? "none"} ms, CPU ${r.cpuMs ?? "?"} ms, idle RSS ${(r.rss / 2 ** 20).toFixed(0)} MiB`)
  }
}
for (const [name] of targets) {
  const ok = runs[name].filter((r) => r.firstAnswerMs !== undefined)
  console.log(
    `${name}: median of ${ok.length}/${runs[name].length}${workers ? ` (--workers ${workers})` : ""}: ` +
      `first answer ${median(ok.map((r) => r.firstAnswerMs)).toFixed(0)} ms, CPU until then ${median(ok.map((r) => r.cpuMs))} ms, idle RSS ${(median(runs[name].map((r) => r.rss)) / 2 ** 20).toFixed(0)} MiB`
  )
}
