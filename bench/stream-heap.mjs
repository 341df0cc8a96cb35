/**
 * Live JS heap per open stream, without pinning or a full bench run: starts the mock (hold
 * mode: one content event at once, then one every 5 s), the Sluice bundle unpinned with
 * heap snapshots on SIGUSR2, opens streams up to each level, takes a snapshot at each
 * (a snapshot runs a full GC first), and prints the difference between the first and the
 * last level per stream, by object kind, plus RSS at each level.
 *
 *   npx node bench/stream-heap.mjs [--levels 500,2000] [--bundle dist/main.mjs] [--top 25] [--save DIR] [--prompt-chars N]
 *
 * Meant for before/after figures of per-stream memory changes (the same script, two bundles,
 * alternated); RSS figures come from `npm run bench -- --only open-streams`.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { requestBytes } from "./lib/client.mjs"
import { HEADERS } from "./lib/groups.mjs"
import { summarize } from "./lib/heap.mjs"
import { MODEL, startMock } from "./lib/mock.mjs"
import { installCleanup, rssBytes } from "./lib/procs.mjs"
import { holdStreams } from "./lib/streams.mjs"
import { startTarget, writeSluiceConfig } from "./lib/targets.mjs"

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name)
  return i > 0 ? process.argv[i + 1] : dflt
}
const levels = arg("--levels", "500,2000").split(",").map(Number)
const bundle = arg("--bundle", undefined)
const top = Number(arg("--top", "25"))
/** Pads the user message to this many characters (real prompts are KBs; the bench's is ~80). */
const promptChars = Number(arg("--prompt-chars", "0"))
const keep = process.argv.includes("--keep")
/** Keeps the snapshots in this folder (for `bench/lib/heap.mjs` or DevTools) instead of deleting them. */
const save = arg("--save", undefined)

installCleanup()
if (save) mkdirSync(save, { recursive: true })
const workDir = mkdtempSync(join(tmpdir(), "sluice-stream-heap-"))
process.on("exit", () => { if (!keep) rmSync(workDir, { recursive: true, force: true }) })
const mock = await startMock()
mock.setMode({ kind: "hold", holdIntervalMs: 5000 })
const configPath = writeSluiceConfig(workDir, mock.url)
const t = await startTarget("sluice", { mock, workDir, configPath, cpus: undefined, profile: { cpu: false, heap: true, dir: join(workDir, "heap") }, bundle, label: "stream-heap", stamp: "x" })
const messages = [
  { role: "system", content: "You are a concise assistant." },
  { role: "user", content: "Write one short sentence about rivers and the sea." }
]
if (promptChars > 0) {
  const words = "the river runs to the sea and the sea returns as rain over hills and towns ".repeat(Math.ceil(promptChars / 70))
  messages[1].content = `${words.slice(0, promptChars)} Write one short sentence about rivers and the sea.`
}
const body = JSON.stringify({ model: MODEL, messages, max_tokens: 64, stream: true, user: "bench-stream" })
const headers = [...HEADERS].map((h) => (h.startsWith("accept:") ? "accept: text/event-stream" : h))
const snaps = []
try {
  await new Promise((r) => setTimeout(r, 1000))
  const r = await holdStreams({
    host: t.host,
    port: t.port,
    makeBytes: (k) => requestBytes("POST", "/v1/chat/completions", `${t.host}:${t.port}`, body, [...headers, `x-request-id: heap-${k}`]),
    levels,
    openRate: 1000,
    settleMs: 1000,
    mock,
    atLevel: async (level, state) => {
      const file = await t.heapSnapshot()
      const s = summarize(file, 100000)
      const rss = rssBytes(t.pid)
      snaps.push({ level, open: state.open, failed: state.failed, rss, s })
      if (save) renameSync(file, join(save, `stream-heap-${level}.heapsnapshot`))
      else rmSync(file, { force: true })
      process.stdout.write(`${level}: ${state.open} open, ${state.failed} failed${state.failed ? ` (${JSON.stringify(state.reasons)})` : ""}; heap ${(s.totalBytes / 2 ** 20).toFixed(1)} MiB in ${s.objects} objects; RSS ${(rss / 2 ** 20).toFixed(1)} MiB (after snapshot)\n`)
    }
  })
  process.stdout.write(`closed in ${r.closeMs.toFixed(0)} ms, upstream left open ${r.leftOpen}\n`)
} finally {
  await t.stop()
  await mock.stop?.()
}
const a = snaps[0]
const b = snaps[snaps.length - 1]
const n = b.open - a.open
const per = (x) => (x / n).toFixed(0)
process.stdout.write(`\nper stream (${a.open} → ${b.open} open): ${per(b.s.totalBytes - a.s.totalBytes)} B live heap, ${((b.s.objects - a.s.objects) / n).toFixed(0)} objects\n`)
const kinds = new Map()
for (const k of a.s.kinds) kinds.set(k.name, { bytes: -k.bytes, count: -k.count })
for (const k of b.s.kinds) {
  const e = kinds.get(k.name) ?? { bytes: 0, count: 0 }
  e.bytes += k.bytes
  e.count += k.count
  kinds.set(k.name, e)
}
const rows = [...kinds.entries()].sort((x, y) => y[1].bytes - x[1].bytes).slice(0, top)
for (const [name, e] of rows) process.stdout.write(`  ${per(e.bytes).padStart(7)} B ${(e.count / n).toFixed(1).padStart(6)}/stream  ${name}\n`)
process.exit(0)
