/**
 * Processes the harness starts, and what it reads about them from /proc.
 *
 * Owns: pinning (`taskset`, when present), the registry of every child started, and
 * cleanup on normal exit, failure, Ctrl-C and SIGTERM (SIGTERM, then SIGKILL after a
 * grace period). Children also get `--import bench/lib/orphan-guard.mjs`, which exits
 * them if the harness itself dies without cleaning up (e.g. SIGKILL).
 * Reads: CPU time (utime+stime, /proc/<pid>/stat), VmRSS (/proc/<pid>/status), open fds,
 * summed over the process tree so a multi-worker target needs no special case.
 * It never raises limits and never kills a process it did not start.
 */
import { execFileSync, spawn } from "node:child_process"
import { existsSync, openSync, closeSync, readFileSync, readdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { performance } from "node:perf_hooks"

const guard = fileURLToPath(new URL("./orphan-guard.mjs", import.meta.url))

let clkTck
export const clockTicks = () => {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
    } catch {
      clkTck = 100
    }
  }
  return clkTck
}

let tasksetPath
export const taskset = () => {
  if (tasksetPath === undefined) {
    tasksetPath = null
    for (const p of ["/usr/bin/taskset", "/bin/taskset", "/usr/local/bin/taskset"]) {
      if (existsSync(p)) {
        tasksetPath = p
        break
      }
    }
  }
  return tasksetPath
}

export const cpuCount = () => {
  try {
    return readFileSync("/proc/cpuinfo", "utf8").split("\n").filter((l) => l.startsWith("processor")).length || 1
  } catch {
    return 1
  }
}

/**
 * The pinning plan: targets (proxies under test) on one CPU, the harness (load generator +
 * mock upstream) on another. Unpinned when taskset is missing, there is one CPU, or asked.
 */
export const pinningPlan = (disabled) => {
  const n = cpuCount()
  // the CPUs this process may use (a cgroup cpuset can allow fewer than the machine has)
  const allowed = cpuList(affinityOf(process.pid)) ?? Array.from({ length: n }, (_, i) => String(i))
  if (disabled) return { pinned: false, reason: "--no-pin", target: undefined, harness: undefined, cpus: n }
  if (taskset() === null) return { pinned: false, reason: "taskset not found", target: undefined, harness: undefined, cpus: n }
  if (allowed.length < 2) return { pinned: false, reason: "only one CPU allowed", target: undefined, harness: undefined, cpus: n }
  return { pinned: true, reason: undefined, target: allowed[0], harness: allowed[1], cpus: n }
}

/**
 * Pins this process (all its threads) to `cpus`; returns false when that failed. `taskset -a`
 * walks the threads and fails if one exits meanwhile (Node starts and ends helper threads
 * at start-up), so it is tried a few times; success is read back from /proc.
 */
export const pinSelf = (cpus) => {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      execFileSync(taskset(), ["-a", "-p", "-c", cpus, String(process.pid)], { stdio: "ignore" })
      return true
    } catch {
      if (attempt === 4) return affinityOf(process.pid) === cpus
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
    }
  }
  return false
}

const children = new Set()

/**
 * Starts `node <args>` (the harness's own Node 24), pinned to `cpus` when given, stdout and
 * stderr to `logFile`. Resolves nothing: returns { child, pid, startedAt (performance.now) }.
 */
export const spawnNode = (args, opts) => spawnPinned(process.execPath, ["--import", guard, ...args], opts)

/**
 * Starts any program (`nginx`), pinned like spawnNode. A program that cannot preload the
 * orphan guard gets a watchdog beside it (`sh`, not its child, so it is outside the
 * measured process tree): it kills the program once the harness is gone, and ends by
 * itself when the program ends.
 */
export const spawnProgram = (cmd, args, opts) => {
  const child = spawnPinned(cmd, args, opts)
  const dog = spawn("sh", ["-c", `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${child.pid} 2>/dev/null; do sleep 1; done; kill -9 ${child.pid} 2>/dev/null`], {
    stdio: "ignore",
    detached: true
  })
  dog.unref()
  return child
}

const spawnPinned = (program, args, { cpus, env, logFile, cwd }) => {
  const out = logFile === undefined ? "ignore" : openSync(logFile, "a")
  const [cmd, argv] = cpus === undefined
    ? [program, args]
    : [taskset(), ["-c", cpus, program, ...args]]
  const merged = { ...process.env, ...env, BENCH_PARENT_PID: String(process.pid) }
  for (const k of Object.keys(merged)) if (merged[k] === undefined) delete merged[k]
  const child = spawn(cmd, argv, {
    cwd,
    env: merged,
    stdio: ["ignore", out, out]
  })
  if (typeof out === "number") closeSync(out)
  children.add(child)
  child.once("exit", () => children.delete(child))
  return child
}

export const exited = (child) =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", () => resolve())
  })

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export const stop = async (child, graceMs = 8000) => {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill("SIGTERM")
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs)
  await exited(child)
  clearTimeout(timer)
}

export const stopAll = async () => {
  await Promise.all([...children].map((c) => stop(c, 3000)))
}

let installed = false
/** Kills every child on exit, failure, Ctrl-C or SIGTERM. */
export const installCleanup = (onSignal) => {
  if (installed) return
  installed = true
  process.on("exit", () => {
    for (const c of children) {
      try {
        c.kill("SIGKILL")
      } catch {
        // already gone
      }
    }
  })
  const onSig = (sig) => {
    process.stderr.write(`\nbench: ${sig}, stopping ${children.size} process(es)\n`)
    onSignal?.()
    stopAll().finally(() => process.exit(sig === "SIGINT" ? 130 : 143))
  }
  process.once("SIGINT", () => onSig("SIGINT"))
  process.once("SIGTERM", () => onSig("SIGTERM"))
}

/** The pid and all its descendants (a multi-worker target counts as one). */
export const processTree = (pid) => {
  const out = [pid]
  for (let i = 0; i < out.length; i++) {
    let tasks = []
    try {
      tasks = readdirSync(`/proc/${out[i]}/task`)
    } catch {
      continue
    }
    for (const tid of tasks) {
      try {
        const kids = readFileSync(`/proc/${out[i]}/task/${tid}/children`, "utf8").trim()
        if (kids !== "") for (const k of kids.split(/\s+/)) out.push(Number(k))
      } catch {
        // task gone
      }
    }
  }
  return out
}

/** utime + stime of the tree, in clock ticks. */
export const cpuTicks = (pid) => {
  let total = 0
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      // after "pid (comm) ": field 3 (state) is index 0, utime (14) is index 11, stime (15) index 12
      total += Number(fields[11]) + Number(fields[12])
    } catch {
      // process gone
    }
  }
  return total
}

/** CPU seconds of the tree. */
export const cpuSeconds = (pid) => cpuTicks(pid) / clockTicks()

/** VmRSS of the tree, in bytes. */
export const rssBytes = (pid) => {
  let total = 0
  for (const p of processTree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${p}/status`, "utf8"))
      if (m) total += Number(m[1]) * 1024
    } catch {
      // process gone
    }
  }
  return total
}

/** Open file descriptors of the tree. */
export const fdCount = (pid) => {
  let total = 0
  for (const p of processTree(pid)) {
    try {
      total += readdirSync(`/proc/${p}/fd`).length
    } catch {
      // process gone
    }
  }
  return total
}

export const fdLimit = () => {
  try {
    const m = /Max open files\s+(\d+)/.exec(readFileSync("/proc/self/limits", "utf8"))
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}

/** The CPUs a process may run on, as taskset prints them ("0", "1", "0,1"). */
export const affinityOf = (pid) => {
  try {
    const m = /Cpus_allowed_list:\s+(\S+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? m[1] : undefined
  } catch {
    return undefined
  }
}

/** Per-CPU busy (user + nice + system), total and steal ticks from /proc/stat. */
export const cpuStat = () => {
  const out = {}
  try {
    for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line)
      if (!m) continue
      const v = m[2].trim().split(/\s+/).map(Number)
      // user nice system idle iowait irq softirq steal (guest is inside user). Interrupt
      // time is left out of "busy": on loopback most of it is our own traffic.
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0)
      out[m[1]] = { busy: v[0] + v[1] + v[2], total, steal: v[7] }
    }
  } catch {
    // no /proc/stat: interference is unknown
  }
  return out
}

const cpuList = (spec) => {
  if (spec === undefined) return undefined
  const out = []
  for (const part of String(spec).split(",")) {
    const [a, b] = part.split("-").map(Number)
    for (let i = a; i <= (b ?? a); i++) out.push(String(i))
  }
  return out
}

/**
 * Nanoseconds the main thread of each process in the tree spent runnable but waiting for
 * a CPU (`run_delay`, /proc/<pid>/task/<pid>/schedstat). This is exactly what other work
 * on a shared machine costs a latency figure; 0 when schedstat is unavailable.
 */
export const runDelayNs = (pid, tree = true) => {
  let total = 0
  for (const p of tree ? processTree(pid) : [pid]) {
    try {
      total += Number(readFileSync(`/proc/${p}/task/${p}/schedstat`, "utf8").split(" ")[1])
    } catch {
      // no schedstat or process gone
    }
  }
  return total
}

/**
 * A measurement window over a target process: its CPU time, the harness's, and how busy
 * the target's and the harness's CPUs were with anything else (other users of a shared
 * machine, kernel work): "interference", in cores. `plan` is the pinning plan.
 */
export const cpuWindow = (pid, plan) => {
  let t0, hr0, target0, harness0, stat0, wait0, hwait0
  return {
    begin() {
      t0 = performance.now()
      hr0 = process.hrtime.bigint()
      wait0 = pid === undefined ? 0 : runDelayNs(pid)
      // the harness alone: its children are the targets
      hwait0 = runDelayNs(process.pid, false)
      target0 = pid === undefined ? 0 : cpuTicks(pid)
      harness0 = process.cpuUsage()
      stat0 = cpuStat()
    },
    end() {
      const windowMs = performance.now() - t0
      const hr1 = process.hrtime.bigint()
      const targetWaitMs = pid === undefined ? 0 : (runDelayNs(pid) - wait0) / 1e6
      const harnessWaitMs = (runDelayNs(process.pid, false) - hwait0) / 1e6
      const target = pid === undefined ? 0 : cpuTicks(pid) - target0
      const h = process.cpuUsage(harness0)
      const stat1 = cpuStat()
      const hz = clockTicks()
      const windowTicks = (windowMs / 1000) * hz
      const harnessTicks = ((h.user + h.system) / 1e6) * hz
      const busy = (cpus) => (cpus ?? Object.keys(stat1)).reduce((a, c) => a + ((stat1[c]?.busy ?? 0) - (stat0[c]?.busy ?? 0)), 0)
      const steal = Object.keys(stat1).reduce((a, c) => a + ((stat1[c]?.steal ?? 0) - (stat0[c]?.steal ?? 0)), 0)
      const stealOn = (cpus) => (cpus ?? Object.keys(stat1)).reduce((a, c) => a + ((stat1[c]?.steal ?? 0) - (stat0[c]?.steal ?? 0)), 0) / windowTicks
      let foreignTarget, foreignHarness, foreign, stealTarget, stealHarness
      if (plan?.pinned) {
        stealTarget = stealOn(cpuList(plan.target))
        stealHarness = stealOn(cpuList(plan.harness))
        foreignTarget = Math.max(0, busy(cpuList(plan.target)) - target) / windowTicks
        foreignHarness = Math.max(0, busy(cpuList(plan.harness)) - harnessTicks) / windowTicks
        foreign = foreignTarget + foreignHarness
      } else {
        foreign = Math.max(0, busy() - target - harnessTicks) / windowTicks
      }
      return {
        windowMs,
        targetCpuTicks: target,
        targetCpuShare: target / windowTicks,
        harnessCpuShare: harnessTicks / windowTicks,
        foreignOnTargetCpu: foreignTarget,
        foreignOnHarnessCpu: foreignHarness,
        foreignCores: foreign,
        // time the hypervisor ran something else on our virtual CPUs (invisible otherwise)
        stealCores: steal / windowTicks,
        stealOnTargetCpu: stealTarget,
        stealOnHarnessCpu: stealHarness,
        // time the target's / the harness's main thread was runnable but had no CPU
        targetWaitMs,
        harnessWaitMs,
        // CLOCK_MONOTONIC µs, the clock V8's profiler stamps samples with: lets a
        // .cpuprofile be cut to the measurement windows
        spanUs: [Number(hr0 / 1000n), Number(hr1 / 1000n)]
      }
    }
  }
}

/**
 * Waits (at most `maxWaitMs`) for a `sampleMs` window in which other work took at most
 * `maxForeign` of a core on each of our CPUs (our own processes are idle between runs).
 * Returns how long it waited and the last sample.
 */
export const waitForQuiet = async (plan, maxForeign, maxWaitMs, sampleMs = 300, harnessOnly = false) => {
  const start = performance.now()
  let last
  while (true) {
    const w = cpuWindow(undefined, plan)
    w.begin()
    await new Promise((r) => setTimeout(r, sampleMs))
    last = w.end()
    const foreign = plan?.pinned
      ? harnessOnly ? last.foreignOnHarnessCpu : Math.max(last.foreignOnTargetCpu, last.foreignOnHarnessCpu)
      : last.foreignCores / 2
    if (foreign <= maxForeign || performance.now() - start >= maxWaitMs) {
      return { waitedMs: performance.now() - start - sampleMs, quiet: foreign <= maxForeign, foreign }
    }
  }
}
