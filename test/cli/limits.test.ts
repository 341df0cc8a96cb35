/**
 * `sluice limits` and `sluice prices` against a real embedded database in a temporary data
 * folder shared with a running gateway graph: a limit set on the command line reaches the
 * running gateway (which re-reads the database every 5 s) and refuses requests over it; a
 * price set there prices the ledger rows; bad values are usage errors that store nothing.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Cli from "../../src/cli/keys.ts"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

const dir = mkdtempSync(join(tmpdir(), "sluice-cli-limits-"))
process.env["SLUICE_DATA_DIR"] = dir

const cli = async (argv: ReadonlyArray<string>) => {
  const out: Array<string> = []
  const err: Array<string> = []
  const code = await Cli.main(argv, { out: (l) => void out.push(l), err: (l) => void err.push(l) })
  return { code, out: out.join("\n"), err: err.join("\n") }
}

describe("sluice limits / sluice prices", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway
  let key = ""

  const call = () =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: "llama-3.1-8b", messages: [{ role: "user", content: "hi" }], max_tokens: 5 })
    })

  beforeAll(async () => {
    engine = await Fake.start(() => ({ usage: { prompt_tokens: 10, completion_tokens: 4 } }))
    gw = await startGateway(`
backends:
  - { id: a, url: ${engine.url}, models: [llama-3.1-8b] }
auth: { cache_ttl: 200ms }
`)
    const created = await cli(["keys", "create", "--tenant", "acme", "--name", "ci"])
    key = /key:\s+(sk-sluice-\S+)/.exec(created.out)?.[1] ?? ""
    expect(key).not.toBe("")
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it("sets a price and a limit that the running gateway applies within its refresh", async () => {
    const price = await cli(["prices", "set", "llama-3.1-8b", "--input", "2", "--output", "10"])
    expect(price.code).toBe(0)
    expect(price.out).toContain("input $2")
    expect((await cli(["prices", "list", "--json"])).out).toContain(`"model":"llama-3.1-8b"`)
    const set = await cli(["limits", "set", "--tenant", "acme", "--requests-per-minute", "2", "--spend-per-month", "5"])
    expect(set.code).toBe(0)
    expect(set.out).toContain("requests_per_minute: 2")
    expect(set.out).toContain("spend_per_month: $5")
    const shown = await cli(["limits", "show", "--tenant", "acme", "--json"])
    expect(JSON.parse(shown.out)).toEqual({ scope: "tenant", subject: "acme", limits: { requests_per_minute: 2, spend_per_month: 5 } })
    // The gateway re-reads the database every 5 s: within that, requests start being refused.
    const status = await eventually(async () => {
      const res = await call()
      await res.text()
      return res.status
    }, (s) => s === 429, 12_000)
    expect(status).toBe(429)
    // The requests served after the price was read cost 10 × $2 + 4 × $10 per million.
    const snap = await eventually(() => gw.run(gw.sink.snapshot), (s) => s.recent.some((r) => r.costUsd > 0), 2000)
    const priced = snap.recent.filter((r) => r.costUsd > 0)
    for (const r of priced) expect(r.costUsd).toBeCloseTo(0.00006, 12)
  }, 30_000)

  it("lifts a limit with none, and refuses bad values without storing them", async () => {
    expect((await cli(["limits", "set", "--tenant", "acme", "--requests-per-minute", "-3"])).code).toBe(2)
    expect((await cli(["limits", "set", "--tenant", "acme"])).code).toBe(2)
    expect((await cli(["limits", "set", "--key", "nosuchkey123", "--requests-per-minute", "3"])).code).toBe(1)
    expect((await cli(["limits", "set", "--tenant", "acme", "--model", "nope", "--tokens-per-day", "3"])).code).toBe(2)
    const lifted = await cli(["limits", "set", "--tenant", "acme", "--requests-per-minute", "none", "--json"])
    expect(lifted.code).toBe(0)
    expect(JSON.parse(lifted.out)).toEqual({ scope: "tenant", subject: "acme", limits: { spend_per_month: 5 } })
  })
})
