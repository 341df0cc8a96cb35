/**
 * Does V8's own memory reducer run in this Node? (bench/README.md, round 2, "Idle memory".)
 * Allocates ~200 MB of short-lived objects, then idles 20 s with a small timer, and prints the
 * reducer's own trace. In Node 24.21 it prints "Memory reducer: high alloc" every 8 s and never
 * starts a GC unless a vm context was created first (`--vm`): then "low alloc" and "started GC".
 * Sluice's idle memory reducer (src/observability/IdleMemory.ts) does not depend on it; re-run
 * this on a Node upgrade to see whether V8's reducer works on its own.
 *
 *   node --trace-memory-reducer --trace-mutator-utilization bench/memory-reducer.mjs [--vm]
 */
import { runInNewContext } from "node:vm"

if (process.argv.includes("--vm")) runInNewContext("1")
let keep = []
for (let i = 0; i < 4e6; i++) {
  keep.push({ a: i, b: `x${i}` })
  if (keep.length > 1e6) keep = []
}
keep = null
const mib = () => (process.memoryUsage().rss / 2 ** 20).toFixed(1)
console.log(`RSS after the allocations: ${mib()} MiB`)
setInterval(() => Array.from({ length: 100 }, (_, i) => ({ i })), 100).unref()
setTimeout(() => console.log(`RSS after 20 s idle: ${mib()} MiB`), 20_000)
