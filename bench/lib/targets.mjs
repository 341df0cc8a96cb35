/**
 * The targets under test, each a way to get from the load generator to the mock:
 *
 *   direct       no proxy: the generator talks to the mock (the baseline every "added" is against)
 *   floor        bench/floor-proxy.mjs: raw node:http + undici pass-through (the runtime floor)
 *   sluice       dist/main.mjs (the production bundle) with bench/config/overhead.yaml,
 *                SLUICE_LOG_LEVEL=warn
 *   sluice-info  the same at SLUICE_LOG_LEVEL=info (one JSON line per request): the log line's cost
 *   nginx        a plain nginx reverse proxy (when installed): the proxy hop's limit, see nginxConf
 *   portkey      Portkey's open-source gateway (Node), only with --portkey: installed from npm
 *                into a temporary folder (installPortkey), the mock as a custom OpenAI host
 *
 * `start()` spawns the process pinned to the target CPU, polls GET /v1/models every 5 ms
 * until it answers 200, and returns a handle with the time that took (start-up), the pid
 * (CPU and RSS are read over its process tree, so "sluice with N workers" later is one more
 * entry here with more CPUs), and `stop()`. Profiling flags (--cpu-prof, heap snapshots on
 * SIGUSR2) are added here and nowhere else.
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, readFileSync, writeFileSync, existsSync, statSync, readdirSync } from "node:fs"
import { tmpdir } from "node:os"
import YAML from "yaml"
import net from "node:net"
import { join, resolve } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { probe } from "./client.mjs"
import { exited, spawnNode, spawnProgram, stop } from "./procs.mjs"
import { eldProbe } from "./eld.mjs"

const benchDir = fileURLToPath(new URL("..", import.meta.url))
export const repoDir = resolve(benchDir, "..")
export const bundlePath = join(repoDir, "dist", "main.mjs")
const floorPath = join(benchDir, "floor-proxy.mjs")
const portkeyShim = join(benchDir, "lib", "portkey-fetch-shim.mjs")
const configTemplate = join(benchDir, "config", "overhead.yaml")

/**
 * `--cpu-prof`'s sampling interval: V8's default (1 ms) unless SLUICE_BENCH_PROFILE_INTERVAL
 * gives one in µs (50 resolves the phases of one request; the profiler's cost grows with it).
 */
const profileInterval = () => {
  const us = process.env["SLUICE_BENCH_PROFILE_INTERVAL"]
  return us === undefined || us === "" ? [] : [`--cpu-prof-interval=${Number(us)}`]
}

export const HOST = "127.0.0.1"

export const freePort = () =>
  new Promise((resolve, reject) => {
    const s = net.createServer()
    s.on("error", reject)
    s.listen(0, HOST, () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })

/** Writes the bench config with the mock's URL filled in; returns its path. */
export const writeSluiceConfig = (workDir, mockUrl, options = {}) => {
  let text = readFileSync(configTemplate, "utf8").replaceAll("${MOCK_URL}", mockUrl)
  if (options.authOff === true) {
    // The same config with keys off: every request is the anonymous default tenant.
    const doc = YAML.parseDocument(text)
    doc.set("auth", "none")
    text = doc.toString()
  }
  const path = join(workDir, "overhead.yaml")
  writeFileSync(path, text)
  return path
}

/** Whether a written bench config has API keys on ("keys") or `auth: none` ("none"): the run prints it and records it in its results. */
export const sluiceAuthOf = (configText) => (YAML.parse(configText)?.auth === "none" ? "none" : "keys")

/** "routing.filters[3]" → ["routing", "filters"]; "backends[1].metrics" → ["backends", 1, "metrics"]. */
const configPath = (path) => {
  const parts = []
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) parts.push(m[2] !== undefined ? Number(m[2]) : m[1])
  while (parts.length > 0 && typeof parts[parts.length - 1] === "number") parts.pop()
  return parts
}

/**
 * Starts Sluice once with the bench config; when the build rejects keys it does not know
 * (an older commit in a before/after comparison), removes each rejected key from the
 * config file and tries again. Returns the removed paths. Throws on any other failure.
 */
export const fitSluiceConfig = async (ctx) => {
  const removed = []
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      const t = await startTarget("sluice", { ...ctx, label: "config-check", profile: undefined, traceGc: false })
      await t.stop()
      return removed
    } catch (e) {
      const m = /ConfigError: ([^\n]*)/.exec(String(e?.message ?? e))
      if (m === null) throw e
      const paths = m[1].split("; ").map((p) => p.slice(0, p.indexOf(": "))).filter((p) => p !== "")
      if (paths.length === 0) throw e
      const doc = YAML.parseDocument(readFileSync(ctx.configPath, "utf8"))
      let changed = false
      for (const p of paths) {
        const parts = configPath(p)
        if (parts.length === 0 || !doc.hasIn(parts)) continue
        doc.deleteIn(parts)
        removed.push(`${parts.join(".")} (${m[1].split("; ").find((x) => x.startsWith(p))?.slice(p.length + 2)})`)
        changed = true
      }
      if (!changed) throw e
      writeFileSync(ctx.configPath, doc.toString())
    }
  }
  throw new Error("the bench config still fails after removing 10 keys")
}

/** Sums the pauses of a `--trace-gc` log (Node 24 format: "..., 1.23 / 0.00 ms ..."). */
export const gcPauses = (text) => {
  const out = { scavenges: 0, markCompacts: 0, maxScavengeMs: 0, maxMarkCompactMs: 0, totalPauseMs: 0 }
  const re = /: (Scavenge|Minor Mark-Sweep|Mark-Compact|Mark-Sweep)\b[^\n]*?, ([\d.]+) \/ ([\d.]+) ms/g
  for (const m of text.matchAll(re)) {
    const ms = Number(m[2])
    out.totalPauseMs += ms
    if (m[1] === "Scavenge" || m[1] === "Minor Mark-Sweep") {
      out.scavenges++
      out.maxScavengeMs = Math.max(out.maxScavengeMs, ms)
    } else {
      out.markCompacts++
      out.maxMarkCompactMs = Math.max(out.maxMarkCompactMs, ms)
    }
  }
  out.totalPauseMs = Math.round(out.totalPauseMs)
  return out
}

/** nginx on PATH (or /usr/sbin/nginx, off the PATH of non-root shells); undefined when not installed. */
export const nginxBinary = () => {
  const dirs = [...(process.env.PATH ?? "").split(":").filter(Boolean), "/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"]
  for (const d of dirs) {
    const p = join(d, "nginx")
    try {
      if (statSync(p).isFile()) return p
    } catch {
      // not there
    }
  }
  return undefined
}

/** What the report says when nginx is missing; the bench never installs anything. */
export const NGINX_MISSING = "nginx: not installed (apt-get install nginx)"

/**
 * The nginx reference: one process (`master_process off`, `worker_processes 1`) in the
 * foreground, pinned like the others; everything it writes (error log, pid, temp paths) in
 * the run's temp dir; no access log. Streams pass unbuffered both ways, a client leaving
 * closes the upstream request (`proxy_ignore_client_abort off`), and upstream connections
 * are kept alive in a pool, as the Node proxies do. 20,000 fds fit 9,000 streams (2 each).
 */
export const nginxConf = ({ dir, port, upstreamPort, errorLog, fds = 20_000 }) => `# generated by bench/lib/targets.mjs
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile ${fds};
pid ${dir}/nginx.pid;
error_log ${errorLog} warn;
events {
  worker_connections ${fds - 500};
  multi_accept on;
}
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  client_max_body_size 16m;
  upstream mock {
    server ${HOST}:${upstreamPort};
    keepalive 1024;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen ${HOST}:${port} backlog=4096;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_ignore_client_abort off;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }
  }
}
`

/** The Portkey release measured (the table was measured on the 1.x line). */
export const PORTKEY_PACKAGE = "@portkey-ai/gateway@1.15.2"

/**
 * Installs Portkey's gateway with `npm install --prefix <tmp>/sluice-bench-portkey` (only
 * when --portkey asks; reused when that folder already has this version; no install
 * scripts). Returns { entry, version, dir }.
 */
export const installPortkey = (log = () => {}) => {
  const dir = join(tmpdir(), "sluice-bench-portkey")
  const pkg = join(dir, "node_modules", "@portkey-ai", "gateway", "package.json")
  const wanted = PORTKEY_PACKAGE.slice(PORTKEY_PACKAGE.lastIndexOf("@") + 1)
  const installed = () => (existsSync(pkg) ? JSON.parse(readFileSync(pkg, "utf8")).version : undefined)
  if (installed() !== wanted) {
    log(`portkey: npm install --prefix ${dir} ${PORTKEY_PACKAGE} ...`)
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, "package.json"), JSON.stringify({ private: true, description: "Portkey for npm run bench -- --portkey", dependencies: { "@portkey-ai/gateway": wanted } }, null, 1))
    execFileSync("npm", ["install", "--prefix", dir, "--no-audit", "--no-fund", "--ignore-scripts"], { stdio: ["ignore", "ignore", "inherit"], timeout: 600_000 })
  }
  const version = installed()
  if (version === undefined) throw new Error(`portkey: ${pkg} missing after npm install`)
  const meta = JSON.parse(readFileSync(pkg, "utf8"))
  return { entry: join(dir, "node_modules", "@portkey-ai", "gateway", typeof meta.bin === "string" ? meta.bin : "build/start-server.js"), version, dir }
}

/**
 * Portkey routes by request headers: provider `openai` at a custom host (the mock; the
 * loopback is on its trusted list), and it forwards `x-request-id` only when told to (the
 * mock tracks streams by it). The generator adds these to every request to Portkey.
 */
const portkeyHeaders = (mockUrl) => ["x-portkey-provider: openai", `x-portkey-custom-host: ${mockUrl}/v1`, "x-portkey-forward-headers: x-request-id"]

/** The descriptions every report prints. */
export const TARGETS = {
  direct: { name: "direct", process: false, what: "generator → mock, no proxy" },
  floor: { name: "floor", process: true, what: "bench/floor-proxy.mjs (node:http + undici)" },
  sluice: { name: "sluice", process: true, what: "dist/main.mjs, bench/config/overhead.yaml, log level warn" },
  "sluice-info": { name: "sluice-info", process: true, what: "as sluice, SLUICE_LOG_LEVEL=info" },
  nginx: { name: "nginx", process: true, what: "nginx reverse proxy, 1 process, keep-alive upstream pool, unbuffered (generated nginx.conf)" },
  portkey: { name: "portkey", process: true, what: `Portkey gateway (${PORTKEY_PACKAGE}, Node), provider openai at the mock as custom host` }
}

/** Targets that run the Sluice bundle (Node flags, profiles, heap snapshots apply to them only). */
const isSluice = (name) => name === "sluice" || name === "sluice-info"

/**
 * ctx: { mock, workDir, configPath, cpus (target CPU list or undefined), profile: { cpu, heap, dir }, label }
 */
export const startTarget = async (name, ctx) => {
  if (name === "direct") {
    return { name, host: HOST, port: ctx.mock.port, pid: undefined, startupMs: 0, stop: async () => {} }
  }
  const port = await freePort()
  const logFile = join(ctx.workDir, `${name}-${ctx.label}-${port}.log`)
  const nodeFlags = []
  if (ctx.profile?.cpu && isSluice(name)) {
    mkdirSync(ctx.profile.dir, { recursive: true })
    nodeFlags.push("--cpu-prof", ...profileInterval(), `--cpu-prof-dir=${ctx.profile.dir}`, `--cpu-prof-name=${name}-${ctx.label}-${ctx.stamp}.cpuprofile`)
  }
  if (ctx.profile?.heap && isSluice(name)) {
    mkdirSync(ctx.profile.dir, { recursive: true })
    nodeFlags.push("--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${ctx.profile.dir}`)
  }
  if (ctx.traceGc && isSluice(name)) nodeFlags.push("--trace-gc")
  if (isSluice(name)) nodeFlags.push(...(ctx.nodeOptions ?? []))
  // --eld: the event-loop delay and GC probe, in Sluice and in the floor proxy (both Node)
  const eldFile = ctx.eld && (isSluice(name) || name === "floor") ? join(ctx.workDir, `eld-${name}-${ctx.label}-${port}.jsonl`) : undefined
  if (eldFile !== undefined) nodeFlags.push("--import", eldProbe)
  let args
  let env
  let program
  let headers = []
  let readyPath = "/v1/models"
  if (name === "nginx") {
    program = nginxBinary()
    if (program === undefined) throw new Error(NGINX_MISSING)
    const dir = join(ctx.workDir, `nginx-${ctx.label}-${port}`)
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, "nginx.conf"), nginxConf({ dir, port, upstreamPort: ctx.mock.port, errorLog: logFile }))
    // -e: the error log before the config is read (else the build's default path is opened);
    // the target's log file, so a failed start shows nginx's own words
    args = ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", logFile]
    env = {}
  } else if (name === "portkey") {
    if (ctx.portkey === undefined) throw new Error("portkey: not installed (run with --portkey)")
    headers = portkeyHeaders(ctx.mock.url)
    // its GET /v1/models fails on Node 24 (it appends to a fetched response's immutable
    // headers: TypeError immutable → 500); its own health route answers 200
    readyPath = "/"
    args = ["--import", portkeyShim, ctx.portkey.entry, `--port=${port}`, "--headless"]
    // production: no log-streaming UI routes; the gateway itself is the same
    env = { NODE_ENV: "production", PORT: undefined }
  } else if (name === "floor") {
    args = [...nodeFlags, floorPath]
    env = { FLOOR_UPSTREAM: ctx.mock.url, HOST, PORT: String(port), BENCH_ELD_OUT: eldFile }
  } else {
    args = [...nodeFlags, ctx.bundle ?? bundlePath, "--config", ctx.configPath]
    env = {
      HOST,
      PORT: String(port),
      SLUICE_LOG_LEVEL: name === "sluice-info" ? "info" : "warn",
      // sluice-info runs beside sluice (latency, saturation) and a data folder takes one
      // gateway: it gets its own in the temp dir (sluice keeps the default, as measured before)
      ...(name === "sluice-info" ? { SLUICE_DATA_DIR: join(ctx.workDir, "data-sluice-info") } : {}),
      // nothing inherited from the shell may change what is measured (undefined = unset)
      SLUICE_CONFIG: undefined,
      SLUICE_UPSTREAM: undefined,
      LOG_LEVEL: undefined,
      // tracing only with --otel, to the mock's OTLP sink
      OTEL_EXPORTER_OTLP_ENDPOINT: ctx.otel ? ctx.mock.url : undefined,
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: undefined,
      OTEL_SERVICE_NAME: undefined,
      BENCH_ELD_OUT: eldFile,
      // --env K=V (repeatable): for Sluice only, e.g. glibc malloc settings read at process start
      ...ctx.env
    }
  }
  const t0 = performance.now()
  const child = program === undefined
    ? spawnNode(args, { cpus: ctx.cpus, env, logFile, cwd: repoDir })
    : spawnProgram(program, args, { cpus: ctx.cpus, env, logFile, cwd: repoDir })
  let status
  while (true) {
    if (child.exitCode !== null || child.signalCode !== null) break
    status = await probe(HOST, port, readyPath, 500, headers)
    if (status === 200) break
    if (performance.now() - t0 > 30_000) break
    await new Promise((r) => setTimeout(r, 5))
  }
  const startupMs = performance.now() - t0
  if (status !== 200) {
    await stop(child, 2000)
    const log = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-3000) : ""
    throw new Error(`${name} did not answer 200 on ${readyPath} (status ${status}, exit ${child.exitCode ?? child.signalCode}).\n${log}`)
  }
  return {
    name,
    host: HOST,
    port,
    /** extra request headers this target needs (Portkey's routing headers) */
    headers,
    pid: child.pid,
    child,
    startupMs,
    logFile,
    /** the --eld probe's records (bench/lib/eld.mjs), when on */
    eldFile,
    alive: () => child.exitCode === null && child.signalCode === null,
    logTail: () => (existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-3000) : ""),
    logLines: () => (existsSync(logFile) ? readFileSync(logFile, "utf8").split("\n").length - 1 : 0),
    /** Writes a heap snapshot (needs profile.heap); resolves its path once the file stops growing. */
    heapSnapshot: async () => {
      if (!ctx.profile?.heap || !isSluice(name)) return undefined
      const before = new Set(readdirSync(ctx.profile.dir))
      child.kill("SIGUSR2")
      let file
      for (let i = 0; i < 600 && file === undefined; i++) {
        await new Promise((r) => setTimeout(r, 100))
        file = readdirSync(ctx.profile.dir).find((f) => f.endsWith(".heapsnapshot") && !before.has(f))
      }
      if (file === undefined) return undefined
      const path = join(ctx.profile.dir, file)
      let last = -1
      for (let i = 0; i < 600; i++) {
        await new Promise((r) => setTimeout(r, 250))
        const size = statSync(path).size
        if (size === last && size > 0) break
        last = size
      }
      return path
    },
    stop: async () => {
      await stop(child, 10_000)
      await exited(child)
      if (ctx.traceGc && isSluice(name) && existsSync(logFile)) ctx.gc?.push({ target: name, label: ctx.label, ...gcPauses(readFileSync(logFile, "utf8")) })
    }
  }
}
