/**
 * The Grafana dashboard (deploy/grafana/sluice.json) stays honest: every query is valid
 * PromQL and every metric it selects (and every label it matches on) is one the gateway
 * exports. The gateway here is the real graph in front of a simulated engine and a broken
 * one (HTTP 500 before any token, so attempt failures and wasted prompt tokens show up),
 * driven with a little traffic, then scraped.
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as SimulatedEngines from "../../src/SimulatedFleet.ts"
import { streamChat } from "../support/Client.ts"
import * as Fake from "../support/FakeEngine.ts"
import { startGateway, type TestGateway } from "../support/Gateway.ts"
import * as PromQL from "../support/PromQL.ts"

interface Target {
  readonly expr?: string
}
interface Panel {
  readonly id?: number
  readonly type: string
  readonly title: string
  readonly targets?: ReadonlyArray<Target>
  readonly panels?: ReadonlyArray<Panel>
}
interface Variable {
  readonly name: string
  readonly type: string
  readonly query?: string | { readonly query?: string }
  readonly definition?: string
}
interface Dashboard {
  readonly uid: string
  readonly title: string
  readonly panels: ReadonlyArray<Panel>
  readonly templating: { readonly list: ReadonlyArray<Variable> }
}

const dashboard = JSON.parse(
  readFileSync(join(import.meta.dirname, "..", "..", "deploy", "grafana", "sluice.json"), "utf8")
) as Dashboard

const allPanels = (panels: ReadonlyArray<Panel>): ReadonlyArray<Panel> => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])])

/** Every PromQL text in the dashboard, named by where it is. */
const queries: ReadonlyArray<{ readonly where: string; readonly expr: string }> = allPanels(dashboard.panels).flatMap((p) =>
  (p.targets ?? []).flatMap((t) => t.expr === undefined ? [] : [{ where: `panel "${p.title}"`, expr: t.expr }])
)
const variableQueries = dashboard.templating.list.filter((v) => v.type === "query").map((v) => ({
  where: `variable $${v.name}`,
  query: typeof v.query === "string" ? v.query : v.query?.query ?? v.definition ?? ""
}))

describe("the Grafana dashboard", () => {
  let gw: TestGateway
  let broken: Fake.FakeEngine

  beforeAll(async () => {
    broken = await Fake.start(() => ({ status: 500, errorBody: "{\"error\":{\"message\":\"engine fell over\"}}" }))
    gw = await startGateway(`
models: [{ name: llama-3.1-8b }]
backends:
  - { id: broken, url: ${broken.url}, models: [llama-3.1-8b], gpu: A100-80GB }
  - id: sim
    simulate: { profile: llama-3.1-8b-fp8-h100, time_scale: 20, seed: 1 }
    models: [llama-3.1-8b]
    gpu: H100
routing: { policy: ordered }
retries: { max_attempts: 2, budget_ratio: 1, min_per_second: 1000 }
health: { scrape_interval: 200ms }
`, { launcher: SimulatedEngines.layer })
  })
  afterAll(async () => {
    await gw?.close()
    await broken?.close()
  })

  it("is a dashboard with panels and queries", () => {
    expect(dashboard.uid).toBe("sluice-gateway")
    expect(queries.length).toBeGreaterThanOrEqual(20)
    const ids = allPanels(dashboard.panels).map((p) => p.id)
    expect(new Set(ids).size).toBe(ids.length)
    for (const p of allPanels(dashboard.panels)) {
      if (p.type !== "row") expect(p.targets?.length ?? 0, `panel "${p.title}" has no query`).toBeGreaterThan(0)
    }
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(expect.arrayContaining(["datasource", "instance", "model", "backend"]))
  })

  it("has only valid PromQL", () => {
    for (const { where, expr } of queries) {
      const parsed = PromQL.parse(expr)
      expect(parsed.errors, `${where}: ${expr}`).toEqual([])
      expect(parsed.selectors.length, `${where} selects no metric`).toBeGreaterThan(0)
    }
    for (const { where, query } of variableQueries) expect(PromQL.labelValues(query), `${where}: ${query}`).toBeDefined()
  })

  it("selects only metrics and labels the gateway exports", async () => {
    const body = (n: number) => ({
      model: "llama-3.1-8b",
      messages: [{ role: "user", content: `Say something about dashboards, ${n}` }],
      stream: true,
      max_tokens: 16,
      sim_output_tokens: 12
    })
    for (let i = 0; i < 4; i++) {
      const r = await streamChat(gw.url, body(i))
      expect(r.status).toBe(200)
    }
    const rejected = await fetch(`${gw.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" })
    expect(rejected.status).toBe(400)

    const selectors = [
      ...queries.flatMap(({ where, expr }) => PromQL.parse(expr).selectors.map((s) => ({ where, s }))),
      ...variableQueries.map(({ where, query }) => ({ where, s: PromQL.labelValues(query)! }))
    ]
    // Scraped engine signals (queue depth, KV use) appear after the first scrape: poll, bounded.
    let problems: Array<string> = []
    const deadline = performance.now() + 10_000
    do {
      const text = await (await fetch(`${gw.url}/metrics`)).text()
      const exported = PromQL.exposition(text)
      problems = selectors.flatMap(({ where, s }) => {
        const why = PromQL.mismatch(s, exported)
        return why === undefined ? [] : [`${where}: ${why}`]
      })
      if (problems.length === 0) break
      await new Promise((r) => setTimeout(r, 100))
    } while (performance.now() < deadline)
    expect(problems).toEqual([])
  })

  it("would catch a query on a metric the gateway does not export", async () => {
    const exported = PromQL.exposition(await (await fetch(`${gw.url}/metrics`)).text())
    const [typo] = PromQL.parse(`sum(rate(sluice_request_total[$__rate_interval]))`).selectors
    expect(PromQL.mismatch(typo!, exported)).toBe("sluice_request_total is not exported")
    const [label] = PromQL.parse(`sluice_tokens_total{knd="completion"}`).selectors
    expect(PromQL.mismatch(label!, exported)).toContain("has no label knd")
    const [bucket] = PromQL.parse(`rate(sluice_time_to_first_token_seconds_bucket[5m])`).selectors
    expect(PromQL.mismatch(bucket!, exported)).toBeUndefined()
  })
})
