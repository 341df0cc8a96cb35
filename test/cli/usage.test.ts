/**
 * `sluice usage` and the read side of the embedded ledger: the usage files of every worker
 * slot in a data folder, read forward (a line still being appended is counted once it is
 * whole), the query bounds, and the same report from PostgreSQL's `sluice_usage` when
 * `DATABASE_URL` is set (real PostgreSQL; fails, not skips, when it is down).
 */
import { ConfigProvider, Effect, ManagedRuntime } from "effect"
import { execFileSync } from "node:child_process"
import { appendFileSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { type AccountingRecord, UsageSink } from "../../src/accounting/Accounting.ts"
import * as FileSink from "../../src/accounting/FileSink.ts"
import * as FileUsage from "../../src/accounting/FileUsage.ts"
import { decodeQuery, InvalidUsageQuery } from "../../src/accounting/UsageReport.ts"
import type { UsageFlags } from "../../src/cli/Command.ts"
import * as Cli from "../../src/cli/usage.ts"
import { defaults } from "../../src/config/Plan.ts"
import { ModelId, RequestId, TenantId } from "../../src/domain/Ids.ts"

const DATABASE_URL = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const DAY = 86_400_000
const now = Date.now()

const record = (tenant: string, model: string, atMs: number, prompt: number, completion: number): AccountingRecord => ({
  recordId: crypto.randomUUID(),
  requestId: RequestId(crypto.randomUUID()),
  tenant: TenantId(tenant),
  keyId: "k1",
  model: ModelId(model),
  backend: undefined,
  costUsd: 0,
  outcome: "completed",
  reservedTokens: 100,
  estimatedPromptTokens: prompt,
  charged: { promptTokens: prompt, completionTokens: completion, cachedTokens: 1 },
  reported: true,
  attempts: [],
  wastedPromptTokens: 0,
  ttftMs: 5,
  durationMs: 9,
  settledAtMs: atMs
})

const cli = async (flags: Partial<UsageFlags>, env: Record<string, string>) => {
  const out: Array<string> = []
  const err: Array<string> = []
  const code = await Effect.runPromise(
    Cli.run({ tenant: undefined, from: undefined, to: undefined, json: true, ...flags }, {
      out: (l) => void out.push(l),
      err: (l) => void err.push(l)
    }).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env))))
  )
  return { code, out: out.join("\n"), err: err.join("\n") }
}

/** Writes records through the real embedded ledger of worker `slot` and waits until they are in its file. */
const settle = async (dir: string, slot: number, records: ReadonlyArray<AccountingRecord>) => {
  const runtime = ManagedRuntime.make(FileSink.layer(dir, { ...defaults.ledger, drainMs: 2000, slot }))
  await runtime.runPromise(Effect.gen(function*() {
    const sink = yield* UsageSink
    for (const r of records) yield* sink.write(r)
    yield* sink.flushed
  }))
  await runtime.dispose()
}

describe("usage from the embedded ledger files", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-usage-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it("sums every worker's file by tenant, model and day, and reads only what was appended since", async () => {
    await settle(dir, 0, [record("acme", "m", now, 10, 2), record("acme", "m", now - DAY, 20, 3), record("beta", "m", now, 5, 5)])
    await settle(dir, 1, [record("acme", "x", now, 7, 1)])
    const files = await Effect.runPromise(FileUsage.reader(dir))
    const acme = { tenant: TenantId("acme"), fromMs: now - 3 * DAY, toMs: now + 1000 }
    const first = await Effect.runPromise(files.read(acme))
    expect(first.reduce((n, g) => n + g.requests, 0)).toBe(3)
    expect(first.reduce((n, g) => n + g.promptTokens, 0)).toBe(37)
    expect(new Set(first.map((g) => g.day)).size).toBe(2)
    expect(first.every((g) => g.tenant === "acme")).toBe(true)

    // A line still being appended is not counted; once whole, it is (and nothing twice).
    const line = JSON.stringify({ seq: 99, ...record("acme", "m", now, 100, 0) })
    appendFileSync(join(dir, "usage.jsonl"), line.slice(0, 40))
    expect((await Effect.runPromise(files.read(acme))).reduce((n, g) => n + g.requests, 0)).toBe(3)
    appendFileSync(join(dir, "usage.jsonl"), `${line.slice(40)}\nnot json\n`)
    const second = await Effect.runPromise(files.read(acme))
    expect(second.reduce((n, g) => n + g.requests, 0)).toBe(4)
    expect(second.reduce((n, g) => n + g.promptTokens, 0)).toBe(137)
  })

  it("prints the report on the command line (JSON), for one tenant or every tenant", async () => {
    const one = await cli({ tenant: "beta" }, { SLUICE_DATA_DIR: dir })
    expect(one.code).toBe(0)
    const r = JSON.parse(one.out) as { tenant: string; totals: { requests: number; prompt_tokens: number; completion_tokens: number } }
    expect(r.tenant).toBe("beta")
    expect(r.totals).toMatchObject({ requests: 1, prompt_tokens: 5, completion_tokens: 5 })
    const all = JSON.parse((await cli({}, { SLUICE_DATA_DIR: dir })).out) as { by_tenant: ReadonlyArray<{ tenant: string; requests: number }> }
    expect(all.by_tenant.map((t) => [t.tenant, t.requests])).toEqual([["acme", 4], ["beta", 1]])
    const text = await cli({ json: false }, { SLUICE_DATA_DIR: dir })
    expect(text.out).toContain("tenant acme")
    expect(text.out).toContain("model x")
  })

  it("exits 2 on a bad range, naming the flag", async () => {
    const bad = await cli({ from: "last week" }, { SLUICE_DATA_DIR: dir })
    expect(bad.code).toBe(2)
    expect(bad.err).toContain("--from")
  })
})

describe("usage query bounds", () => {
  const params = (q: string) => new URLSearchParams(q)
  it("defaults to the last 30 days, takes dates (to: through that day) and zoned times, refuses the rest", () => {
    expect(decodeQuery(params(""), now, ["from", "to"])).toEqual({ fromMs: now - 30 * DAY, toMs: now, tenant: undefined })
    expect(decodeQuery(params("from=2026-11-01&to=2026-11-30"), now, ["from", "to"])).toEqual({
      fromMs: Date.parse("2026-11-01T00:00:00Z"),
      toMs: Date.parse("2026-12-01T00:00:00Z"),
      tenant: undefined
    })
    expect(decodeQuery(params("from=2026-11-01T10:00:00%2B02:00&to=2026-11-02T00:00:00Z"), now, ["from", "to"])).toMatchObject({
      fromMs: Date.parse("2026-11-01T08:00:00Z")
    })
    for (const q of ["from=2026-11-01T10:00:00", "from=1700000000", "to=2026-02-30x", "from=2025-01-01&to=2026-06-01", "tenant=x", "from=a&from=b"]) {
      expect(decodeQuery(params(q), now, ["from", "to"])).toBeInstanceOf(InvalidUsageQuery)
    }
  })
})

describe("usage from PostgreSQL on the command line", () => {
  const tenant = `cli-${process.pid}-${now}`
  const psql = (query: string) => execFileSync("psql", [DATABASE_URL, "-tA", "-c", query]).toString().trim()
  afterAll(() => {
    psql(`DELETE FROM sluice_usage WHERE tenant = '${tenant}'`)
  })

  it("reads sluice_usage by the rows' settlement day", async () => {
    const rows = [[now, 11, 4], [now, 9, 6], [now - 2 * DAY, 100, 0]].map(([at, p, c]) =>
      `('${crypto.randomUUID()}', 'r', '${tenant}', 'm', 'completed', 1, ${p}, ${c}, 0, true, 0, '[]', 1, to_timestamp(${at! / 1000}))`
    )
    psql(`INSERT INTO sluice_usage (record_id, request_id, tenant, model, outcome, reserved_tokens, prompt_tokens, completion_tokens,
      cached_tokens, reported, wasted_prompt_tokens, attempts, duration_ms, created_at) VALUES ${rows.join(", ")}`)
    const r = await cli({ tenant, from: new Date(now - DAY).toISOString() }, { DATABASE_URL })
    expect(r.err).toBe("")
    expect(r.code).toBe(0)
    const report = JSON.parse(r.out) as { totals: { requests: number; prompt_tokens: number; completion_tokens: number } }
    expect(report.totals).toMatchObject({ requests: 2, prompt_tokens: 20, completion_tokens: 10 })
    const down = await cli({ tenant }, { DATABASE_URL: "postgres://postgres@127.0.0.1:1/none" })
    expect(down.code).toBe(1)
    expect(down.err).toContain("could not be read")
  }, 30_000)
})
