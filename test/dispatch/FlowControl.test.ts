/**
 * Flow control as an Effect service on the test clock: turns in fair order on release, the
 * bounded wait, shedding and refusal with their reasons, and a waiter's place owned by its
 * scope (an interrupted waiter leaves the queue at once and never takes a turn).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import { bandOf, FlowControl, type FlowTicket } from "../../src/dispatch/FlowControl.ts"

const ticket = (tenant: string, over: Partial<FlowTicket> = {}): FlowTicket => ({
  model: "m",
  tenant,
  band: 0,
  cost: 100,
  maxWaitMs: 10_000,
  ...over
})

describe("FlowControl", () => {
  it.effect("gives turns on release in fair order and reports the wait", () =>
    Effect.gen(function*() {
      const flow = yield* FlowControl.make({ bands: 2, maxQueued: 10 })
      const order: Array<string> = []
      const waitFor = (t: FlowTicket, name: string) =>
        Effect.forkChild(Effect.scoped(Effect.tap(flow.wait(t), () => Effect.sync(() => order.push(name)))))
      const a1 = yield* waitFor(ticket("a"), "a1")
      const a2 = yield* waitFor(ticket("a"), "a2")
      const b1 = yield* waitFor(ticket("b"), "b1")
      const hi = yield* waitFor(ticket("c", { band: 0, cost: 5000 }), "c-hi")
      const lo = yield* waitFor(ticket("d", { band: 1 }), "d-lo")
      yield* Effect.yieldNow
      assert.strictEqual(flow.depth("m"), 5)
      yield* TestClock.adjust(250)
      yield* flow.release("m", 5)
      const waits = yield* Effect.forEach([a1, b1, a2, hi, lo], Fiber.join)
      assert.deepStrictEqual(waits, [250, 250, 250, 250, 250])
      // Band 0 first, shared by tokens (a and b cost 100, c 5,000); band 1 last.
      assert.deepStrictEqual(order, ["a1", "b1", "a2", "c-hi", "d-lo"])
      assert.strictEqual(flow.depth("m"), 0)
    }))

  it.effect("a waiter times out after its maximum wait, leaving the queue", () =>
    Effect.gen(function*() {
      const flow = yield* FlowControl.make({ bands: 1, maxQueued: 10 })
      const waiter = yield* Effect.forkChild(Effect.scoped(flow.wait(ticket("a", { maxWaitMs: 1000 }))))
      yield* Effect.yieldNow
      yield* TestClock.adjust(1001)
      const exit = yield* Fiber.await(waiter)
      assert.isTrue(Exit.isFailure(exit))
      assert.include(JSON.stringify(exit), "\"reason\":\"timeout\"")
      assert.strictEqual(flow.depth("m"), 0)
    }))

  it.effect("sheds a lower band for a higher one, refuses when nothing can go, with a retry-after", () =>
    Effect.gen(function*() {
      const flow = yield* FlowControl.make({ bands: 2, maxQueued: 1 })
      const low = yield* Effect.forkChild(Effect.scoped(flow.wait(ticket("batch", { band: 1, maxWaitMs: 7000 }))))
      yield* Effect.yieldNow
      const high = yield* Effect.forkChild(Effect.scoped(flow.wait(ticket("web", { band: 0 }))))
      yield* Effect.yieldNow
      const lowExit = yield* Fiber.await(low)
      assert.isTrue(Exit.isFailure(lowExit))
      assert.include(JSON.stringify(lowExit), "\"reason\":\"shed\"")
      assert.include(JSON.stringify(lowExit), "\"retryAfterMs\":7000")
      // Full again with band 0: another band-1 request is refused on arrival.
      const refused = yield* Effect.scoped(flow.wait(ticket("batch", { band: 1 }))).pipe(Effect.flip)
      assert.strictEqual(refused.reason, "full")
      yield* flow.release("m")
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(high)))
    }))

  it.effect("an interrupted waiter (client gone) leaves at once and never takes a turn", () =>
    Effect.gen(function*() {
      const flow = yield* FlowControl.make({ bands: 1, maxQueued: 10 })
      const scope = yield* Scope.make()
      const gone = yield* Effect.forkChild(flow.wait(ticket("a")).pipe(Scope.provide(scope)))
      const stays = yield* Effect.forkChild(Effect.scoped(flow.wait(ticket("b"))))
      yield* Effect.yieldNow
      assert.strictEqual(flow.depth("m"), 2)
      yield* Fiber.interrupt(gone)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(flow.depth("m"), 1)
      // The one turn goes to the waiter still there.
      yield* flow.release("m")
      assert.strictEqual(yield* Fiber.join(stays), 0)
      assert.strictEqual(flow.depth("m"), 0)
    }))

  it.effect("a turn given to a waiter that left before taking it passes to the next waiter", () =>
    Effect.gen(function*() {
      const flow = yield* FlowControl.make({ bands: 1, maxQueued: 10 })
      const scope = yield* Scope.make()
      const gone = yield* Effect.forkChild(flow.wait(ticket("a")).pipe(Scope.provide(scope)))
      const next = yield* Effect.forkChild(Effect.scoped(flow.wait(ticket("b"))))
      yield* Effect.yieldNow
      // "gone"'s fiber is interrupted but its place is still in its (not yet closed) scope: the
      // turn goes to it and is never taken; closing the scope hands the turn on.
      yield* Fiber.interrupt(gone)
      yield* flow.release("m")
      assert.strictEqual(flow.depth("m"), 1)
      yield* Scope.close(scope, Exit.void)
      // Without the hand-on, "next" would wait for a release that never comes.
      assert.strictEqual(yield* Fiber.join(next), 0)
      assert.strictEqual(flow.depth("m"), 0)
    }))

  it.effect("nudge: waiters that got no turn for the idle time get one (saturation no request will end)", () =>
    Effect.gen(function*() {
      const flow = yield* FlowControl.make({ bands: 1, maxQueued: 10 })
      const waiter = yield* Effect.forkChild(Effect.scoped(flow.wait(ticket("a"))))
      yield* Effect.yieldNow
      yield* TestClock.adjust(500)
      yield* flow.nudge(1000)
      assert.strictEqual(flow.depth("m"), 1)
      yield* TestClock.adjust(500)
      yield* flow.nudge(1000)
      assert.strictEqual(yield* Fiber.join(waiter), 1000)
    }))

  it("bandOf: the tenant's band, or a lower priority by header when the tenant may set one, never a higher", () => {
    const plan = {
      bands: 3,
      defaultBand: 1,
      maxQueued: 10,
      maxWaitMs: 1000,
      tenants: new Map([
        ["gold", { band: 0, weight: 2, priorityHeader: true }],
        ["std", { band: 1, weight: 1, priorityHeader: false }]
      ])
    }
    assert.strictEqual(bandOf(plan, "gold", undefined), 0)
    assert.strictEqual(bandOf(plan, "gold", "2"), 2)
    assert.strictEqual(bandOf(plan, "gold", "9"), 2)
    assert.strictEqual(bandOf(plan, "gold", "high"), 0)
    assert.strictEqual(bandOf(plan, "std", "2"), 1)
    assert.strictEqual(bandOf(plan, "std", "0"), 1)
    assert.strictEqual(bandOf(plan, "unknown", "0"), 1)
  })
})
