/**
 * Names in the config are checked against the registries when the gateway starts (an
 * unknown name is an error naming its path and listing what exists), and extension layers
 * add entries that the config can then name: a routing scorer and a dialect.
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Dialects } from "../../src/backends/Dialects.ts"
import * as OpenAI from "../../src/backends/dialects/openai/Client.ts"
import type { Scorer } from "../../src/routing/Contract.ts"
import { RoutingPlugins } from "../../src/routing/Registry.ts"
import * as Fake from "../support/FakeEngine.ts"
import { startGateway } from "../support/Gateway.ts"
import { Layer } from "effect"

describe("registries", () => {
  let a: Fake.FakeEngine
  let b: Fake.FakeEngine
  beforeAll(async () => {
    a = await Fake.start()
    b = await Fake.start()
  })
  afterAll(async () => {
    await a?.close()
    await b?.close()
  })

  it("refuses to start on an unknown dialect, scorer, filter or picker, naming each path", async () => {
    const start = startGateway(`
backends:
  - { id: a, url: ${a.url}, models: [m], dialect: telepathy }
routing:
  filters: [model_served, vibes]
  scorers: { queue_depth: 1, region: 1 }
  picker: coin_toss
`)
    await expect(start).rejects.toThrow(/backends\[0\]\.dialect: unknown dialect "telepathy" \(known: openai, vllm/)
    await expect(start).rejects.toThrow(/routing\.filters\[1\]: unknown filter "vibes" \(known: model_served/)
    await expect(start).rejects.toThrow(/routing\.scorers\.region: unknown scorer "region"/)
    await expect(start).rejects.toThrow(/routing\.picker: unknown picker "coin_toss" \(known: max_score, p2c, weighted_random\)/)
  })

  it("lets extension layers add a scorer and a dialect that the config then names", async () => {
    const served: Array<string> = []
    const extensions = Layer.mergeAll(
      // A scorer that prefers backend b; it can read services (here: none) when it is built.
      RoutingPlugins.addScorer("prefer_b", Effect.succeed((): Scorer => ({
        name: "prefer_b",
        score: (_ctx, view) => (view.backend.id === "b" ? 1 : 0)
      }))),
      // A dialect registered from outside src/: the OpenAI wire under another name, counting calls.
      Dialects.add({
        name: "counted-openai",
        metrics: "none",
        make: ({ pool, options }) => {
          const inner = OpenAI.make(pool, { dialect: "openai", ...options })
          return {
            ...inner,
            dialect: "counted-openai",
            unary: (call) => Effect.andThen(Effect.sync(() => served.push(call.requestId)), inner.unary(call))
          }
        }
      })
    )
    const gw = await startGateway(`
backends:
  - { id: a, url: ${a.url}, models: [m] }
  - { id: b, url: ${b.url}, models: [m], dialect: counted-openai }
routing:
  scorers: { prefer_b: 1 }
`, { extensions })
    try {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${gw.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-request-id": `ext-${i}` },
          body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] })
        })
        expect(res.status).toBe(200)
        expect(res.headers.get("x-sluice-backend")).toBe("b")
      }
      expect(served).toEqual(["ext-0", "ext-1", "ext-2"])
    } finally {
      await gw.close()
    }
  })
})
