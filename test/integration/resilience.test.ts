/**
 * Issue 9, item 8: health and breakers judged on evidence and rates, not counts.
 *
 * - a 503/429 with retry-after is backpressure: a cool-down, not health or breaker evidence;
 * - a burst of failed attempts does not take a model down (the next request is served);
 * - a sustained 100% failure does mark every backend down, and the model is then routed
 *   in panic (requests still reach the least-bad backends: 502, never 503 no_backend_available);
 * - recovery follows within 2 s of the fault clearing (unhealthy backends are re-probed fast).
 *
 * Real sockets: fake OpenAI-compatible engines and the production gateway graph, default
 * health and breaker settings unless a test says otherwise.
 */
import { afterEach, describe, expect, it } from "vitest"
import { BackendId, GpuSku, ModelId } from "../../src/domain/Ids.ts"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

const chat = (url: string, model = "m") =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hello" }], max_tokens: 8 })
  })

const metric = async (url: string, pattern: RegExp): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text()
  const m = pattern.exec(text)
  return m === null ? 0 : Number(m[1])
}

describe("health and breakers on evidence and rates (item 8)", () => {
  const engines: Array<Fake.FakeEngine> = []
  let gw: TestGateway | undefined
  const engine = async (script?: Fake.FakeEngine["script"]) => {
    const e = await Fake.start(script)
    engines.push(e)
    return e
  }
  afterEach(async () => {
    await gw?.close()
    gw = undefined
    for (const e of engines.splice(0)) await e.close()
  })

  it.each([503, 429])("a %i with retry-after only cools the backend down: no health or breaker evidence", async (status) => {
    let retryAfter = "0"
    const a = await engine(() => ({ status, headers: { "retry-after": retryAfter } }))
    const b = await engine()
    gw = await startGateway(`
backends:
  - { id: a, url: "${a.url}", models: [m], gpu: H100 }
  - { id: b, url: "${b.url}", models: [m], gpu: A100 }
routing: { policy: ordered }
retries: { max_attempts: 2, budget_ratio: 1, min_per_second: 1000 }
`)
    const backendA = gw.fleet.byId(BackendId("a"))!
    // Twelve requests, each met by a's backpressure first: more than the breaker's minimum
    // of evidence and three times the old "3 bad in a row" rule.
    for (let i = 0; i < 12; i++) {
      const res = await chat(gw.url)
      expect(res.status).toBe(200)
      expect(res.headers.get("x-sluice-backend")).toBe("b")
    }
    expect(a.seen.length).toBe(12)
    expect(backendA.health).toBe("healthy")
    expect(gw.breakers.state(ModelId("m"), GpuSku("H100"), Date.now())).toBe("closed")
    expect(gw.breakers.transitions()).toEqual([])
    // A real retry-after holds a back until then: the next request does not even try it.
    retryAfter = "30"
    expect((await chat(gw.url)).status).toBe(200)
    expect(backendA.coolDownUntilMs).toBeGreaterThan(Date.now() + 20_000)
    expect((await chat(gw.url)).headers.get("x-sluice-backend")).toBe("b")
    expect(a.seen.length).toBe(13)
    expect(backendA.health).toBe("healthy")
  })

  it("a burst of 5 failed attempts does not take a model down: the next request is served", async () => {
    let failuresLeft = 5
    const solo = await engine(() => failuresLeft-- > 0 ? { status: 500 } : {})
    gw = await startGateway(`
backends:
  - { id: solo, url: "${solo.url}", models: [m] }
`)
    for (let i = 0; i < 5; i++) expect((await chat(gw.url)).status).toBe(502)
    expect(solo.seen.length).toBe(5)
    // The fault is over: the very next request is served (no wait for a probe).
    const res = await chat(gw.url)
    expect(res.status).toBe(200)
    expect(gw.fleet.byId(BackendId("solo"))!.health).not.toBe("unhealthy")
  })

  it("a burst spread over three backends leaves every one of them in the routing", async () => {
    let failuresLeft = 5
    const script: Fake.FakeEngine["script"] = () => failuresLeft-- > 0 ? { status: 500 } : {}
    const [a, b, c] = [await engine(script), await engine(script), await engine(script)]
    gw = await startGateway(`
backends:
  - { id: a, url: "${a.url}", models: [m] }
  - { id: b, url: "${b.url}", models: [m] }
  - { id: c, url: "${c.url}", models: [m] }
`)
    for (let i = 0; i < 3; i++) await chat(gw.url)
    expect(failuresLeft).toBeLessThan(0)
    for (const backend of gw.fleet.all) expect(backend.health).not.toBe("unhealthy")
    // Five failures is not enough evidence to open the shared (m, unknown) breaker either.
    expect(gw.breakers.transitions().map((t) => t.to)).not.toContain("open")
    const served = new Set<string>()
    for (let i = 0; i < 6; i++) {
      const res = await chat(gw.url)
      expect(res.status).toBe(200)
      served.add(res.headers.get("x-sluice-backend")!)
    }
    expect(served.size).toBeGreaterThan(0)
  })

  it("a sustained 100% failure marks every backend down; the model is then routed in panic; recovery within 2 s", async () => {
    let failing = true
    const script: Fake.FakeEngine["script"] = () => failing ? { status: 500 } : {}
    const [a, b, c] = [await engine(script), await engine(script), await engine(script)]
    // Default health and breaker settings; active probes on (default interval 10 s).
    gw = await startGateway(`
backends:
  - { id: a, url: "${a.url}", models: [m] }
  - { id: b, url: "${b.url}", models: [m] }
  - { id: c, url: "${c.url}", models: [m] }
`, { probes: true })
    const fleet = gw.fleet.all
    let last: Response | undefined
    for (let i = 0; i < 150 && !fleet.every((x) => x.health === "unhealthy"); i++) {
      last = await chat(gw.url)
      expect(last.status).toBe(502)
    }
    expect(fleet.map((x) => x.health)).toEqual(["unhealthy", "unhealthy", "unhealthy"])
    // Every backend is excluded: the gateway ranks them all anyway (panic) and still tries.
    const res = await chat(gw.url)
    expect(res.status).toBe(502)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("backends_exhausted")
    expect(await metric(gw.url, /sluice_routing_panic_total\{model="m"\} (\d+)/)).toBeGreaterThan(0)

    // Keep the fault a while longer, so the re-probe backoff has reached its cap.
    await new Promise((r) => setTimeout(r, 3_000))
    expect(fleet.map((x) => x.health)).toEqual(["unhealthy", "unhealthy", "unhealthy"])
    failing = false
    const cleared = performance.now()
    await eventually(async () => fleet.map((x) => x.health), (hs) => hs.every((h) => h !== "unhealthy"), 5_000)
    const recoveredMs = performance.now() - cleared
    expect(fleet.map((x) => x.health)).not.toContain("unhealthy")
    expect(recoveredMs).toBeLessThanOrEqual(2_000)
    expect((await chat(gw.url)).status).toBe(200)
  })
})
