import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Backend } from "../../src/backends/Backend.ts"
import type { Plan } from "../../src/config/Plan.ts"
import * as Hold from "../../src/dispatch/Hold.ts"
import * as Affinity from "../../src/routing/Affinity.ts"
import * as Placement from "../../src/routing/Placement.ts"
import { backend as makeBackend, request } from "../routing/support.ts"
import { planFromYaml } from "../support/Gateway.ts"

const progress = { served: false, cachedTokens: undefined }

const world = (order: Array<string> = []) =>
  Effect.gen(function*() {
    const plan: Plan = yield* Effect.promise(() => planFromYaml(`
backends:
  - { id: x, url: "http://127.0.0.1:1/v1", models: [m] }
`))
    const backend = makeBackend("a", { maxConcurrency: 1 })
    // Each release is recorded, then done as the real one does it.
    const releaseSlot = backend.releaseSlot.bind(backend)
    backend.releaseSlot = () => {
      order.push("slot")
      releaseSlot()
    }
    const addTokens = backend.addInFlightTokens.bind(backend)
    backend.addInFlightTokens = (tokens) => {
      // The slot is always given back last: still held when the tokens are.
      if (tokens < 0) order.push(backend.slots.inUse === 0 ? "tokens after the slot" : "tokens")
      addTokens(tokens)
    }
    const affinityReal = Affinity.make(100, 60_000)
    const affinity: typeof affinityReal = {
      ...affinityReal,
      unpin: (pin, at) => {
        order.push("pin")
        affinityReal.unpin(pin, at)
      }
    }
    const placementReal = Placement.make(plan)
    const placement: Placement.RoutingState = {
      ...placementReal,
      dispatchedAt: (req, b, p, now) => {
        const ticket = placementReal.dispatchedAt(req, b, p, now)
        return {
          started: ticket.started,
          release: () => {
            order.push("placement")
            ticket.release()
          }
        }
      }
    }
    const held = (b: Backend) =>
      Effect.map(affinity.snapshot, (s) => ({
        slots: b.slots.inUse,
        queued: b.slots.queued,
        tokens: b.inFlightTokens,
        pins: s.heldPins,
        pending: placement.load(b).pendingRequests
      }))
    return { backend, affinity, placement, held }
  })

const nothing = { slots: 0, queued: 0, tokens: 0, pins: 0, pending: 0 }

describe("Hold (an attempt's slot, tokens, KV pin and placement)", () => {
  for (
    const [name, exit] of [
      ["success", Exit.void],
      ["a typed failure", Exit.fail("failed")],
      ["a defect", Exit.die("boom")],
      ["an interruption", Exit.interrupt(1)]
    ] as const
  ) {
    it.effect(`holds everything until the scope closes with ${name}, then releases each once, last taken first`, () =>
      Effect.gen(function*() {
        const order: Array<string> = []
        const { affinity, backend, held, placement } = yield* world(order)
        const req = request("hello there", { sessionKey: "s:1" })
        const scope = yield* Scope.make()
        yield* Hold.hold(affinity, placement, req, backend, 1000, progress).pipe(Scope.provide(scope))
        assert.deepStrictEqual(yield* held(backend), {
          slots: 1,
          queued: 0,
          tokens: req.estimate.reservationTokens,
          pins: 1,
          pending: 1
        })
        yield* Scope.close(scope, exit)
        assert.deepStrictEqual(order, ["placement", "pin", "tokens", "slot"])
        assert.deepStrictEqual(yield* held(backend), nothing)
        // Closing again releases nothing twice.
        yield* Scope.close(scope, exit)
        assert.strictEqual(order.length, 4)
      }))
  }

  it.effect("without a session key, takes no pin", () =>
    Effect.gen(function*() {
      const order: Array<string> = []
      const { affinity, backend, held, placement } = yield* world(order)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Hold.hold(affinity, placement, request("hello"), backend, 1000, progress)
        assert.strictEqual((yield* held(backend)).pins, 0)
      }))
      assert.deepStrictEqual(order, ["placement", "tokens", "slot"])
      assert.deepStrictEqual(yield* held(backend), nothing)
    }))

  it.effect("waits for a busy slot interruptibly, times out, and a granted waiter gives its slot back after the rest", () =>
    Effect.gen(function*() {
      const order: Array<string> = []
      const { affinity, backend, held, placement } = yield* world(order)
      const first = yield* Scope.make()
      yield* Hold.hold(affinity, placement, request("first"), backend, 1000, progress).pipe(Scope.provide(first))
      const one = yield* held(backend)

      // Interrupted while it waits: leaves the queue, holds nothing.
      const interrupted = yield* Effect.forkChild(
        Effect.scoped(Hold.hold(affinity, placement, request("second", { sessionKey: "s:2" }), backend, 1000, progress))
      )
      yield* Effect.yieldNow
      assert.strictEqual(backend.slots.queued, 1)
      yield* Fiber.interrupt(interrupted)
      assert.deepStrictEqual(yield* held(backend), one)

      // Waits at most the queue timeout.
      const timedOut = yield* Effect.forkChild(Effect.scoped(Hold.hold(affinity, placement, request("third"), backend, 500, progress)))
      yield* Effect.yieldNow
      yield* TestClock.adjust(600)
      const failed = yield* Fiber.await(timedOut)
      assert.isTrue(Exit.isFailure(failed) && Cause.hasFails(failed.cause))
      assert.deepStrictEqual(yield* held(backend), one)

      // Granted on release: holds everything, and gives its slot back last.
      const second = yield* Scope.make()
      const waiter = yield* Effect.forkChild(
        Hold.hold(affinity, placement, request("fourth", { sessionKey: "s:4" }), backend, 1000, progress).pipe(
          Scope.provide(second)
        )
      )
      yield* Effect.yieldNow
      yield* Scope.close(first, Exit.void)
      yield* Fiber.join(waiter)
      assert.strictEqual((yield* held(backend)).pins, 1)
      order.length = 0
      yield* Scope.close(second, Exit.void)
      assert.deepStrictEqual(order, ["placement", "pin", "tokens"])
      assert.deepStrictEqual(yield* held(backend), nothing)
    }))

  it.effect("gives back what it took when taking the next thing dies", () =>
    Effect.gen(function*() {
      const { affinity, backend, held, placement } = yield* world()
      const broken: Placement.RoutingState = {
        ...placement,
        dispatchedAt: () => {
          throw new Error("placement broke")
        }
      }
      const exit = yield* Effect.exit(
        Effect.scoped(Hold.hold(affinity, broken, request("hello", { sessionKey: "s:1" }), backend, 1000, progress))
      )
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      assert.deepStrictEqual(yield* held(backend), nothing)
    }))
})
