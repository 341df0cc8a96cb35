/**
 * The idle memory reducer: one memory-reducing GC once the gateway has been quiet (nothing in
 * flight, nothing accepted) for the configured time, never while a request is in flight, at
 * most once per quiet period; and the GC it runs really gives the young generation back.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { getHeapSpaceStatistics } from "node:v8"
import * as IdleMemory from "../../src/observability/IdleMemory.ts"

const AFTER = 10_000

/** Polls `step` every `every` ms over the activity timeline; returns the times it reduced at. */
const run = (timeline: (ms: number) => IdleMemory.Activity, untilMs: number, every = 1000): Array<number> => {
  let watch = IdleMemory.initial(0)
  const fired: Array<number> = []
  for (let ms = every; ms <= untilMs; ms += every) {
    const [next, now] = IdleMemory.step(watch, timeline(ms), ms, AFTER)
    watch = next
    if (now) fired.push(ms)
  }
  return fired
}

describe("IdleMemory.step", () => {
  it("reduces once after start-up has been quiet for the configured time", () => {
    assert.deepStrictEqual(run(() => ({ inFlight: 0, accepted: 0 }), 60_000), [10_000])
  })

  it("never reduces while a request is in flight, however long", () => {
    assert.deepStrictEqual(run(() => ({ inFlight: 1, accepted: 1 }), 600_000), [])
  })

  it("waits for the quiet time after the last request ends, then reduces once per quiet period", () => {
    // start-up quiet until 10 s (reduce), busy 20–40 s, quiet after: reduce at 50 s, not again
    const timeline = (ms: number): IdleMemory.Activity =>
      ms < 20_000 ? { inFlight: 0, accepted: 0 }
      : ms <= 40_000 ? { inFlight: 3, accepted: Math.floor(ms / 100) }
      : { inFlight: 0, accepted: 400 }
    assert.deepStrictEqual(run(timeline, 120_000), [10_000, 50_000])
  })

  it("counts requests that came and went between two polls as activity", () => {
    // nothing ever in flight at a poll, but one request accepted every 5 s: never 10 s of quiet
    assert.deepStrictEqual(run((ms) => ({ inFlight: 0, accepted: 1 + Math.floor(ms / 5000) }), 60_000).filter((ms) => ms > 10_000), [])
  })

  it("polls a quarter of the quiet time, between 250 ms and 5 s", () => {
    assert.strictEqual(IdleMemory.pollMs(10_000), 2500)
    assert.strictEqual(IdleMemory.pollMs(100), 250)
    assert.strictEqual(IdleMemory.pollMs(600_000), 5000)
  })
})

describe("IdleMemory.layer", () => {
  const activity = { inFlight: 0, accepted: 0 }
  const withReducer = (afterMs: number, counter: { n: number }) =>
    IdleMemory.layer({ afterMs, activity: () => activity, reduce: () => counter.n++ })

  it.effect("fires after the quiet time on the clock, not during a request, and again after the next one", () =>
    Effect.gen(function*() {
      activity.inFlight = 0
      activity.accepted = 0
      const counter = { n: 0 }
      yield* Effect.gen(function*() {
        yield* TestClock.adjust(AFTER - 2500)
        assert.strictEqual(counter.n, 0)
        yield* TestClock.adjust(2500)
        assert.strictEqual(counter.n, 1)
        activity.inFlight = 1
        activity.accepted = 1
        yield* TestClock.adjust(10 * AFTER)
        assert.strictEqual(counter.n, 1, "never while a request is in flight")
        activity.inFlight = 0
        yield* TestClock.adjust(AFTER + 2500)
        assert.strictEqual(counter.n, 2)
        yield* TestClock.adjust(10 * AFTER)
        assert.strictEqual(counter.n, 2, "once per quiet period")
      }).pipe(Effect.provide(withReducer(AFTER, counter)))
    }))

  it.effect("is off at 0", () =>
    Effect.gen(function*() {
      activity.inFlight = 0
      activity.accepted = 0
      const counter = { n: 0 }
      yield* TestClock.adjust(1000).pipe(Effect.andThen(TestClock.adjust(100 * AFTER)), Effect.provide(withReducer(0, counter)))
      assert.strictEqual(counter.n, 0)
    }))
})

describe("IdleMemory.memoryReducingGc", () => {
  it("shrinks a grown young generation back to its minimum", () => {
    const youngMiB = () => getHeapSpaceStatistics().find((s) => s.space_name === "new_space")!.physical_space_size / 2 ** 20
    const reduce = IdleMemory.memoryReducingGc()
    // grow the young generation: many short-lived objects that survive a scavenge or two
    let keep: Array<{ i: number; s: string }> = []
    for (let i = 0; i < 3_000_000; i++) {
      keep.push({ i, s: `x${i}` })
      if (keep.length > 300_000) keep = []
    }
    keep = []
    const grown = youngMiB()
    assert.isAbove(grown, 4, `young generation grew (${grown} MiB)`)
    reduce()
    assert.isBelow(youngMiB(), 1.5, `after the GC (${grown} MiB before)`)
  })
})
