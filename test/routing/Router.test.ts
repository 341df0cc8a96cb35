/**
 * The router's policies over a fake fleet: the `ordered` foundation policy, the three
 * baselines, and `inference` (prefix reuse, load, heterogeneous SKUs, filters, session
 * affinity, engine-corrected trust, prefill/decode plans).
 */
import { Effect, Scope } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import type { Backend } from "../../src/backends/Backend.ts"
import { BackendId, GpuSku } from "../../src/domain/Ids.ts"
import { routerFor } from "./harness.ts"
import { backend, modelPlan, request, text } from "./support.ts"

let close: (() => Promise<void>) | undefined
afterEach(async () => {
  await close?.()
  close = undefined
})
const make = async (backends: ReadonlyArray<Backend>, routing: Parameters<typeof routerFor>[1] = {}) => {
  const r = await routerFor(backends, routing)
  close = r.close
  return r
}
/** Takes one of `b`'s slots until the returned scope is closed. */
const holdSlot = (b: Backend) =>
  Effect.runPromise(Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* b.holdSlot(0).pipe(Scope.provide(scope))
    return scope
  }))

const A100 = { gpu: GpuSku("A100-80GB"), profile: "llama-3.1-8b-bf16-a100", quantization: "bf16" }

describe("ordered (the foundation's policy)", () => {
  it("keeps config order, puts the session's backend first, cooling-down and slot-full ones last", async () => {
    const [a, b, c, d] = [backend("a"), backend("b"), backend("c", { maxConcurrency: 1 }), backend("d")]
    const r = await make([a, b, c, d], { policy: "ordered" })
    expect(await r.order(request("hi"))).toEqual(["a", "b", "c", "d"])
    a.coolDown(Date.now() + 60_000)
    await holdSlot(c)
    const s = request("hi", { sessionKey: "s:1" })
    await (await r.dispatch(s, d)).end()
    expect(await r.order(s)).toEqual(["d", "b", "c", "a"])
  })
})

describe("baselines", () => {
  it("round_robin rotates the first choice and keeps everyone as fallback", async () => {
    const r = await make([backend("a"), backend("b"), backend("c")], { policy: "round_robin" })
    const firsts = []
    for (let i = 0; i < 6; i++) {
      const order = await r.order(request("hi"))
      expect([...order].sort()).toEqual(["a", "b", "c"])
      firsts.push(order[0])
    }
    expect(firsts).toEqual(["a", "b", "c", "a", "b", "c"])
  })

  it("least_outstanding prefers the backend with the fewest requests in flight", async () => {
    const [a, b, c] = [backend("a"), backend("b"), backend("c")]
    const r = await make([a, b, c], { policy: "least_outstanding" })
    await holdSlot(a)
    await holdSlot(a)
    await holdSlot(c)
    expect(await r.order(request("hi"))).toEqual(["b", "c", "a"])
  })

  it("random permutes all candidates and still honours the hard filters", async () => {
    const [a, b, c] = [backend("a"), backend("b"), backend("c")]
    b.observeHealth({ _tag: "ProbeFailed" }, 0)
    b.observeHealth({ _tag: "ProbeFailed" }, 0)
    b.observeHealth({ _tag: "ProbeFailed" }, 0)
    expect(b.health).toBe("unhealthy")
    const r = await make([a, b, c], { policy: "random" })
    const seen = new Set<string>()
    for (let i = 0; i < 20; i++) {
      const order = await r.order(request("hi"))
      expect([...order].sort()).toEqual(["a", "c"])
      seen.add(order[0]!)
    }
    expect(seen.size).toBe(2)
  })
})

describe("panic under the ordered policy", () => {
  it("admits backends behind open breakers once fewer than panic_threshold of them are usable, those last", async () => {
    const [a, b] = [backend("a"), backend("b", A100)]
    const r = await make([a, b], { policy: "ordered" })
    const req = request("hi")
    for (let i = 0; i < 20; i++) await r.run(r.breakers.record(req.model.id, a.plan.gpu, "failure"))
    // One of two breakers open: half are usable, no panic (the dispatcher skips a).
    expect(await r.run(r.router.candidates(req))).toMatchObject({ panic: false })
    for (let i = 0; i < 20; i++) await r.run(r.breakers.record(req.model.id, b.plan.gpu, "failure"))
    const route = await r.run(r.router.candidates(req))
    expect(route.panic).toBe(true)
    expect(route.backends.map((x) => x.id)).toEqual(["a", "b"])
  })
})

describe("inference", () => {
  const system = text(6000, 11)

  it("sends a request to the backend that holds its prefix", async () => {
    const [a, b, c] = [backend("a"), backend("b"), backend("c")]
    const r = await make([a, b, c])
    const first = request(system + " first question")
    const chosen = (await r.order(first))[0]!
    const done = await r.dispatch(first, [a, b, c].find((x) => x.id === chosen)!)
    await done.end()
    // Another user behind the same system prompt: same backend, though every backend is idle.
    expect((await r.order(request(system + " a different question")))[0]).toBe(chosen)
    // An unrelated prompt has no reason to go there first (config order among equals).
    expect((await r.order(request(text(6000, 99))))[0]).toBe("a")
  })

  it("leaves a prefix's backend when its prefill queue makes another backend faster", async () => {
    const [a, b] = [backend("a"), backend("b")]
    const r = await make([a, b])
    const warm = await r.dispatch(request(system + " q0"), a)
    await warm.end()
    // Forty long uncached prompts queued on a: its predicted TTFT dwarfs a cold prefill on b.
    for (let i = 0; i < 40; i++) await r.dispatch(request(text(30_000, 100 + i)), a, false)
    expect((await r.order(request(system + " q1")))[0]).toBe("b")
  })

  it("prefers the faster SKU for a long uncached prompt, and ranks every candidate", async () => {
    const r = await make([backend("a100", A100), backend("h100")])
    expect(await r.order(request(text(20_000, 3)))).toEqual(["h100", "a100"])
  })

  it("never returns a filtered-out backend, fails with the filter's name when none is left", async () => {
    const [a, b] = [backend("a"), backend("b")]
    const r = await make([a, b])
    for (let i = 0; i < 3; i++) a.observeHealth({ _tag: "ProbeFailed" }, i)
    // One of two is still half the candidates: no panic, the unhealthy one is left out.
    expect(await r.order(request("hi"))).toEqual(["b"])
    // A hard filter (the model's allowed SKUs) that leaves nothing fails the request with its name.
    const strict = request("hi", { model: modelPlan({ allowedGpus: ["B200"] }) })
    await expect(r.order(strict)).rejects.toMatchObject({ _tag: "NoBackendAvailable", message: expect.stringContaining("sku") })
  })

  it("routes in panic when the health gates leave under panic_threshold of the candidates: the least bad first", async () => {
    const [a, b, c] = [backend("a"), backend("b"), backend("c")]
    const r = await make([a, b, c])
    for (const x of [a, b]) for (let i = 0; i < 3; i++) x.observeHealth({ _tag: "ProbeFailed" }, i)
    // One of three passes the gates (33% < 50%): all three are candidates, the healthy one first.
    const route = await r.run(r.router.candidates(request("hi")))
    expect(route.panic).toBe(true)
    expect(route.backends.map((x) => x.id)[0]).toBe("c")
    expect(route.backends.map((x) => x.id).sort()).toEqual(["a", "b", "c"])
    // Every backend unhealthy: still routed, never refused.
    for (let i = 0; i < 3; i++) c.observeHealth({ _tag: "ProbeFailed" }, i)
    expect((await r.order(request("hi"))).sort()).toEqual(["a", "b", "c"])
    // An open breaker counts the same: a, b back, c's (model, SKU) breaker open → 2 of 3 pass.
    a.observeHealth({ _tag: "ProbeOk" }, 10)
    b.observeHealth({ _tag: "ProbeOk" }, 10)
    const notPanic = await r.run(r.router.candidates(request("hi")))
    expect(notPanic.panic).toBe(false)
    expect(notPanic.backends.map((x) => x.id).sort()).toEqual(["a", "b"])
  })

  it("panic_threshold 0 disables panic routing: the health filter's name is the refusal", async () => {
    const [a, b] = [backend("a"), backend("b")]
    const r = await make([a, b], { panicThreshold: 0 })
    for (const x of [a, b]) for (let i = 0; i < 3; i++) x.observeHealth({ _tag: "ProbeFailed" }, i)
    await expect(r.order(request("hi"))).rejects.toMatchObject({ _tag: "NoBackendAvailable", message: expect.stringContaining("health") })
  })

  it("panic also covers open breakers, and the baselines rank the excluded last", async () => {
    const [a, b, c] = [backend("a"), backend("b", A100), backend("c", { gpu: GpuSku("L40S") })]
    const r = await make([a, b, c], { policy: "round_robin" })
    const req = request("hi")
    // Open the H100 and A100 breakers: one of three (c) passes the gates.
    for (const gpu of [a.plan.gpu, b.plan.gpu]) for (let i = 0; i < 20; i++) await r.run(r.breakers.record(req.model.id, gpu, "failure"))
    for (let turn = 0; turn < 3; turn++) {
      const route = await r.run(r.router.candidates(req))
      expect(route.panic).toBe(true)
      expect(route.backends[0]!.id).toBe("c")
      expect(route.backends.length).toBe(3)
    }
  })

  it("saturation fails open: when every backend is cooling down they are all still candidates", async () => {
    const [a, b] = [backend("a"), backend("b")]
    const r = await make([a, b])
    a.coolDown(Date.now() + 60_000)
    b.coolDown(Date.now() + 50)
    expect((await r.order(request("hi"))).sort()).toEqual(["a", "b"])
    await new Promise((resolve) => setTimeout(resolve, 80))
    // b is free again: first; a (still cooling down) stays in the failover order, last.
    expect(await r.order(request("hi"))).toEqual(["b", "a"])
  })

  it("keeps a session on its backend while it is healthy, and moves it when it is not", async () => {
    const [a, b, c] = [backend("a"), backend("b"), backend("c")]
    const r = await make([a, b, c])
    let history = "You are a helpful assistant."
    const turn = async () => {
      history += " " + text(400, history.length)
      const req = request(history, { sessionKey: "s:42" })
      const order = await r.order(req)
      const target = [a, b, c].find((x) => x.id === order[0])!
      await (await r.dispatch(req, target)).end()
      return order[0]!
    }
    const home = await turn()
    for (let i = 0; i < 5; i++) expect(await turn()).toBe(home)
    const homeBackend = [a, b, c].find((x) => x.id === home)!
    for (let i = 0; i < 3; i++) homeBackend.observeHealth({ _tag: "ProbeFailed" }, 0)
    expect(await turn()).not.toBe(home)
  })

  it("lowers its trust in a backend whose engine reports fewer cached tokens than predicted", async () => {
    const [a] = [backend("a")]
    const r = await make([a, backend("b")])
    const req = request(system + " q")
    await (await r.dispatch(req, a)).end()
    expect(r.placement.trust(a)).toBe(1)
    for (let i = 0; i < 10; i++) await (await r.dispatch(request(system + ` q${i}`), a)).end(0)
    expect(r.placement.trust(a)).toBeLessThan(0.4)
  })

  it("plans prefill and decode legs for a long prompt on a P/D pool, one engine for a short one", async () => {
    const p1 = backend("p1", { role: "prefill" })
    const d1 = backend("d1", { role: "decode" })
    const d2 = backend("d2", { role: "decode" })
    const r = await make([p1, d1, d2], { pdMinPromptTokens: 256 })
    const long = request(text(8000, 5))
    const longRoute = await r.run(r.router.candidates(long))
    expect(longRoute.backends.map((b) => b.id).sort()).toEqual(["d1", "d2"])
    expect(longRoute.prefill?.map((b) => b.id)).toEqual(["p1"])
    const short = request("a short prompt")
    const shortRoute = await r.run(r.router.candidates(short))
    expect(shortRoute.backends.map((b) => b.id).sort()).toEqual(["d1", "d2"])
    expect(shortRoute.prefill).toBeUndefined()
  })
})

describe("inference under overload (issue 16): saturation is soft", () => {
  it("every candidate saturated: all ranked, the least bad first, and the route says least_bad", async () => {
    const [a, b, c] = [backend("a"), backend("b"), backend("c")]
    const r = await make([a, b, c])
    for (const x of [a, b, c]) x.coolDown(Date.now() + 60_000)
    // a and c are busy with requests that have not started; b is idle: b is the least bad.
    for (const [x, n] of [[a, 4], [c, 2]] as const) {
      for (let i = 0; i < n; i++) await r.dispatch(request(text(200, i + n * 10)), x, false)
    }
    const route = await r.run(r.router.candidates(request("hi")))
    expect(route.backends.map((x) => x.id)).toEqual(["b", "c", "a"])
    expect(route.overload).toBe("least_bad")
  })

  it("keeps saturated backends in the failover order, after the others, and says saturated_last", async () => {
    const [a, b, c] = [backend("a"), backend("b"), backend("c")]
    const r = await make([a, b, c])
    a.coolDown(Date.now() + 60_000)
    c.coolDown(Date.now() + 60_000)
    const route = await r.run(r.router.candidates(request("hi")))
    expect(route.backends[0]!.id).toBe("b")
    expect([...route.backends.slice(1).map((x) => x.id)].sort()).toEqual(["a", "c"])
    expect(route.overload).toBe("saturated_last")
    // Nothing saturated: nothing to say.
    const idle = await make([backend("x"), backend("y")])
    expect((await idle.run(idle.router.candidates(request("hi")))).overload).toBeUndefined()
  })

  it("a tenant whose allowed backends are all saturated is served by one of them, never refused", async () => {
    const [a, b, c] = [backend("a"), backend("b"), backend("c")]
    // The tenant may use b and c only; both are saturated, a (not allowed) is free. On the old
    // pipeline saturation kept only a, then the tenant filter removed it: a 503 under
    // overload that no baseline gives.
    const tenants = new Map([["default", { allowedBackends: new Set([BackendId("b"), BackendId("c")]), deniedBackends: new Set<BackendId>() }]])
    const r = await make([a, b, c], { tenants })
    b.coolDown(Date.now() + 60_000)
    c.coolDown(Date.now() + 60_000)
    const route = await r.run(r.router.candidates(request("hi")))
    expect(route.backends.map((x) => x.id).sort()).toEqual(["b", "c"])
    expect(route.overload).toBe("least_bad")
    // The baselines serve it too (they never ran saturation): the same candidates.
    const rr = await make([a, b, c], { tenants, policy: "least_outstanding" })
    expect((await rr.order(request("hi"))).sort()).toEqual(["b", "c"])
  })

  it("slot-full, over-queue and over-KV backends are ranked last too, and a hard filter still refuses", async () => {
    const [a, b] = [backend("a", { maxConcurrency: 1 }), backend("b")]
    const r = await make([a, b], { maxQueue: 0 })
    await holdSlot(a)
    expect(await r.order(request("hi"))).toEqual(["b", "a"])
    // A request that no candidate may serve (the model's allowed SKUs) is still refused by that filter.
    const req = request("hi", { model: modelPlan({ allowedGpus: ["B200"] }) })
    await expect(r.order(req)).rejects.toMatchObject({ _tag: "NoBackendAvailable", message: expect.stringContaining("sku") })
  })
})
