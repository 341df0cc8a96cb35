/**
 * When the tokenizer tables load after a start (Gateway.firstQuiet): once the first requests
 * have been answered, at the first poll with nothing in flight; with no request at all, after
 * the idle time; however busy the gateway is, at the latest bound.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { firstQuiet } from "../../src/Gateway.ts"

const timing = { pollMs: 25, idleMs: 250, latestMs: 1000 }

describe("Gateway.firstQuiet", () => {
  it.effect("after the first request is answered, not while it is in flight", () =>
    Effect.gen(function*() {
      const state = { inFlight: 0, accepted: 0 }
      const fiber = yield* Effect.forkChild(firstQuiet(state, timing))
      yield* TestClock.adjust(10)
      state.inFlight = 1
      state.accepted = 1
      yield* TestClock.adjust(500)
      assert.isUndefined(fiber.pollUnsafe(), "not while the first request is in flight")
      state.inFlight = 0
      yield* TestClock.adjust(25)
      assert.isDefined(fiber.pollUnsafe())
      yield* Fiber.join(fiber)
    }))

  it.effect("with no request, after the idle time", () =>
    Effect.gen(function*() {
      const state = { inFlight: 0, accepted: 0 }
      const fiber = yield* Effect.forkChild(firstQuiet(state, timing))
      yield* TestClock.adjust(225)
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust(25)
      assert.isDefined(fiber.pollUnsafe())
    }))

  it.effect("at the latest bound however busy", () =>
    Effect.gen(function*() {
      const state = { inFlight: 3, accepted: 10 }
      const fiber = yield* Effect.forkChild(firstQuiet(state, timing))
      yield* TestClock.adjust(975)
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust(25)
      assert.isDefined(fiber.pollUnsafe())
    }))
})
