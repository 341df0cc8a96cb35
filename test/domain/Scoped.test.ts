/**
 * Scoped.addFinalizer / Scoped.acquireRelease: Effect's own semantics (run once at the
 * scope's close with its exit, on success, failure and interruption; nothing to release when
 * the acquisition failed) with the finalizer run in the context it was added in.
 */
import { Context, Effect, Exit, Fiber } from "effect"
import { describe, expect, it } from "vitest"
import * as Scoped from "../../src/domain/Scoped.ts"

class Tag extends Context.Service<Tag, { readonly name: string }>()("test/Scoped/Tag") {}

describe("Scoped", () => {
  it("runs a finalizer once at the scope's close, with its exit, in the context it was added in", async () => {
    const seen: Array<string> = []
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      yield* Scoped.addFinalizer((exit) =>
        Effect.gen(function*() {
          const t = yield* Tag
          seen.push(`${t.name}:${Exit.isSuccess(exit) ? "ok" : "failed"}`)
        })
      ).pipe(Effect.provideService(Tag, { name: "inner" }))
      expect(seen).toEqual([])
      return 42
    })))
    expect(result).toBe(42)
    expect(seen).toEqual(["inner:ok"])
  })

  it("releases once with the failure's exit, and on interruption", async () => {
    const released: Array<string> = []
    const failed = await Effect.runPromiseExit(Effect.scoped(Effect.gen(function*() {
      const n = yield* Scoped.acquireRelease(Effect.succeed(1), (a, exit) =>
        Effect.sync(() => released.push(`${a}:${Exit.isFailure(exit) ? "failed" : "ok"}`)))
      return yield* Effect.fail(`boom ${n}`)
    })))
    expect(Exit.isFailure(failed)).toBe(true)
    expect(released).toEqual(["1:failed"])

    const fiber = Effect.runFork(Effect.scoped(Effect.gen(function*() {
      yield* Scoped.acquireRelease(Effect.succeed(2), (a, exit) =>
        Effect.sync(() => released.push(`${a}:${Exit.hasInterrupts(exit) ? "interrupted" : "other"}`)))
      return yield* Effect.never
    })))
    await new Promise((r) => setTimeout(r, 10))
    await Effect.runPromise(Fiber.interrupt(fiber))
    expect(released).toEqual(["1:failed", "2:interrupted"])
  })

  it("has nothing to release when the acquisition failed", async () => {
    let releases = 0
    const exit = await Effect.runPromiseExit(Effect.scoped(
      Scoped.acquireRelease(Effect.fail("no"), () => Effect.sync(() => releases++))
    ))
    expect(Exit.isFailure(exit)).toBe(true)
    expect(releases).toBe(0)
  })
})
