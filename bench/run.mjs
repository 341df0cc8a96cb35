/**
 * Sluice gateway-overhead benchmark: `npm run bench [-- options]` (bundles first, then runs this).
 *
 * One process drives everything: it pins itself to the harness CPU, starts the mock
 * upstream in-process, then runs the figure groups (lib/groups.mjs) against `direct`,
 * the floor proxy, nginx (when installed), Portkey (with --portkey) and Sluice's production
 * bundle, each target pinned to the target CPU.
 * It prints a table and writes bench/results/<timestamp>.json. See bench/README.md.
 *
 * It starts and stops only its own processes (also on failure and Ctrl-C), raises no
 * limits, and changes nothing outside bench/results/ and a temporary directory.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { cpus as osCpus, tmpdir, release } from "node:os"
import { join, resolve } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { build } from "./lib/figures.mjs"
import { abortGroup, ladderGroup, LADDER_RATES, latencyGroup, openStreamsGroup, saturationGroup, startupGroup, streamingGroup } from "./lib/groups.mjs"
import { setPaceMode } from "./lib/load.mjs"
import { startMock } from "./lib/mock.mjs"
import { format as formatProfile, summarize as summarizeProfile } from "./lib/profile.mjs"
import { buildWithSourceMaps } from "./lib/sourcemap.mjs"
import { affinityOf, clockTicks, fdLimit, installCleanup, pinningPlan, pinSelf, stopAll } from "./lib/procs.mjs"
import { compare, notes, table } from "./lib/report.mjs"
import { bundlePath, fitSluiceConfig, sluiceAuthOf, installPortkey, nginxBinary, NGINX_MISSING, PORTKEY_PACKAGE, repoDir, TARGETS, writeSluiceConfig } from "./lib/targets.mjs"

const benchDir = fileURLToPath(new URL(".", import.meta.url))
const resultsDir = join(benchDir, "results")

const USAGE = `usage: npm run bench -- [options]
       node bench/run.mjs --compare before.json after.json

  --only a,b        figure groups: startup (start-up time, idle RSS), latency (added latency,
                    CPU/request), log (cost of the info log line), saturation, ladder (highest
                    rate held with p99 ≤ 100 ms), streaming, abort, open-streams (RSS with
                    1k/5k/9k open streams). Default: all.
                    Aliases: idle-rss=startup, cpu=latency, rss=open-streams, rate=ladder.
  --target t,u      targets among sluice, floor, direct, nginx, portkey (default: direct,
                    floor, sluice, and nginx when installed). Figures "added to direct"
                    always run direct too.
  --portkey         also run Portkey's gateway (${PORTKEY_PACKAGE}), installed with
                    \`npm install --prefix <tmp>/sluice-bench-portkey\` on first use
  --ladder a,b,c    rate-ladder steps (default ${LADDER_RATES.join(",")})
  --repeats N       repeats per figure (default 3; medians are reported)
  --rss-repeats N   repeats of the open-stream ramp (default 1: ~30 s per target each)
  --quick           short smoke run (about a minute): 1 repeat, short windows, 1k streams only
  --profile         write a .cpuprofile of every Sluice process (bench/results/profiles/)
                    and print where its time went
  --heap            write heap snapshots of Sluice when idle and at the top open-stream level
  --out FILE        results file (default bench/results/<timestamp>.json)
  --compare A B     print the before/after table of two results files and exit
  --rates a,b,c     non-streaming rates (default 200,1000,2000)
  --levels a,b,c    open-stream levels (default 1000,5000,9000)
  --abort-levels a,b  streams aborted at once per abort run (default 100,5000,9000; --quick 100)
  --concurrency N   connections for saturation (default 64)
  --retries N       re-runs of a disturbed run (default 2; 0 with --quick)
  --retry-budget S  seconds the whole run may spend waiting for quiet and re-running
                    disturbed runs (default 120; 0 with --quick)
  --max-foreign X   a run is disturbed when other work took more than X of a core on the
                    target's or the harness's CPU (default 0.2)
  --max-wait X      ... or when the harness's main thread waited for its CPU more than X of
                    the window (default 0.05; 5X for saturation)
  --max-steal X     ... or when the hypervisor stole more than X of one of our CPUs (default 0.1)
  --trace-gc        start Sluice with --trace-gc and report its GC pauses per group
  --eld             latency windows: the event-loop delay (1 ms probe) and GC pauses inside
                    Sluice and the floor proxy during each window (bench/lib/eld-probe.mjs)
  --pace timer|spin how the open-loop generator waits for the next send (default timer)
  --otel            Sluice exports OTLP traces (to the mock's sink): tracing's cost
  --bundle FILE     run this gateway bundle instead of dist/main.mjs (e.g. a saved "before" build)
  --auth-off        run Sluice with \`auth: none\` (the bench config declares the bench's API key;
                    compare a run with and without it for the cost of authentication)
  --node-options S  extra Node flags for the Sluice processes, e.g. "--max-semi-space-size=32"
  --idle-wait S     the startup group reads the idle RSS S seconds after the first completion
                    (default 2; Sluice's idle memory reducer runs after server.idle_gc_after, 10 s)
  --target-warmup S each target's warm-up before the first window of the latency, saturation and
                    ladder groups (default 20: 500 req/s, or saturation, for 20 s, discarded). V8
                    keeps optimizing Sluice's request path for ~10–15 s of load; rounds 1–2 up to
                    session 5 used 3 (bench/README, "JIT warm-up")
  --env K=V         an environment variable for the Sluice processes only (repeatable), e.g.
                    MALLOC_ARENA_MAX=2 (read by glibc at process start)
  --no-pin          do not pin processes to CPUs
  --keep            keep the temporary directory (configs, process logs)
`

/** A mistake in how the bench was called: printed without a stack. */
class UsageError extends Error {}

const GROUPS = ["startup", "latency", "log", "saturation", "ladder", "streaming", "abort", "open-streams"]
const ALIASES = { "idle-rss": "startup", cpu: "latency", rss: "open-streams", "rss-streams": "open-streams", stream: "streaming", start: "startup", rate: "ladder" }
const TARGET_NAMES = ["direct", "floor", "nginx", "portkey", "sluice"]

const parseArgs = (argv) => {
  const o = { only: undefined, targets: undefined, portkey: false, ladder: LADDER_RATES, repeats: undefined, rssRepeats: 1, quick: false, profile: false, heap: false, out: undefined, compare: undefined, rates: [200, 1000, 2000], levels: undefined, abortLevels: undefined, concurrency: 64, retries: undefined, retryBudget: undefined, maxForeign: 0.2, maxWait: 0.05, maxSteal: 0.1, traceGc: false, eld: false, otel: false, bundle: undefined, authOff: false, nodeOptions: [], env: {}, pace: "timer", pin: true, keep: false, help: false }
  const list = (s) => s.split(",").map((x) => x.trim()).filter(Boolean)
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new UsageError(`${a} needs a value`)
      return argv[++i]
    }
    switch (a) {
      case "--only": o.only = list(next()).map((g) => ALIASES[g] ?? g); break
      case "--target": case "--targets": o.targets = list(next()); break
      case "--portkey": o.portkey = true; break
      case "--ladder": o.ladder = list(next()).map(Number); break
      case "--repeats": o.repeats = Number(next()); break
      case "--rss-repeats": o.rssRepeats = Number(next()); break
      case "--quick": o.quick = true; break
      case "--profile": o.profile = true; break
      case "--heap": o.heap = true; break
      case "--out": o.out = next(); break
      case "--compare": o.compare = [next(), next()]; break
      case "--rates": o.rates = list(next()).map(Number); break
      case "--levels": o.levels = list(next()).map(Number); break
      case "--abort-levels": o.abortLevels = list(next()).map(Number); break
      case "--concurrency": o.concurrency = Number(next()); break
      case "--retries": o.retries = Number(next()); break
      case "--retry-budget": o.retryBudget = Number(next()); break
      case "--trace-gc": o.traceGc = true; break
      case "--eld": o.eld = true; break
      case "--pace": o.pace = next(); break
      case "--otel": o.otel = true; break
      case "--bundle": o.bundle = resolve(next()); break
      case "--auth-off": o.authOff = true; break
      case "--idle-wait": o.idleWait = Number(next()); break
      case "--target-warmup": o.targetWarmup = Number(next()); break
      case "--node-options": o.nodeOptions = next().split(/\s+/).filter(Boolean); break
      case "--env": {
        const [k, ...v] = next().split("=")
        o.env[k] = v.join("=")
        break
      }
      case "--max-foreign": o.maxForeign = Number(next()); break
      case "--max-wait": o.maxWait = Number(next()); break
      case "--max-steal": o.maxSteal = Number(next()); break
      case "--no-pin": o.pin = false; break
      case "--keep": o.keep = true; break
      case "-h": case "--help": o.help = true; break
      default: throw new UsageError(`unknown option ${a} (see --help)`)
    }
  }
  for (const g of o.only ?? []) if (!GROUPS.includes(g)) throw new UsageError(`unknown figure group "${g}" (one of ${GROUPS.join(", ")})`)
  for (const t of o.targets ?? []) if (!TARGET_NAMES.includes(t)) throw new UsageError(`unknown target "${t}"`)
  // the reference proxies: nginx by default when installed; Portkey only when asked
  o.nginx = nginxBinary()
  if (o.targets === undefined) o.targets = ["direct", "floor", ...(o.nginx ? ["nginx"] : []), ...(o.portkey ? ["portkey"] : []), "sluice"]
  else if (o.portkey && !o.targets.includes("portkey")) o.targets.push("portkey")
  if (o.targets.includes("nginx") && o.nginx === undefined) throw new UsageError(NGINX_MISSING)
  if (o.targets.includes("portkey")) o.portkey = true
  if (!["timer", "spin"].includes(o.pace)) throw new UsageError(`--pace is timer or spin`)
  return o
}

const durations = (quick) => quick
  ? { ladderWarmupMs: 200, ladderMs: 800, latencyWarmupMs: 200, latencyMs: 800, latencySamples: 160, targetWarmupMs: 300, satWarmupMs: 200, satMs: 800, satConcurrency: 64, streamWarmupMs: 200, streamMs: 1000, streamRate: 100, chunks: 10, chunkIntervalMs: 20, levels: [1000], openRate: 1000, settleMs: 500, baseWaitMs: 500, afterCloseMs: 1000, recoverMs: 5000, holdIntervalMs: 5000, idleWaitMs: 2000, aborts: 100, abortLevels: [100], quietWaitMs: 1000 }
  : { ladderWarmupMs: 500, ladderMs: 2000, latencyWarmupMs: 1000, latencyMs: 4000, latencySamples: 1000, targetWarmupMs: 20000, satWarmupMs: 1000, satMs: 4000, satConcurrency: 64, streamWarmupMs: 1000, streamMs: 5000, streamRate: 100, chunks: 10, chunkIntervalMs: 20, levels: [1000, 5000, 9000], openRate: 500, settleMs: 2000, baseWaitMs: 1000, afterCloseMs: 2000, recoverMs: 60000, holdIntervalMs: 5000, idleWaitMs: 2000, aborts: 100, abortLevels: [100, 5000, 9000], quietWaitMs: 2000 }

const git = () => {
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repoDir, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
    const dirty = execFileSync("git", ["--no-optional-locks", "status", "--porcelain", "--", "src", "package.json"], { cwd: repoDir, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim() !== ""
    return { commit, dirty }
  } catch {
    return undefined
  }
}

/** Every measurement window (CLOCK_MONOTONIC µs) found in a target's raw runs. */
const windowsOf = (runs) => {
  const out = []
  const walk = (x) => {
    if (x === null || typeof x !== "object") return
    if (Array.isArray(x.spanUs)) out.push(x.spanUs)
    for (const v of Object.values(x)) walk(v)
  }
  walk(runs)
  return out
}

const stampOf = (d) => d.toISOString().replace(/[:]/g, "-").replace(/\.\d+Z$/, "Z")

const main = async () => {
  const args = parseArgs(process.argv.slice(2))
  if (args.help) return void process.stdout.write(USAGE)
  if (args.compare) {
    const [a, b] = args.compare.map((f) => JSON.parse(readFileSync(f, "utf8")))
    process.stdout.write(compare(a, b) + "\n")
    return
  }
  const major = Number(process.versions.node.split(".")[0])
  if (major < 24) {
    throw new UsageError(`node ${process.version}: run through npm (\`npm run bench\` or \`npx node bench/run.mjs\`) so the project's pinned Node 24 is used`)
  }
  const bundle = args.bundle ?? bundlePath
  if (!existsSync(bundle) && args.targets.includes("sluice")) throw new UsageError(`${bundle} is missing: run \`npm run bundle\` (npm run bench does)`)

  installCleanup()
  setPaceMode(args.pace)
  const t0 = performance.now()
  const started = new Date()
  const stamp = stampOf(started)
  const plan = pinningPlan(!args.pin)
  if (plan.pinned && !pinSelf(plan.harness)) {
    plan.pinned = false
    plan.reason = "taskset failed"
  }
  const d = durations(args.quick)
  if (args.levels) d.levels = args.levels
  if (args.abortLevels) d.abortLevels = args.abortLevels
  if (args.idleWait !== undefined) d.idleWaitMs = args.idleWait * 1000
  if (args.targetWarmup !== undefined) d.targetWarmupMs = args.targetWarmup * 1000
  d.satConcurrency = args.concurrency
  const limit = fdLimit()
  if (limit !== undefined) {
    // a target holds 2 sockets per open stream, the harness 2 as well (client + mock side)
    const fit = d.levels.filter((l) => 2 * l + 600 <= limit)
    if (fit.length < d.levels.length) {
      process.stderr.write(`bench: open-file limit ${limit} fits only ${fit.join(", ") || "no"} open-stream levels; skipping the rest\n`)
      d.levels = fit
    }
    const abortFit = d.abortLevels.filter((l) => 2 * l + 600 <= limit)
    if (abortFit.length < d.abortLevels.length) {
      process.stderr.write(`bench: open-file limit ${limit} fits only ${abortFit.join(", ") || "no"} abort levels; skipping the rest\n`)
      d.abortLevels = abortFit
    }
  }
  const repeats = args.repeats ?? (args.quick ? 1 : 3)
  const selected = new Set(args.only ?? GROUPS)
  const processTargets = args.targets.filter((t) => t !== "direct")
  const logOn = selected.has("log") && processTargets.includes("sluice")
  const say = (line) => process.stdout.write(line + "\n")
  /** What the groups read: durations, pinning, repeats, and `log`, the progress printer. */
  const o = {
    d,
    plan,
    hz: clockTicks(),
    repeats,
    rssRepeats: args.rssRepeats,
    retries: args.retries ?? (args.quick ? 0 : 2),
    retryBudget: { left: args.retryBudget ?? (args.quick ? 0 : 120) },
    maxForeign: args.maxForeign,
    maxWait: args.maxWait,
    maxSteal: args.maxSteal,
    rates: selected.has("latency") ? args.rates : [1000],
    logRate: 1000,
    ladderRates: args.ladder,
    ladderP99Ms: 100,
    logOn,
    processTargets,
    heap: args.heap,
    log: say
  }

  const workDir = mkdtempSync(join(tmpdir(), "sluice-overhead-"))
  if (!args.keep) process.on("exit", () => rmSync(workDir, { recursive: true, force: true }))
  // --profile runs the same build with source maps, so samples map back to src/ modules
  let profiledBundle
  if (args.profile && args.bundle === undefined && processTargets.includes("sluice")) {
    try {
      // kept next to the profiles: the .cpuprofile URLs point into it, so DevTools and
      // `bench/lib/profile.mjs` can map samples back to sources later
      profiledBundle = buildWithSourceMaps(repoDir, join(resultsDir, "profiles", `build-${stamp}`))
    } catch (e) {
      process.stderr.write(`bench: could not build with source maps (${String(e?.message ?? e).slice(0, 300)}); profiling dist/ as is\n`)
    }
  }
  // the reference proxies: what ran, or why not
  let nginxVersion
  if (args.nginx !== undefined) {
    // nginx -v writes to stderr
    const v = spawnSync(args.nginx, ["-v"], { encoding: "utf8" })
    nginxVersion = `${v.stderr ?? ""}${v.stdout ?? ""}`.trim().replace(/^nginx version: /, "") || "?"
  }
  const portkey = processTargets.includes("portkey") ? installPortkey(say) : undefined
  const mock = await startMock()
  const configPath = writeSluiceConfig(workDir, mock.url, { authOff: args.authOff })
  const profileDir = join(resultsDir, "profiles")
  const ctx = {
    mock,
    workDir,
    configPath,
    cpus: plan.pinned ? plan.target : undefined,
    profile: args.profile || args.heap ? { cpu: args.profile, heap: args.heap, dir: profileDir } : undefined,
    traceGc: args.traceGc,
    eld: args.eld,
    otel: args.otel,
    nodeOptions: args.nodeOptions,
    env: args.env,
    bundle: profiledBundle ?? bundle,
    gc: [],
    stamp,
    portkey
  }

  const g = git()
  const meta = {
    schema: 1,
    startedAt: started.toISOString(),
    git: g,
    node: process.version,
    kernel: release(),
    cpus: plan.cpus,
    cpuModel: osCpus()[0]?.model,
    clockTicks: o.hz,
    openFileLimit: limit,
    pinning: plan.pinned
      ? { pinned: true, targets: `CPU ${plan.target}`, harness: `CPU ${plan.harness} (load generator + mock upstream, this process)`, tool: "taskset" }
      : { pinned: false, reason: plan.reason },
    targets: Object.fromEntries(["direct", ...processTargets, ...(logOn ? ["sluice-info"] : [])].map((t) => [t, TARGETS[t].what])),
    references: {
      nginx: processTargets.includes("nginx") ? `${args.nginx} (${nginxVersion})` : args.nginx === undefined ? NGINX_MISSING.replace(/^nginx: /, "") : "installed, not selected",
      portkey: portkey === undefined ? "not run (--portkey runs it)" : `${PORTKEY_PACKAGE} in ${portkey.dir}`
    },
    config: "bench/config/overhead.yaml",
    bundle: profiledBundle ? `${bundle} (profiled: the same build with source maps, ${profiledBundle})` : bundle,
    options: { ...args, compare: undefined },
    repeats,
    rssRepeats: o.rssRepeats,
    retries: o.retries,
    retryBudgetS: o.retryBudget.left,
    pace: args.pace,
    maxForeign: o.maxForeign,
    maxWait: o.maxWait,
    maxSteal: o.maxSteal,
    durations: d,
    rates: o.rates,
    logRate: o.logRate,
    levels: d.levels,
    satConcurrency: d.satConcurrency,
    streamRate: d.streamRate,
    chunks: d.chunks,
    chunkIntervalMs: d.chunkIntervalMs,
    aborts: d.aborts,
    recoverMs: d.recoverMs,
    idleWaitMs: d.idleWaitMs,
    targetWarmupMs: d.targetWarmupMs,
    ladderRates: o.ladderRates,
    ladderP99Ms: o.ladderP99Ms,
    abortLevels: d.abortLevels,
    profiled: args.profile,
    sluiceConfig: readFileSync(configPath, "utf8")
  }
  meta.sluiceAuth = sluiceAuthOf(meta.sluiceConfig)

  say(`Sluice gateway-overhead benchmark  ${meta.startedAt}  commit ${g?.commit ?? "?"}${g?.dirty ? " (src dirty)" : ""}  node ${process.version}`)
  say(`machine: ${plan.cpus} CPUs (${meta.cpuModel ?? "?"}), kernel ${meta.kernel}, open files ${limit ?? "?"}, CLK_TCK ${o.hz}`)
  say(plan.pinned
    ? `pinning: targets (${processTargets.join(", ")}) on CPU ${plan.target} via taskset; harness (load generator + mock upstream) on CPU ${plan.harness} (affinity now ${affinityOf(process.pid)})`
    : `pinning: none (${plan.reason}); figures are noisier`)
  say(`reference proxies: nginx: ${meta.references.nginx}; portkey: ${meta.references.portkey}`)
  say(`groups: ${[...selected].join(", ")}; targets: ${args.targets.join(", ")}; repeats ${repeats}${args.quick ? " (quick)" : ""}${args.profile ? "; PROFILING (figures not comparable)" : ""}`)
  say("")

  let configRemoved = []
  if (processTargets.includes("sluice")) {
    configRemoved = await fitSluiceConfig(ctx)
    meta.configNotInBuild = configRemoved
    meta.sluiceConfig = readFileSync(configPath, "utf8")
    say(`sluice auth: ${meta.sluiceAuth === "none" ? "none (--auth-off)" : "API keys on (the bench key, Argon2id once, then the cached digest)"}`)
    if (configRemoved.length > 0) say(`config: not in this build, removed from the bench config: ${configRemoved.join("; ")}\n`)
  }
  if (args.otel) say("tracing: Sluice exports OTLP traces to the mock (--otel)\n")

  const results = {}
  const profiles = []
  const heaps = []
  const profileFilesBefore = new Set(existsSync(profileDir) ? readdirSync(profileDir) : [])
  const failures = []
  const run = async (name, fn) => {
    const start = performance.now()
    say(`[${name}]`)
    try {
      results[name] = await fn(o, ctx)
    } catch (e) {
      // one group failing (a target crashed, ran out of fds) does not stop the others
      failures.push({ group: name, error: String(e?.stack ?? e) })
      say(`  FAILED: ${e?.stack ?? e}`)
      await stopAll()
    }
    if (results[name]?.heaps) heaps.push(...results[name].heaps)
    for (const g of ctx.gc.filter((x) => x.group === undefined)) {
      g.group = name
      say(`  GC ${g.target}: ${g.scavenges} scavenges (max ${g.maxScavengeMs} ms), ${g.markCompacts} mark-compacts (max ${g.maxMarkCompactMs} ms), ${g.totalPauseMs} ms paused in total`)
    }
    say(`  (${((performance.now() - start) / 1000).toFixed(1)} s)`)
    if (args.profile && existsSync(profileDir)) {
      for (const f of readdirSync(profileDir)) {
        if (!f.endsWith(".cpuprofile") || profileFilesBefore.has(f) || !f.includes(stamp)) continue
        profileFilesBefore.add(f)
        const target = ["sluice-info", "sluice"].find((t) => f.startsWith(`${t}-`))
        const s = summarizeProfile(join(profileDir, f), 30, windowsOf(results[name]?.runs?.[target] ?? (results[name]?.levels ? Object.values(results[name].runs).map((byTarget) => byTarget[target]) : undefined)))
        profiles.push(s)
        say(formatProfile(s, 15).split("\n").map((l) => "  " + l).join("\n"))
      }
    }
  }

  if (selected.has("startup") && processTargets.length > 0) await run("startup", startupGroup)
  if (selected.has("latency") || logOn) await run("latency", latencyGroup)
  if (selected.has("saturation") || logOn) await run("saturation", saturationGroup)
  if (selected.has("ladder")) await run("ladder", ladderGroup)
  if (selected.has("streaming")) await run("streaming", streamingGroup)
  if (selected.has("abort")) await run("abort", abortGroup)
  if (selected.has("open-streams") && processTargets.length > 0 && d.levels.length > 0) await run("open-streams", openStreamsGroup)
  await stopAll()
  await mock.close()
  meta.mockCounts = { ...mock.counts }

  meta.durationS = Math.round((performance.now() - t0) / 100) / 10
  const figures = build(results, meta)
  meta.retryBudgetLeftS = Math.round(o.retryBudget.left)
  const out = { meta, figures, results, profiles, heaps, gc: ctx.gc, failures }
  const file = resolve(args.out ?? join(resultsDir, `${stamp}.json`))
  mkdirSync(resolve(file, ".."), { recursive: true })
  writeFileSync(file, JSON.stringify(out, (k, v) => (typeof v === "number" && !Number.isFinite(v) ? (Number.isNaN(v) ? null : v > 0 ? "inf" : "-inf") : v), 1))

  say("")
  say(table(figures))
  const n = notes(figures)
  if (n) say("\nnotes:\n" + n)
  const verdicts = figures.filter((f) => f.verdict !== undefined)
  say(`\ngoals: ${verdicts.filter((f) => f.verdict === "pass").length} pass, ${verdicts.filter((f) => f.verdict === "fail").length} fail, ${verdicts.filter((f) => f.verdict === "n/a").length} n/a`)
  const mc = meta.mockCounts
  say(`mock upstream served ${mc.unary} unary requests, ${mc.streams} streams, ${mc.scrapes} /metrics scrapes${args.otel ? `, ${mc.traces} OTLP trace exports` : ""}`)
  if (heaps.length) say(`heap snapshots: ${heaps.map((h) => `${h.target} ${h.when}: ${h.file}`).join("; ")}`)
  if (args.nginx === undefined) say(NGINX_MISSING)
  say(`results: ${file}  (${meta.durationS} s)`)
  if (args.keep) say(`work dir kept: ${workDir}`)
  if (failures.length > 0) {
    say(`failed groups: ${failures.map((f) => f.group).join(", ")} (see above)`)
    process.exitCode = 1
  }
}

main().catch(async (e) => {
  process.stderr.write(`bench: ${e instanceof UsageError ? e.message : e?.stack ?? e}\n`)
  await stopAll()
  process.exit(1)
})
