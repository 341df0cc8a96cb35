/**
 * The repetition detector's cost per token and per stream, against the detector it replaced
 * (an 8-gram counter over the last 256 tokens, kept here verbatim as the baseline) in the
 * same run: medians of repeats, ratios against the baseline.
 *
 *   npx tsx --expose-gc bench/repetition.ts        (npm run bench:repetition)
 *
 * Workloads (engine-like tokens, one per push, as the relay feeds it): varied prose; a JSON
 * array of similar objects (legitimate repetition). Neither triggers either detector, so
 * every token is processed. Memory: heap and array buffers per detector after 300 tokens,
 * 2,000 detectors kept.
 */
import { defaultRepetitionConfig, RepetitionDetector } from "../src/resilience/Repetition.ts"

/** The detector before issue 9 (src/resilience/Repetition.ts at d749a15), the baseline. */
class NgramCounter {
  private readonly tokens: Array<string>
  private readonly keys: Array<string | undefined>
  private readonly counts = new Map<string, number>()
  private seen = 0
  constructor(private readonly window: number, private readonly ngram: number, private readonly maxRepeats: number) {
    this.tokens = new Array<string>(window)
    this.keys = new Array<string | undefined>(window)
  }
  push(token: string): boolean {
    const w = this.window
    const slot = this.seen % w
    const leaving = this.keys[slot]
    if (leaving !== undefined) {
      const c = this.counts.get(leaving)! - 1
      if (c === 0) this.counts.delete(leaving)
      else this.counts.set(leaving, c)
      this.keys[slot] = undefined
    }
    this.tokens[slot] = token
    this.seen++
    if (this.seen < this.ngram) return false
    let key = ""
    for (let i = this.ngram; i >= 1; i--) key += this.tokens[(this.seen - i) % w] + "\u0000"
    const startSlot = (this.seen - this.ngram) % w
    this.keys[startSlot] = key
    const count = (this.counts.get(key) ?? 0) + 1
    this.counts.set(key, count)
    return count >= this.maxRepeats
  }
}

const tokens = (text: string): Array<string> => text.match(/ ?[A-Za-z0-9_]+| ?[^A-Za-z0-9_\s]|\n|\s+/g) ?? []
const words = ["engine", "cache", "token", "batch", "queue", "block", "stream", "prefix", "model", "router", "the", "a", "of"]
let x = 7
const rand = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32
const prose = tokens(Array.from({ length: 20_000 }, () => (rand() < 0.08 ? "." : " " + words[Math.floor(rand() * words.length)])).join(""))
const json = tokens(Array.from({ length: 1_000 }, (_, i) => `  {"id": ${i}, "name": "item-${i * 7 % 101}", "ok": true}`).join(",\n"))

interface Detector { push(t: string): boolean }
const make = {
  before: (): Detector => new NgramCounter(256, 8, 12),
  after: (): Detector => new RepetitionDetector(defaultRepetitionConfig),
  none: (): Detector => ({ push: (t: string) => t.length < 0 })
}

/** ns per token over `stream`, fed in streams of 500 tokens (a fresh detector each). */
const perToken = (create: () => Detector, stream: ReadonlyArray<string>): number => {
  const start = process.hrtime.bigint()
  let fired = 0
  for (let at = 0; at < stream.length; at += 500) {
    const d = create()
    const end = Math.min(stream.length, at + 500)
    for (let i = at; i < end; i++) if (d.push(stream[i]!)) fired++
  }
  const ns = Number(process.hrtime.bigint() - start)
  if (fired > 0 && create !== make.before) throw new Error("the workload triggered the detector")
  return ns / stream.length
}

const median = (xs: Array<number>) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const gc = (globalThis as { gc?: () => void }).gc
const heapPerDetector = (create: () => Detector): number | undefined => {
  if (gc === undefined) return undefined
  const used = () => {
    const m = process.memoryUsage()
    return m.heapUsed + m.arrayBuffers
  }
  gc()
  const before = used()
  const kept: Array<Detector> = []
  for (let n = 0; n < 2_000; n++) {
    const d = create()
    for (let i = 0; i < 300; i++) d.push(prose[(n * 300 + i) % prose.length]!)
    kept.push(d)
  }
  gc()
  const bytes = (used() - before) / kept.length
  return kept.length > 0 ? bytes : undefined
}

const REPEATS = 9
const rows: Array<[string, string, number, number]> = []
for (const [name, stream] of [["prose", prose], ["json array", json]] as const) {
  for (let warm = 0; warm < 3; warm++) for (const f of Object.values(make)) perToken(f, stream)
  const runs = { before: [] as Array<number>, after: [] as Array<number>, none: [] as Array<number> }
  for (let r = 0; r < REPEATS; r++) {
    for (const k of ["before", "after", "none"] as const) runs[k].push(perToken(make[k], stream))
  }
  const before = median(runs.before)
  const after = median(runs.after)
  const none = median(runs.none)
  rows.push([name, "before (8-gram counter)", before, 1])
  rows.push([name, "after (period runs)", after, after / before])
  rows.push([name, "feeding loop only", none, none / before])
}

console.log(`repetition detector, ${prose.length} prose tokens / ${json.length} JSON tokens, median of ${REPEATS}`)
console.log("workload     detector                  ns/token   ratio to before")
for (const [w, d, ns, ratio] of rows) console.log(`${w.padEnd(12)} ${d.padEnd(25)} ${ns.toFixed(1).padStart(8)}   ${ratio.toFixed(2)}`)
const memBefore = heapPerDetector(make.before)
const memAfter = heapPerDetector(make.after)
if (memBefore !== undefined && memAfter !== undefined) {
  console.log(`memory per stream after 300 tokens: before ${Math.round(memBefore)} B, after ${Math.round(memAfter)} B (${(memAfter / memBefore).toFixed(2)}×)`)
} else {
  console.log("heap per stream: run with --expose-gc to measure")
}
