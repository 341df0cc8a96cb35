/**
 * Graceful drain: on shutdown new requests get 503 `draining`, an in-flight stream runs to
 * its end, and shutdown does not wait for idle keep-alive connections, nor for connections
 * that never sent a request (an HTTP client's spare connection: node counts one as waiting
 * for its headers, so `closeIdleConnections` leaves it, and it held shutdown for the whole
 * drain time).
 */
import { Agent, request } from "node:http"
import { connect } from "node:net"
import { describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { startGateway } from "../support/Gateway.ts"

const chat = (url: string, agent: Agent, stream: boolean) =>
  new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(`${url}/v1/chat/completions`, { method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (c: string) => (text += c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }))
    })
    req.on("error", reject)
    req.end(JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], stream }))
  })

describe("graceful drain", () => {
  it("lets an in-flight stream finish, refuses new work, and does not wait for idle connections", async () => {
    const engine = await Fake.start(() => ({ tokens: Array.from({ length: 20 }, (_, i) => ` t${i}`), gapMs: 25 }))
    const gw = await startGateway(`
backends:
  - { id: a, url: ${engine.url}, models: [m] }
timeouts: { drain: 10s }
`)
    const agent = new Agent({ keepAlive: true })
    try {
      // A warm keep-alive connection that will sit idle during the drain.
      expect((await chat(gw.url, agent, false)).status).toBe(200)
      const inFlight = chat(gw.url, agent, true)
      await new Promise((r) => setTimeout(r, 100))
      const t0 = performance.now()
      const closing = gw.close()
      await new Promise((r) => setTimeout(r, 20))
      expect(gw.lifecycle.state.draining).toBe(true)
      const streamed = await inFlight
      expect(streamed.status).toBe(200)
      expect(streamed.text).toContain("[DONE]")
      await closing
      const took = performance.now() - t0
      // The stream needed ~0.4 s more; shutdown must not sit out the 10 s drain for idle sockets.
      expect(took).toBeLessThan(3000)
    } finally {
      agent.destroy()
      await engine.close()
    }
  })

  it("does not wait for a connection that has sent nothing", async () => {
    const engine = await Fake.start(() => ({}))
    const gw = await startGateway(`
backends:
  - { id: a, url: ${engine.url}, models: [m] }
timeouts: { drain: 10s }
`)
    const { port } = new URL(gw.url)
    const silent = connect(Number(port), "127.0.0.1")
    try {
      await new Promise<void>((resolve, reject) => silent.once("connect", resolve).once("error", reject))
      const closed = new Promise<void>((resolve) => silent.once("close", () => resolve()))
      silent.on("error", () => {})
      const t0 = performance.now()
      await gw.close()
      await closed
      expect(performance.now() - t0).toBeLessThan(3000)
    } finally {
      silent.destroy()
      await engine.close()
    }
  })
})
