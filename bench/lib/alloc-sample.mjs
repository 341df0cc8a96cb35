/**
 * Allocation sampling of a running gateway through its inspector, objects the GC already
 * collected included (what `--heap-prof` leaves out: it keeps only what is still live), and a
 * summary by allocating function and by the nearest Sluice function on the stack. Start the
 * gateway with `--node-options "--inspect=127.0.0.1:9339"` (add `--profile` so the build has
 * source maps), then during a load window:
 *
 *   npx node bench/lib/alloc-sample.mjs sample 9339 3000 /tmp/alloc.heapprofile
 *   npx node bench/lib/alloc-sample.mjs summary /tmp/alloc.heapprofile [top]
 *
 * `live` instead of `sample` keeps only what is still allocated when sampling stops: what
 * survived the scavenges of the window (promoted, or not yet collected). `promoted` keeps what
 * survived the scavenges, whether a mark-compact collected it later or not: what a scavenge
 * had to copy (its pause grows with that), and what fills the old generation.
 */
import { readFileSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import WebSocket from "ws"
import { lookup } from "./sourcemap.mjs"

const sample = async (port, ms, out, mode = "sample") => {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()
  const ws = new WebSocket(list[0].webSocketDebuggerUrl)
  let id = 0
  const pending = new Map()
  const call = (method, params = {}) =>
    new Promise((resolve) => {
      const i = ++id
      pending.set(i, resolve)
      ws.send(JSON.stringify({ id: i, method, params }))
    })
  ws.on("message", (data) => {
    const m = JSON.parse(data)
    if (m.id !== undefined && pending.has(m.id)) {
      pending.get(m.id)(m.result)
      pending.delete(m.id)
    }
  })
  await new Promise((resolve) => ws.once("open", resolve))
  await call("HeapProfiler.enable")
  await call("HeapProfiler.startSampling", {
    samplingInterval: 8192,
    includeObjectsCollectedByMajorGC: mode === "sample" || mode === "promoted",
    includeObjectsCollectedByMinorGC: mode === "sample"
  })
  await new Promise((resolve) => setTimeout(resolve, ms))
  if (mode === "promoted") {
    // Two scavenges now, so what was allocated since the last one and died is not counted as
    // having survived (gc from a vm context, as src/observability/IdleMemory.ts gets it).
    await call("Runtime.evaluate", {
      expression: `(() => { process.getBuiltinModule("v8").setFlagsFromString("--expose-gc"); const gc = process.getBuiltinModule("vm").runInNewContext("gc"); gc({ type: "minor" }); gc({ type: "minor" }); return "ok" })()`
    })
  }
  const { profile } = await call("HeapProfiler.stopSampling")
  writeFileSync(out, JSON.stringify(profile))
  ws.close()
  console.log(`saved ${out}`)
}

const summary = (path, top) => {
  const p = JSON.parse(readFileSync(path, "utf8"))
  const modOf = (cf) =>
    cf.url === ""
      ? "(native)"
      : cf.url.startsWith("node:")
      ? "node:internal"
      : lookup(cf.url.startsWith("file://") ? fileURLToPath(cf.url) : cf.url, cf.lineNumber, cf.columnNumber) ?? cf.url
  const bytes = new Map()
  for (const s of p.samples) bytes.set(s.nodeId, (bytes.get(s.nodeId) ?? 0) + s.size)
  const bySelf = new Map()
  const byNearest = new Map()
  let total = 0
  const walk = (node, stack) => {
    const mod = modOf(node.callFrame)
    const key = `${node.callFrame.functionName || "(anonymous)"}  ${mod}`
    const self = bytes.get(node.id) ?? 0
    if (self > 0) {
      total += self
      bySelf.set(key, (bySelf.get(key) ?? 0) + self)
      let near = mod.startsWith("src/") ? key : undefined
      for (let i = stack.length - 1; near === undefined && i >= 0; i--) if (stack[i].mod.startsWith("src/")) near = stack[i].key
      near ??= "(no src frame)"
      byNearest.set(near, (byNearest.get(near) ?? 0) + self)
    }
    for (const child of node.children ?? []) walk(child, [...stack, { mod, key }])
  }
  walk(p.head, [])
  console.log(`sampled ${(total / 1e6).toFixed(1)} MB`)
  const show = (title, m) => {
    console.log(title)
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${((100 * v) / total).toFixed(1).padStart(6)}%  ${(v / 1e6).toFixed(2).padStart(7)} MB  ${k}`)
    }
  }
  show("by allocating function", bySelf)
  show("by nearest src function on the stack", byNearest)
}

const [mode, ...rest] = process.argv.slice(2)
if (mode === "sample" || mode === "live" || mode === "promoted") await sample(rest[0], Number(rest[1] ?? 3000), rest[2] ?? "alloc.heapprofile", mode)
else if (mode === "summary") summary(rest[0], Number(rest[1] ?? 30))
else console.log("usage: alloc-sample.mjs sample|live|promoted PORT MS OUT | summary FILE [TOP]")
