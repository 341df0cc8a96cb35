/**
 * The plan diff a reload reports: models and backends added, removed and changed, the
 * sections new requests see, and every start-only setting named as needing a restart
 * (never silently dropped). Structural equality covers maps, sets and redacted secrets.
 */
import { Redacted } from "effect"
import { describe, expect, it } from "vitest"
import * as Diff from "../../src/config/Diff.ts"
import { planFromYaml } from "../support/Gateway.ts"

const base = `
backends:
  - { id: a, url: "http://127.0.0.1:9/v1", models: [m] }
  - { id: b, url: "http://127.0.0.1:9/v1", models: [m] }
`

describe("Diff", () => {
  it("the same file is no change", async () => {
    const d = Diff.diff(await planFromYaml(base), await planFromYaml(base))
    expect(Diff.isEmpty(d)).toBe(true)
  })

  it("names added, removed and changed models and backends, and the live sections", async () => {
    const before = await planFromYaml(base)
    const after = await planFromYaml(`
backends:
  - { id: b, url: "http://127.0.0.1:9/v1", models: [m], weight: 3 }
  - { id: c, url: "http://127.0.0.1:9/v1", models: [m, m2] }
routing: { policy: ordered }
timeouts: { first_token: 5s }
limits: { max_messages: 10 }
`)
    const d = Diff.diff(before, after)
    expect(d.backends).toEqual({ added: ["c"], removed: ["a"], changed: ["b"] })
    expect(d.models).toEqual({ added: ["m2"], removed: [], changed: [] })
    expect([...d.live].sort()).toEqual(["backends", "limits", "models", "routing", "timeouts"])
    expect(d.needsRestart).toEqual([])
  })

  it("names every start-only setting as needing a restart", async () => {
    const before = await planFromYaml(base)
    const after = await planFromYaml(`${base}
server: { port: 9999 }
budgets: { tokens_per_window: 100 }
limits: { max_body_bytes: 1MiB }
timeouts: { drain: 5s }
routing: { seed: 3, session_ttl: 1m }
retries: { budget_ratio: 0.5, max_attempts: 2 }
`)
    const d = Diff.diff(before, after)
    expect([...d.needsRestart].sort()).toEqual([
      "budgets",
      "limits.max_body_bytes",
      "retries.budget_ratio",
      "routing.seed",
      "routing.session_ttl",
      "server",
      "timeouts.drain"
    ])
    // retries.max_attempts is read per request: live.
    expect(d.live).toContain("retries")
    expect(d.live).not.toContain("limits")
  })

  it("compares maps, sets, arrays and redacted secrets by value", () => {
    expect(Diff.equal(new Map([["a", [1, { x: 2 }]]]), new Map([["a", [1, { x: 2 }]]]))).toBe(true)
    expect(Diff.equal(new Map([["a", 1]]), new Map([["a", 2]]))).toBe(false)
    expect(Diff.equal(new Set(["a"]), new Set(["b"]))).toBe(false)
    expect(Diff.equal(Redacted.make("k1"), Redacted.make("k1"))).toBe(true)
    expect(Diff.equal(Redacted.make("k1"), Redacted.make("k2"))).toBe(false)
    expect(Diff.equal({ a: 1, b: undefined }, { a: 1 })).toBe(true)
    expect(Diff.equal([1, 2], [2, 1])).toBe(false)
  })
})
