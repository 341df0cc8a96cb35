/**
 * The region-scorer example end to end: three backends labelled with regions, each a fake
 * engine of its own; a request naming its region in the header goes to the backend of that
 * region (or, when none is there, of the same area), whatever the config order.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { fakeOpenAI, startGateway } from "../support/harness.ts"
import * as RegionScorer from "./RegionScorer.ts"

describe("examples/region-scorer", () => {
  let engines: Array<Awaited<ReturnType<typeof fakeOpenAI>>> = []
  let gateway: Awaited<ReturnType<typeof startGateway>>

  beforeAll(async () => {
    engines = await Promise.all([fakeOpenAI(), fakeOpenAI(), fakeOpenAI()])
    gateway = await startGateway(
      `
models: [{ name: m, tokenizer: chars }]
backends:
  - { id: us, dialect: openai, url: "${engines[0]!.url}", models: [m], labels: { region: us-east-1 } }
  - { id: eu, dialect: openai, url: "${engines[1]!.url}", models: [m], labels: { region: eu-west-1 } }
  - { id: ap, dialect: openai, url: "${engines[2]!.url}", models: [m], labels: { region: ap-south-1 } }
routing: { policy: inference, scorers: { region: 5, queue_depth: 1 }, picker: max_score }
health: { probe_interval: 0 }
`,
      RegionScorer.layer()
    )
  })
  afterAll(async () => {
    await gateway?.close()
    await Promise.all(engines.map((e) => e.close()))
  })

  const backendFor = async (headers: Record<string, string>) => {
    const res = await gateway.chat({ model: "m", max_tokens: 4, messages: [{ role: "user", content: "hi" }] }, headers)
    expect(res.status).toBe(200)
    await res.arrayBuffer()
    return res.headers.get("x-sluice-backend")
  }

  it("sends each request to the backend in the client's region", async () => {
    for (let i = 0; i < 3; i++) {
      expect(await backendFor({ "x-client-region": "eu-west-1" })).toBe("eu")
      expect(await backendFor({ "x-client-region": "AP-SOUTH-1" })).toBe("ap")
      expect(await backendFor({ "x-client-region": "us-east-1" })).toBe("us")
    }
    // No backend in eu-central-1: the one in the same area.
    expect(await backendFor({ "x-client-region": "eu-central-1" })).toBe("eu")
    expect(engines.map((e) => e.received.length)).toEqual([3, 4, 3])
  })

  it("leaves the choice to the other scorers without the header", async () => {
    expect(["us", "eu", "ap"]).toContain(await backendFor({}))
  })
})
