/**
 * Summarizes a V8 .heapsnapshot (from `--heap` runs): the heap's total self size and the
 * top object kinds (constructor or closure name) by total self size and count, so "what
 * does each open stream keep alive" reads as a list. Reads the snapshot format from its
 * own meta section; never starts anything.
 *
 *   node bench/lib/heap.mjs bench/results/profiles/<file>.heapsnapshot [--top 30] [--per N]
 *
 * `--per N` also prints bytes and count per unit (e.g. per open stream).
 */
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

export const summarize = (path, top = 30) => {
  const snap = JSON.parse(readFileSync(path, "utf8"))
  const meta = snap.snapshot.meta
  const fields = meta.node_fields
  const width = fields.length
  const iType = fields.indexOf("type")
  const iName = fields.indexOf("name")
  const iSize = fields.indexOf("self_size")
  const types = meta.node_types[iType]
  const nodes = snap.nodes
  const strings = snap.strings
  const byKind = new Map()
  let total = 0
  let count = 0
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + iType]]
    const size = nodes[i + iSize]
    total += size
    count++
    let name = type === "object" || type === "closure" || type === "native" ? strings[nodes[i + iName]] : `(${type})`
    if (type === "closure") name = `${name || "(anonymous)"} (closure)`
    if (name.length > 80) name = name.slice(0, 77) + "..."
    const e = byKind.get(name) ?? { bytes: 0, count: 0 }
    e.bytes += size
    e.count++
    byKind.set(name, e)
  }
  const kinds = [...byKind.entries()].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top).map(([name, e]) => ({ name, ...e }))
  return { file: path, totalBytes: total, objects: count, kinds }
}

export const format = (s, per) => {
  const mb = (b) => (b / 2 ** 20).toFixed(1)
  const lines = [`heap ${s.file}`, `  ${mb(s.totalBytes)} MiB in ${s.objects} objects (self sizes)`]
  for (const k of s.kinds) {
    const extra = per ? `   ${(k.bytes / per).toFixed(0).padStart(7)} B/unit ${(k.count / per).toFixed(1).padStart(6)}/unit` : ""
    lines.push(`  ${mb(k.bytes).padStart(8)} MiB ${String(k.count).padStart(9)}  ${k.name}${extra}`)
  }
  return lines.join("\n")
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2]
  if (!file) {
    process.stderr.write("usage: node bench/lib/heap.mjs <file.heapsnapshot> [--top N] [--per N]\n")
    process.exit(2)
  }
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(name)
    return i > 0 ? Number(process.argv[i + 1]) : dflt
  }
  process.stdout.write(format(summarize(file, arg("--top", 30)), arg("--per", undefined)) + "\n")
}
