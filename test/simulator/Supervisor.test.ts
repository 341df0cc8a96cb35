/**
 * The engine-thread supervisor on its own: a thread that ends is started again on the same port and
 * counted; closing the scope stops the thread (its port refuses connections); a thread that cannot start
 * fails `supervise` with the reason.
 */
import { it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { describe, expect } from "vitest"
import * as Supervisor from "../../src/simulator/Supervisor.ts"

const options = { profile: "llama-3.1-8b-fp8-h100" as const, model: "m", timeScale: 100 }

const reachable = (url: string) =>
  Effect.promise(() => fetch(`${url}/health`).then((r) => r.status === 200, () => false))

const waitFor = <A>(effect: Effect.Effect<A>, ok: (a: A) => boolean, ms: number) =>
  Effect.gen(function*() {
    const deadline = performance.now() + ms
    let last = yield* effect
    while (!ok(last) && performance.now() < deadline) {
      yield* Effect.sleep(20)
      last = yield* effect
    }
    return last
  })

describe("engine thread supervisor", () => {
  it.live("restarts an engine that exits, on the same URL, and stops it with the scope", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const engine = yield* Supervisor.supervise(options, { name: "t", heapMb: 96 }).pipe(Scope.provide(scope))
      expect(yield* reachable(engine.url)).toBe(true)
      const res = yield* Effect.promise(() =>
        fetch(`${engine.url}/admin/crash`, { method: "POST", body: JSON.stringify({ mode: "exit" }) })
      )
      expect(res.status).toBe(202)
      // Down first (the thread ended), then back on the same port.
      expect(yield* waitFor(reachable(engine.url), (up) => !up, 5_000)).toBe(false)
      expect(yield* waitFor(reachable(engine.url), (up) => up, 20_000)).toBe(true)
      expect(engine.restarts()).toBe(1)
      yield* Scope.close(scope, Exit.void)
      expect(yield* reachable(engine.url)).toBe(false)
    }), 60_000)

  it.live("fails with the engine's own reason when its thread cannot start", () =>
    Effect.gen(function*() {
      const exit = yield* Supervisor.supervise({ ...options, jitter: 5 }, { name: "bad", heapMb: 96 }).pipe(
        Effect.scoped,
        Effect.exit
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
      expect(error?._tag === "Fail" ? error.error.message : "").toContain("jitter must be in [0, 1)")
    }), 60_000)
})
