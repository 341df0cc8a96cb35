/**
 * Live heap per idle keep-alive connection: starts the mock and the Sluice bundle (unpinned,
 * heap snapshots on SIGUSR2, `bench/config/overhead.yaml`), warms it on 8 connections, takes a
 * snapshot (a snapshot runs a full GC first), opens N more connections, sends one unary
 * completion on each (100 at a time), leaves them open and idle for 2 s, takes a second snapshot,
 * and prints the difference per connection and the request fibers still alive.
 *
 *   npx node bench/idle-connections.mjs [N=2000] [--bundle dist/main.mjs]
 *
 * Meant for before/after figures (two bundles, alternated); needs no Postgres or Redis.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { requestBytes, Connection } from "./lib/client.mjs"
import { HEADERS } from "./lib/groups.mjs"
import { summarize } from "./lib/heap.mjs"
import { MODEL, startMock } from "./lib/mock.mjs"
import { installCleanup, rssBytes } from "./lib/procs.mjs"
import { startTarget, writeSluiceConfig } from "./lib/targets.mjs"
installCleanup()
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name)
  return i > 0 ? process.argv[i + 1] : dflt
}
const n = Number(process.argv[2] !== undefined && !process.argv[2].startsWith("--") ? process.argv[2] : 2000)
const bundle = arg("--bundle", undefined)
const workDir = mkdtempSync(join(tmpdir(), "sluice-idle-connections-"))
process.on("exit", () => rmSync(workDir, { recursive: true, force: true }))
const mock = await startMock()
const configPath = writeSluiceConfig(workDir, mock.url)
const t = await startTarget("sluice", { mock, workDir, configPath, cpus: undefined, bundle, label: "idle", stamp: "x", profile: { cpu: false, heap: true, dir: join(workDir, "heap") } })
const body = JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Write one short sentence about rivers and the sea." }], max_tokens: 32 })
const one = (conn, i) => new Promise((resolve) => conn.send(requestBytes("POST", "/v1/chat/completions", `${t.host}:${t.port}`, body, [...HEADERS, `x-request-id: c-${i}`]), { wantsBody: true, onEnd: (x, status) => resolve(status), onError: () => resolve(-1) }))
const snap = async () => { const f = await t.heapSnapshot(); const s = summarize(f, 100000); rmSync(f); const fibers = s.kinds.find((k) => k.name === "FiberImpl")?.count ?? 0; return { mib: s.totalBytes / 2 ** 20, fibers, objects: s.objects } }
// warm the gateway on a few connections
const warm = Array.from({ length: 8 }, () => new Connection(t.host, t.port, () => {}, () => {}))
await new Promise((r) => setTimeout(r, 300))
for (let k = 0; k < 50; k++) await Promise.all(warm.map((c, i) => one(c, `w${k}-${i}`)))
await new Promise((r) => setTimeout(r, 1500))
const a = await snap()
const conns = Array.from({ length: n }, () => new Connection(t.host, t.port, () => {}, () => {}))
await new Promise((r) => setTimeout(r, 1000))
let bad = 0
for (let i = 0; i < n; i += 100) { const st = await Promise.all(conns.slice(i, i + 100).map((c, j) => one(c, i + j))); bad += st.filter((x) => x !== 200).length }
await new Promise((r) => setTimeout(r, 2000))
const b = await snap()
console.log(`${n} idle keep-alive connections after one request each (${bad} not 200): live heap ${a.mib.toFixed(1)} -> ${b.mib.toFixed(1)} MiB, ${((b.mib - a.mib) * 1024 * 1024 / n / 1024).toFixed(2)} KB per connection; FiberImpl ${a.fibers} -> ${b.fibers}; RSS ${(rssBytes(t.pid) / 2 ** 20).toFixed(0)} MiB`)
for (const c of [...conns, ...warm]) c.destroy()
await t.stop(); process.exit(0)
