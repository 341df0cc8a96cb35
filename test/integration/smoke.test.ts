import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { startGateway, type TestGateway } from "../support/Gateway.ts"

describe("smoke", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway
  beforeAll(async () => {
    engine = await Fake.start()
    gw = await startGateway(`
backends:
  - id: a
    url: ${engine.url}
    models: [m1]
`)
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  it("streams", async () => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m1", messages: [{ role: "user", content: "hi" }], stream: true })
    })
    const text = await res.text()
    console.log(res.status, res.headers.get("x-request-id"), text)
    console.log(gw.lines)
    expect(res.status).toBe(200)
  })
})
