/**
 * `sluice plan` end to end: the real entry point (src/main.ts) in a child process on a tiny trace
 * and fleet files of each accepted shape, its table and JSON, and its errors (usage errors exit 2,
 * unreadable or undecodable files exit 1 with the file and line).
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as JournalEntry from "../../src/accounting/JournalEntry.ts"
import * as Command from "../../src/cli/Command.ts"

const root = join(import.meta.dirname, "..", "..")
const dir = mkdtempSync(join(tmpdir(), "sluice-plan-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const file = (name: string, text: string) => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

const sluice = (...args: Array<string>) => {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/main.ts", ...args], { cwd: root, encoding: "utf8", timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

// 60 requests over 6 s: 4 groups of a 2,000-token shared prefix, plus one session of follow-ups.
const trace = file(
  "trace.jsonl",
  Array.from({ length: 60 }, (_, i) =>
    JSON.stringify({
      at_ms: i * 100,
      tenant: i % 3 === 0 ? "acme" : "beta",
      model: "llama-3.1-8b",
      prompt_tokens: 2100,
      output_tokens: 40,
      max_tokens: 256,
      prefix: `g${(i * 7) % 4}`,
      prefix_tokens: 2000
    })).join("\n") + "\n"
)

const backendsOnly = file(
  "backends.yaml",
  `backends:
${["a", "b", "c", "d"].map((id) => `  - { id: ${id}, profile: llama-3.1-8b-fp8-h100, models: [llama-3.1-8b], gpu: H100, quantization: fp8, metrics: vllm, max_concurrency: 4096 }`).join("\n")}
`
)

describe("sluice plan", () => {
  it("prints one row per policy for a backends: section", () => {
    const r = sluice("plan", "--trace", trace, "--fleet", backendsOnly, "--policies", "inference,round_robin,least_outstanding")
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    const rows = r.stdout.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| policy"))
    expect(rows.map((l) => l.split("|")[1]!.trim())).toEqual(["inference", "round_robin", "least_outstanding"])
    expect(r.stdout).toContain("60 arrivals over 5.9 s, 4 engines")
  }, 60_000)

  it("prints JSON reports; a simulator fleet file and the embedded config are fleets too", () => {
    const fleet = file("fleet.yaml", `instances:\n  - { profile: llama-3.1-8b-fp8-h100, model: llama-3.1-8b }\n  - { profile: llama-3.1-8b-bf16-a100, model: llama-3.1-8b }\n`)
    const r = sluice("plan", "--trace", trace, "--fleet", fleet, "--policies", "inference+kv/p2c,random", "--json", "--duration", "4", "--warmup", "1")
    expect(r.status, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as { reports: Array<{ policy: string; requests: number; completed: number; hitRate: number }> }
    expect(out.reports.map((x) => x.policy)).toEqual(["inference+kv/p2c", "random"])
    expect(out.reports[0]!.requests).toBe(30)
    expect(out.reports[0]!.completed).toBe(30)
    expect(out.reports[0]!.hitRate).toBeGreaterThan(0.5)
    const embedded = sluice("plan", "--trace", trace, "--fleet", join(root, "config", "sluice.yaml"), "--policies", "least_outstanding", "--json")
    expect(embedded.status, embedded.stderr).toBe(0)
  }, 60_000)

  it("replays the ledger's usage records", () => {
    const record = (i: number) =>
      JSON.stringify({
        recordId: `r${i}`, requestId: `q${i}`, tenant: "acme", model: "llama-3.1-8b", outcome: "completed", reservedTokens: 800,
        estimatedPromptTokens: 500, charged: { promptTokens: 500, completionTokens: 60, cachedTokens: 0 }, reported: true,
        attempts: [], wastedPromptTokens: 0, durationMs: 900, settledAtMs: 1_780_000_000_000 + i * 250
      })
    const usage = file("usage.jsonl", Array.from({ length: 20 }, (_, i) => JournalEntry.usageLine(i + 1, record(i), "2026-12-02T00:00:00Z")).join(""))
    const r = sluice("plan", "--trace", usage, "--fleet", backendsOnly, "--policies", "round_robin", "--json")
    expect(r.status, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as { arrivals: number; reports: Array<{ completed: number; spread: Record<string, number> }> }
    expect(out.arrivals).toBe(20)
    expect(out.reports[0]!.completed).toBe(20)
    expect(out.reports[0]!.spread).toEqual({ a: 0.25, b: 0.25, c: 0.25, d: 0.25 })
  }, 60_000)

  it("exits 1 naming the file and line of a bad trace, a missing file, a fleet without profiles", () => {
    const bad = file("bad.jsonl", `{"at_ms":0,"model":"m","prompt_tokens":1,"output_tokens":1}\n{"at_ms":"soon"}\n`)
    const r = sluice("plan", "--trace", bad, "--fleet", backendsOnly)
    expect(r.status).toBe(1)
    expect(r.stderr).toContain(`${bad}: line 2:`)
    expect(sluice("plan", "--trace", join(dir, "missing.jsonl"), "--fleet", backendsOnly).status).toBe(1)
    const bare = file("bare.yaml", `backends:\n  - { id: x, url: "http://x.invalid/v1", models: [llama-3.1-8b] }\n`)
    const noProfile = sluice("plan", "--trace", trace, "--fleet", bare)
    expect(noProfile.status).toBe(1)
    expect(noProfile.stderr).toContain("known engine profile")
  }, 60_000)
})

describe("sluice plan flags", () => {
  it("parses the flags with defaults", () => {
    expect(Command.parse(["plan", "--trace", "t", "--fleet", "f"])).toEqual({
      _tag: "Plan",
      flags: {
        trace: "t",
        fleet: "f",
        policies: ["inference", "round_robin", "least_outstanding"],
        seed: 1,
        jitter: 0,
        warmup: undefined,
        duration: undefined,
        drain: undefined,
        kvBlocks: undefined,
        json: false
      }
    })
    const p = Command.parse(["plan", "--trace", "t", "--fleet", "f", "--duration", "60", "--warmup", "5", "--kv-blocks", "4000", "--jitter", "0.05"])
    expect(p).toMatchObject({ _tag: "Plan", flags: { warmup: 5, duration: 60, drain: 60, kvBlocks: 4000, jitter: 0.05 } })
  })

  it("refuses unknown flags, policies, missing files and bad numbers as usage errors (exit 2)", () => {
    const error = (argv: Array<string>) => {
      const r = Command.parse(argv)
      return r._tag === "UsageError" ? r.message : undefined
    }
    expect(error(["plan", "--trace", "t", "--fleet", "f", "--bogus"])).toBe("unknown flag --bogus")
    expect(error(["plan", "--trace", "t"])).toContain("--fleet")
    expect(error(["plan", "--fleet", "f"])).toContain("--trace")
    expect(error(["plan", "--trace", "t", "--fleet", "f", "--policies", "inference,fastest"])).toContain(`"fastest"`)
    expect(error(["plan", "--trace", "t", "--fleet", "f", "--jitter", "2"])).toContain("--jitter")
    expect(error(["plan", "--trace", "t", "--fleet", "f", "--kv-blocks", "1.5"])).toContain("--kv-blocks")
    expect(error(["plan", "--trace", "t", "--fleet", "f", "--warmup", "5"])).toContain("--duration")
    expect(error(["plan", "--trace", "t", "--fleet", "f", "--warmup", "9", "--duration", "5"])).toContain("less than")
    expect(error(["plan", "stray"])).toBeDefined()
    expect(Command.parse(["plan", "--help"])).toEqual({ _tag: "Help", topic: "plan" })
    const r = sluice("plan", "--trace", "t", "--fleet", "f", "--policies", "nope")
    expect(r.status).toBe(2)
  }, 60_000)
})
