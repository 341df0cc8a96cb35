/**
 * What the durable ledger costs a request: CPU per request of the admission entry and the
 * settlement (journal lines, batched writes, group-commit fdatasync, the store's own
 * writes), against the in-memory sink measured in the same run. Everything runs in this
 * process, so process CPU time (all threads: the fdatasync and file writes of libuv's pool
 * count) divided by requests is the cost. Requests arrive paced, one millisecond timer
 * tick at a time, `perTick` per tick: 1 (1,000 req/s, a journal write per request, the
 * worst case for batching) and 8 (8,000 req/s, more than one gateway process serves,
 * where several requests share a write). Medians over repeats.
 *
 *   npm run bench:ledger                 # 10,000 requests x 3 repeats per figure
 *   npm run bench:ledger -- 20000 5      # requests, repeats
 */
import { Effect, Layer, ManagedRuntime } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type AccountingRecord, type Admission, UsageSink } from "../src/accounting/Accounting.ts"
import * as FileSink from "../src/accounting/FileSink.ts"
import * as Ledger from "../src/accounting/Ledger.ts"
import { defaults } from "../src/config/Plan.ts"
import { BackendId, ModelId, RequestId, TenantId } from "../src/domain/Ids.ts"

const requests = Number(process.argv[2] ?? 10_000)
const repeats = Number(process.argv[3] ?? 3)

const admission = (i: number, recordId: string): Admission => ({
  recordId,
  requestId: RequestId(`bench-${i}`),
  tenant: TenantId("default"),
  model: ModelId("llama-3.1-8b"),
  reservedTokens: 300,
  estimatedPromptTokens: 40,
  admittedAtMs: 1_700_000_000_000 + i
})

const record = (a: Admission): AccountingRecord => ({
  recordId: a.recordId,
  requestId: a.requestId,
  tenant: a.tenant,
  model: a.model,
  backend: BackendId("h100-a"),
  outcome: "completed",
  reservedTokens: a.reservedTokens,
  estimatedPromptTokens: a.estimatedPromptTokens,
  charged: { promptTokens: 40, completionTokens: 120, cachedTokens: 32 },
  costUsd: 0,
  reported: true,
  attempts: [],
  wastedPromptTokens: 0,
  ttftMs: 41,
  settledAtMs: a.admittedAtMs + 100,
  durationMs: 812
})

const tick = () => new Promise<void>((r) => setTimeout(r, 1))

/** CPU µs per request through `layer`'s sink, including the flush of what it accepted. */
const measure = async (layer: Layer.Layer<UsageSink, unknown>, perTick: number): Promise<number> => {
  const runtime = ManagedRuntime.make(layer)
  const sink = await runtime.runPromise(Effect.gen(function*() {
    return yield* UsageSink
  }))
  // Warm-up (JIT, first segment, first store write).
  for (let i = 0; i < 2000; i++) {
    const a = admission(i, crypto.randomUUID())
    Effect.runSync(sink.admit(a))
    Effect.runSync(sink.write(record(a)))
    if ((i + 1) % perTick === 0) await tick()
  }
  await runtime.runPromise(sink.flushed)
  const cpu0 = process.cpuUsage()
  for (let i = 0; i < requests; i++) {
    const a = admission(i, crypto.randomUUID())
    Effect.runSync(sink.admit(a))
    Effect.runSync(sink.write(record(a)))
    if ((i + 1) % perTick === 0) await tick()
  }
  await runtime.runPromise(sink.flushed)
  const cpu = process.cpuUsage(cpu0)
  await runtime.dispose()
  return (cpu.user + cpu.system) / requests
}

/** A store that accepts every batch at once (the journal and the queue alone). */
const nullStore: Ledger.Store = { name: "null", committedSeq: 0, write: () => Effect.void }

const syncIntervalMs = Number(process.env["LEDGER_SYNC_MS"] ?? defaults.ledger.syncIntervalMs)

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const main = async () => {
  const options = { ...defaults.ledger, syncIntervalMs, drainMs: 5000 }
  console.log(`ledger cost: ${requests} requests x ${repeats} repeats, CPU µs per request (median)`)
  console.log("   req/s | memory sink | journal only | file ledger | journal - memory | file - memory")
  for (const perTick of [1, 8]) {
    const figures = { memory: [] as Array<number>, journal: [] as Array<number>, file: [] as Array<number> }
    for (let r = 0; r < repeats; r++) {
      const dirs = [mkdtempSync(join(tmpdir(), "sluice-bench-ledger-")), mkdtempSync(join(tmpdir(), "sluice-bench-ledger-"))]
      figures.memory.push(await measure(UsageSink.memory(), perTick))
      figures.journal.push(await measure(
        Layer.effect(UsageSink, Ledger.make(nullStore, { ...options, journalDir: join(dirs[0]!, "journal") })),
        perTick
      ))
      figures.file.push(await measure(FileSink.layer(dirs[1]!, options), perTick))
      for (const d of dirs) rmSync(d, { recursive: true, force: true })
    }
    const m = median(figures.memory)
    const j = median(figures.journal)
    const f = median(figures.file)
    console.log(
      `${String(perTick * 1000).padStart(8)} | ${m.toFixed(1).padStart(11)} | ${j.toFixed(1).padStart(12)} | ${f.toFixed(1).padStart(11)} | ${
        (j - m).toFixed(1).padStart(16)
      } | ${(f - m).toFixed(1).padStart(13)}`
    )
  }
}

void main()
