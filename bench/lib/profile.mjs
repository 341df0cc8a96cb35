/**
 * Reads a V8 .cpuprofile (from `node --cpu-prof`) and says where the time went: the top
 * functions by self time, and self time per source module. Positions in the bundle are
 * mapped back to their source module through the bundle's .map files when present
 * (`--profile` runs build them, see sourcemap.mjs), else through the `// path/module.js`
 * comments an unminified esbuild bundle carries, so `chunk-X.mjs:1:48213` reads as
 * `src/resilience/Breaker.ts`. Pure reading; it never starts anything.
 *
 *   node bench/lib/profile.mjs bench/results/profiles/<file>.cpuprofile [--top 30]
 */
import { readFileSync } from "node:fs"
import { basename } from "node:path"
import { fileURLToPath } from "node:url"
import { lookup } from "./sourcemap.mjs"

const moduleIndex = new Map()

/** [line (1-based), module path] of each module comment in a bundle, sorted by line. */
const bundleModules = (path) => {
  if (moduleIndex.has(path)) return moduleIndex.get(path)
  let index = []
  try {
    const lines = readFileSync(path, "utf8").split("\n")
    for (let i = 0; i < lines.length; i++) {
      const m = /^\/\/ ((?:node_modules|src)\/\S+\.(?:[cm]?js|ts))$/.exec(lines[i])
      if (m) index.push([i + 1, m[1]])
    }
  } catch {
    index = []
  }
  moduleIndex.set(path, index)
  return index
}

const moduleOf = (url, line, column) => {
  if (url === "") return "(native / V8)"
  if (url.startsWith("node:")) return "node:internal"
  const file = url.startsWith("file://") ? fileURLToPath(url) : url
  const mapped = lookup(file, line - 1, column)
  if (mapped !== undefined) return mapped
  if (!file.endsWith(".mjs") || !file.includes("dist")) return file.replace(/^.*\/node_modules\//, "node_modules/")
  const index = bundleModules(file)
  let lo = 0
  let hi = index.length - 1
  let found = undefined
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (index[mid][0] <= line) {
      found = index[mid][1]
      lo = mid + 1
    } else hi = mid - 1
  }
  return found ?? basename(file)
}

/** Collapses a module path to a package or source folder ("effect", "undici", "src/http"). */
export const packageOf = (mod) => {
  const nm = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(mod)
  if (nm) return nm[1]
  const src = /^src\/([^/]+)\//.exec(mod)
  if (src) return `src/${src[1]}`
  return mod
}

/**
 * Summarizes a profile: total, idle, GC, top functions and modules by self time (ms).
 * `windows` ([[fromUs, toUs], ...] on CLOCK_MONOTONIC, as the harness records them) keeps
 * only samples inside the measurement windows (start-up and idle gaps left out); when no
 * sample falls inside (clocks not comparable), the whole profile is used.
 */
export const summarize = (path, top = 25, windows = undefined) => {
  const profile = JSON.parse(readFileSync(path, "utf8"))
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const collect = (inside) => {
    const self = new Map()
    let t = profile.startTime
    let kept = 0
    for (let i = 0; i < profile.samples.length; i++) {
      const dt = profile.timeDeltas[i] ?? 0
      t += dt
      if (inside !== undefined && !inside(t)) continue
      kept++
      self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt)
    }
    return { self, kept }
  }
  const ws = (windows ?? []).filter((w) => Array.isArray(w) && w.length === 2)
  let { self, kept } = collect(ws.length > 0 ? (t) => ws.some(([a, b]) => t >= a && t <= b) : undefined)
  let windowed = ws.length > 0
  if (windowed && kept === 0) {
    ;({ self } = collect(undefined))
    windowed = false
  }
  let totalUs = 0
  let idleUs = 0
  let gcUs = 0
  const byFunction = new Map()
  const byModule = new Map()
  const byPackage = new Map()
  for (const [id, us] of self) {
    const node = nodes.get(id)
    const cf = node.callFrame
    totalUs += us
    if (cf.functionName === "(idle)") {
      idleUs += us
      continue
    }
    if (cf.functionName === "(garbage collector)") gcUs += us
    const mod = cf.url === "" ? cf.functionName : moduleOf(cf.url, cf.lineNumber + 1, cf.columnNumber)
    const where = cf.url === "" ? "" : mod.startsWith("src/") || mod.startsWith("node_modules/") ? mod : `${mod}:${cf.lineNumber + 1}`
    const key = `${cf.functionName || "(anonymous)"}  ${where}`
    byFunction.set(key, (byFunction.get(key) ?? 0) + us)
    byModule.set(mod, (byModule.get(mod) ?? 0) + us)
    const pkg = packageOf(mod)
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us)
  }
  const busyUs = totalUs - idleUs
  const rank = (m) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({
      name,
      ms: Math.round(us / 100) / 10,
      pct: Math.round((1000 * us) / busyUs) / 10
    }))
  return {
    file: path,
    windowed,
    windows: ws.length,
    totalMs: Math.round(totalUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    idleMs: Math.round(idleUs / 1000),
    gcPct: Math.round((1000 * gcUs) / busyUs) / 10,
    functions: rank(byFunction),
    modules: rank(byModule),
    packages: rank(byPackage)
  }
}

export const format = (s, top = 20) => {
  const lines = [
    `profile ${s.file}`,
    `  ${s.windowed ? `samples inside the ${s.windows} measurement window(s) only` : "whole process lifetime (start-up included)"}`,
    `  busy ${s.busyMs} ms of ${s.totalMs} ms sampled (idle ${s.idleMs} ms); GC ${s.gcPct}% of busy`,
    "  self time by package / source folder:"
  ]
  for (const p of s.packages.slice(0, 12)) lines.push(`    ${String(p.pct).padStart(5)}%  ${String(p.ms).padStart(8)} ms  ${p.name}`)
  lines.push("  top functions by self time:")
  for (const f of s.functions.slice(0, top)) lines.push(`    ${String(f.pct).padStart(5)}%  ${String(f.ms).padStart(8)} ms  ${f.name}`)
  lines.push("  top modules by self time:")
  for (const m of s.modules.slice(0, 12)) lines.push(`    ${String(m.pct).padStart(5)}%  ${String(m.ms).padStart(8)} ms  ${m.name}`)
  return lines.join("\n")
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2]
  if (!file) {
    process.stderr.write("usage: node bench/lib/profile.mjs <file.cpuprofile> [--top N]\n")
    process.exit(2)
  }
  const i = process.argv.indexOf("--top")
  const top = i > 0 ? Number(process.argv[i + 1]) : 25
  process.stdout.write(format(summarize(file, top), top) + "\n")
}
