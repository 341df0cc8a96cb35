/**
 * How long the journal's segment roll holds the event loop (`npx tsx bench/journal-roll.ts`).
 *
 * Fills 16 MiB segments (the default size) with ~650-byte lines, one `flush` per line as the
 * request path does (one write per loop turn), with the group commit's async fdatasync every
 * 50 ms as in production, and times each `flush` that rolled a segment (the wall time it spent
 * on the event loop). Prints the rolls' times and the median of the other flushes. The roll
 * used to run the full segment's `fdatasync` on the loop; now its sync and close go to
 * libuv's pool.
 */
import { Effect, Exit, Scope } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Journal from "../src/accounting/Journal.ts"

const SEGMENT = 16 * 1024 * 1024
const ROLLS = Number(process.argv[2] ?? 4)
const line = `${JSON.stringify({ t: "k", sq: 1, pad: "x".repeat(620) })}\n`

const dir = mkdtempSync(join(tmpdir(), "sluice-journal-roll-bench-"))
const scope = await Effect.runPromise(Scope.make())
const journal = await Effect.runPromise(
  Journal.open({ dir, segmentBytes: SEGMENT, syncIntervalMs: 50 }, () => []).pipe(Scope.provide(scope))
)
const rolls: Array<number> = []
const others: Array<number> = []
while (rolls.length < ROLLS) {
  // a burst of 200 lines, then a yield so the group commit's fdatasync runs as it would
  for (let i = 0; i < 200; i++) {
    journal.append(line)
    const before = journal.stats().segments
    const t = performance.now()
    journal.flush()
    const ms = performance.now() - t
    if (journal.stats().segments > before) rolls.push(ms)
    else if (others.length < 100_000) others.push(ms)
  }
  await new Promise((r) => setTimeout(r, 1))
}
await Effect.runPromise(Scope.close(scope, Exit.void))
rmSync(dir, { recursive: true, force: true })
others.sort((a, b) => a - b)
console.log(`rolls (ms on the event loop): ${rolls.map((r) => r.toFixed(2)).join(", ")}`)
console.log(`other flushes: median ${others[others.length >> 1]!.toFixed(4)} ms, p99.9 ${others[Math.floor(others.length * 0.999)]!.toFixed(3)} ms`)
