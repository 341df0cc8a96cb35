/**
 * Issue 9, item 2(b): a failure inside an embedded (simulated) engine never takes the gateway down.
 *
 * The gateway below runs the production launcher (`SimulatedEngines.layer`): each engine in a worker thread
 * of its own, supervised. The `crash` fault makes the next request an engine receives throw an uncaught
 * exception from a timer callback, as `JSON.stringify` once did on a 50,000-input embedding batch. This test
 * process is the gateway: if the engine ran on its thread, the exception would end the test run.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as SimulatedEngines from "../../src/SimulatedFleet.ts"
import { BackendId } from "../../src/domain/Ids.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

/** An engine thread starts in about 1.5 s from source (tsx compiles it); generous on a shared machine. */
const BACK_WITHIN_MS = 20_000

describe("embedded engines run isolated and supervised", () => {
  let gw: TestGateway
  const origin = (id: string) => new URL(gw.fleet.byId(BackendId(id))!.plan.url!).origin

  const chat = (model: string) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "Hello there" }], max_tokens: 8, sim_output_tokens: 4 })
    })
  const crash = async (id: string, mode: "throw" | "oom") => {
    const res = await fetch(`${origin(id)}/admin/faults`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ crash: mode })
    })
    expect(res.status).toBe(200)
  }
  const engineUp = (id: string) =>
    fetch(`${origin(id)}/health`).then((r) => r.status === 200, () => false)

  beforeAll(async () => {
    gw = await startGateway(`
models: [{ name: m }, { name: solo }]
backends:
  - { id: a, simulate: { profile: llama-3.1-8b-fp8-h100, time_scale: 50, seed: 1 }, models: [m], gpu: H100 }
  - { id: b, simulate: { profile: llama-3.1-8b-fp8-h100, time_scale: 50, seed: 2 }, models: [m], gpu: A100 }
  - { id: c, simulate: { profile: llama-3.1-8b-fp8-h100, time_scale: 50, seed: 3 }, models: [solo], gpu: L40S }
routing: { policy: ordered }
retries: { max_attempts: 3, budget_ratio: 1, min_per_second: 1000 }
breakers: { min_requests: 1000 }
health: { unhealthy_after: 1000 }
timeouts: { first_token: 10s }
`, { launcher: SimulatedEngines.layer })
  }, 60_000)
  afterAll(async () => {
    await gw?.close()
  })

  it("fails over while a crashed engine restarts on the same URL, then routes to it again", async () => {
    const before = origin("a")
    const first = await chat("m")
    expect(first.status).toBe(200)
    expect(first.headers.get("x-sluice-backend")).toBe("a")

    await crash("a", "throw")
    // This request is the one the engine dies under: its connection is reset before any byte, so
    // the gateway fails over to b.
    const during = await chat("m")
    expect(during.status).toBe(200)
    expect(during.headers.get("x-sluice-backend")).toBe("b")
    expect(((await during.json()) as { choices: Array<unknown> }).choices).toHaveLength(1)

    const back = await eventually(() => engineUp("a"), (up) => up, BACK_WITHIN_MS)
    expect(back).toBe(true)
    expect(origin("a")).toBe(before)
    const after = await chat("m")
    expect(after.status).toBe(200)
    expect(after.headers.get("x-sluice-backend")).toBe("a")

    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(metrics).toMatch(/sluice_engine_restarts_total\{[^}]*engine="a"[^}]*\} 1\b/)
    expect(await gw.held()).toEqual(idle)
  }, 60_000)

  it("answers a clean 503 for a model whose only engine is down, and serves it again once it is back", async () => {
    expect((await chat("solo")).status).toBe(200)
    await crash("c", "throw")
    const down = await chat("solo")
    expect(down.status).toBe(503)
    const body = (await down.json()) as { error: { message: string; type: string; param: unknown; code: unknown } }
    expect(body.error.message).toContain("c:")
    expect(typeof body.error.type).toBe("string")
    expect("param" in body.error && "code" in body.error).toBe(true)

    const served = await eventually(() => chat("solo").then((r) => r.status), (s) => s === 200, BACK_WITHIN_MS)
    expect(served).toBe(200)
    expect(await engineUp("c")).toBe(true)
    expect(await gw.held()).toEqual(idle)
  }, 60_000)

  it("isolates an engine that runs out of memory the same way", async () => {
    await crash("b", "oom")
    // b dies under this request (heap exhausted in its thread); a, first in order, is not involved.
    const res = await fetch(`${origin("b")}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 2 })
    }).then((r) => r.status, () => "reset")
    expect(res).toBe("reset")
    const back = await eventually(() => engineUp("b"), (up) => up, BACK_WITHIN_MS)
    expect(back).toBe(true)
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(metrics).toMatch(/sluice_engine_restarts_total\{[^}]*engine="b"[^}]*\} 1\b/)
    expect((await chat("m")).status).toBe(200)
  }, 60_000)
})
