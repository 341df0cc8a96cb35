/**
 * Loading the tokenizer tables ahead of the first request: `preload` loads exactly the
 * encodings it is given (the configured models'), and a request that comes while a load is
 * under way waits for that load and then counts with the real tables. Its own file: the
 * tables are module state, and this file starts with none loaded.
 */
import { Deferred, Effect, Fiber } from "effect"
import { countTokens as o200k } from "gpt-tokenizer/encoding/o200k_base"
import { describe, expect, it } from "vitest"
import * as Tokenizer from "../../src/admission/Tokenizer.ts"

describe("Tokenizer.preload", () => {
  it("loads the encodings it is given and nothing else, once `when` has completed", async () => {
    expect(Tokenizer.isLoaded("cl100k")).toBe(false)
    expect(Tokenizer.isLoaded("o200k")).toBe(false)
    await Effect.runPromise(Effect.gen(function*() {
      const when = yield* Deferred.make<void>()
      const background = yield* Effect.forkChild(Tokenizer.preload(["chars", "cl100k", "cl100k"], Deferred.await(when)))
      yield* Effect.sleep("100 millis")
      expect(Tokenizer.isLoaded("cl100k")).toBe(false) // waiting for its moment
      yield* Deferred.succeed(when, undefined)
      yield* Fiber.join(background)
    }))
    expect(Tokenizer.isLoaded("cl100k")).toBe(true)
    expect(Tokenizer.isLoaded("o200k")).toBe(false)
  })

  it("a load that comes during a preload waits for it and counts with the real tables", async () => {
    expect(Tokenizer.isLoaded("o200k")).toBe(false)
    const text = "Write one short sentence about rivers and the sea."
    const counted = await Effect.runPromise(Effect.gen(function*() {
      const background = yield* Effect.forkChild(Tokenizer.preload(["o200k"]))
      yield* Effect.yieldNow
      expect(Tokenizer.isLoaded("o200k")).toBe(false) // still importing
      yield* Tokenizer.load("o200k")
      const n = Tokenizer.count("o200k", text)
      yield* Fiber.join(background)
      return n
    }))
    expect(counted).toBe(o200k(text, { disallowedSpecial: new Set() }))
  })

  it("upperBound is never below either encoding's count (what admission reserves while the tables load)", () => {
    const text = "naïve café, 東京"
    expect(Tokenizer.upperBound(text)).toBe(Buffer.byteLength(text))
    expect(Tokenizer.upperBound(text)).toBeGreaterThanOrEqual(Tokenizer.count("o200k", text))
    expect(Tokenizer.upperBound(text)).toBeGreaterThanOrEqual(Tokenizer.count("cl100k", text))
  })
})
