/**
 * Source maps for profiles: the production bundle is split and minified, so a sample at
 * `chunks/chunk-X.mjs:1:48213` only says where it is once mapped back through the map.
 *
 *   buildWithSourceMaps(repoDir, outDir)  runs the package's own `bundle` script (read from
 *     package.json) with its output moved to `outDir` and `--sourcemap` added: the same
 *     code as dist/, plus .map files (used by `--profile` runs)
 *   lookup(file, line, column)            → the original source path, or undefined
 *
 * Decodes the standard VLQ "mappings"; nothing else of the format is needed.
 */
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"

/** Splits a shell-ish command line (single and double quotes, no escapes needed here). */
const words = (line) => {
  const out = []
  let cur = ""
  let quote = null
  let any = false
  for (const ch of line) {
    if (quote !== null) {
      if (ch === quote) quote = null
      else cur += ch
    } else if (ch === '"' || ch === "'") {
      quote = ch
      any = true
    } else if (/\s/.test(ch)) {
      if (any || cur !== "") out.push(cur)
      cur = ""
      any = false
    } else cur += ch
  }
  if (any || cur !== "") out.push(cur)
  return out
}

/**
 * Builds the gateway as `npm run bundle` does, into `outDir`, with source maps. Returns the
 * entry file, or throws with esbuild's message.
 */
export const buildWithSourceMaps = (repoDir, outDir) => {
  const script = JSON.parse(readFileSync(join(repoDir, "package.json"), "utf8")).scripts?.bundle
  if (typeof script !== "string") throw new Error("package.json has no bundle script")
  const argv = words(script)
  // `node scripts/bundle.mjs --outdir=dist` (it takes --outdir and --sourcemap as esbuild does)
  if (argv[0] === "node") {
    const args = [...argv.slice(1).filter((a) => !a.startsWith("--outdir=") && !a.startsWith("--sourcemap")), `--outdir=${outDir}`, "--sourcemap"]
    execFileSync(process.execPath, args, { cwd: repoDir, stdio: ["ignore", "ignore", "pipe"] })
    return join(outDir, "main.mjs")
  }
  if (argv[0] !== "esbuild") throw new Error(`the bundle script starts with neither node nor esbuild: ${script}`)
  let entry
  const args = argv.slice(1).flatMap((a) => {
    if (a.startsWith("--outdir=")) return [`--outdir=${outDir}`]
    if (a.startsWith("--outfile=")) {
      entry = join(outDir, a.slice("--outfile=".length).split("/").pop())
      return [`--outfile=${entry}`]
    }
    if (a.startsWith("--sourcemap")) return []
    return [a]
  })
  args.push("--sourcemap")
  const esbuild = join(repoDir, "node_modules", ".bin", "esbuild")
  execFileSync(existsSync(esbuild) ? esbuild : "esbuild", args, { cwd: repoDir, stdio: ["ignore", "ignore", "pipe"] })
  return entry ?? join(outDir, "main.mjs")
}

const B64 = new Map([..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"].map((c, i) => [c, i]))

/** Decodes mappings into, per generated line, a flat Int32Array of [column, source] pairs. */
const decode = (mappings) => {
  const lines = []
  let source = 0
  for (const line of mappings.split(";")) {
    const segs = []
    let col = 0
    for (const seg of line.split(",")) {
      if (seg === "") continue
      const vals = []
      let value = 0
      let shift = 0
      for (const ch of seg) {
        const d = B64.get(ch)
        value += (d & 31) << shift
        if (d & 32) shift += 5
        else {
          vals.push(value & 1 ? -(value >>> 1) : value >>> 1)
          value = 0
          shift = 0
        }
      }
      col += vals[0]
      if (vals.length >= 4) {
        source += vals[1]
        segs.push(col, source)
      }
    }
    lines.push(Int32Array.from(segs))
  }
  return lines
}

const maps = new Map()

const load = (file) => {
  if (maps.has(file)) return maps.get(file)
  let map
  try {
    const raw = JSON.parse(readFileSync(file + ".map", "utf8"))
    const base = dirname(file)
    map = {
      sources: raw.sources.map((s) => {
        const full = join(base, raw.sourceRoot ?? "", s)
        const m = /(node_modules\/.*|src\/.*)$/.exec(full)
        return m ? m[1] : full
      }),
      lines: decode(raw.mappings)
    }
  } catch {
    map = null
  }
  maps.set(file, map)
  return map
}

/** The original source of a generated position (0-based line and column), if the file has a map. */
export const lookup = (file, line, column) => {
  const map = load(file)
  if (map === null) return undefined
  const segs = map.lines[line]
  if (segs === undefined || segs.length === 0) return undefined
  let lo = 0
  let hi = segs.length / 2 - 1
  let found = -1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (segs[2 * mid] <= column) {
      found = mid
      lo = mid + 1
    } else hi = mid - 1
  }
  return found < 0 ? undefined : map.sources[segs[2 * found + 1]]
}
