/**
 * `Deadline.within`: the value or typed failure of an effect that ends in time (whether or not it
 * suspends), `orElse` after interrupting one that does not, and the effect interrupted with its
 * caller. Deadlines here are either far (never reached) or zero (reached as soon as the effect
 * suspends): nothing depends on how fast the machine is.
 */
import { Deferred, Effect, Exit, Fiber } from "effect"
import { describe, expect, it } from "vitest"
import { within } from "../../src/domain/Deadline.ts"

const late = () => Effect.fail("late" as const)

describe("Deadline.within", () => {
  it("gives the value of an effect that ends without suspending", async () => {
    expect(await Effect.runPromise(within(Effect.succeed(1), 0, late))).toBe(1)
  })

  it("gives the value of an effect that suspends and ends in time", async () => {
    const work = Effect.gen(function*() {
      yield* Effect.yieldNow
      yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
      return 2
    })
    expect(await Effect.runPromise(within(work, 60_000, late))).toBe(2)
  })

  it("passes a typed failure and a defect through", async () => {
    const failed = await Effect.runPromiseExit(within(Effect.fail("no" as const), 60_000, late))
    expect(failed).toStrictEqual(Exit.fail("no"))
    const suspendedFail = await Effect.runPromiseExit(within(Effect.andThen(Effect.yieldNow, Effect.fail("no" as const)), 60_000, late))
    expect(suspendedFail).toStrictEqual(Exit.fail("no"))
    const died = await Effect.runPromiseExit(within(Effect.die("boom"), 60_000, late))
    expect(Exit.isFailure(died) && !Exit.hasInterrupts(died)).toBe(true)
  })

  it("interrupts an effect that does not end in time, then runs orElse", async () => {
    const events: Array<string> = []
    const never = Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => events.push("interrupted"))))
    const exit = await Effect.runPromiseExit(
      within(never, 0, () => Effect.andThen(Effect.sync(() => events.push("orElse")), Effect.fail("late" as const)))
    )
    expect(exit).toStrictEqual(Exit.fail("late"))
    expect(events).toEqual(["interrupted", "orElse"])
  })

  it("interrupts the effect when its caller is interrupted while it waits", async () => {
    const result = await Effect.runPromise(Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const stopped = yield* Deferred.make<void>()
      const work = Effect.andThen(Deferred.succeed(started, undefined), Effect.never).pipe(
        Effect.onInterrupt(() => Deferred.succeed(stopped, undefined))
      )
      const caller = yield* Effect.forkChild(within(work, 60_000, late))
      yield* Deferred.await(started)
      yield* Fiber.interrupt(caller)
      yield* Deferred.await(stopped)
      return "stopped"
    }))
    expect(result).toBe("stopped")
  })
})
