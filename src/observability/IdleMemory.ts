/**
 * Gives memory back to the OS once the gateway has gone idle after being busy: one
 * memory-reducing full GC (V8's "last resort" collection: compacts the old generation,
 * releases emptied pages and shrinks the young generation to its minimum) when no request has
 * been in flight and none has started for `server.idle_gc_after` (default 10 s), once per
 * quiet period.
 *
 * Why: V8 keeps a heap grown under load (9,000 open streams: ~600 MB committed) and the young
 * generation it grew during start-up (2 × 16 MiB semi-spaces) for as long as the process
 * lives. Its own memory reducer, meant to do this, never starts in a Node 24 process that has
 * not created a vm context: it waits for a low allocation rate, and the embedder part of that
 * rate reads as high forever (`--trace-memory-reducer --trace-mutator-utilization`: "Embedder
 * mutator utilization = 0.000 ... Memory reducer: high alloc", every 8 s, on an idle process).
 * bench/README.md, round 2, "Idle memory" has the figures.
 *
 * The collection is synchronous: it stops the event loop for tens of milliseconds on an idle
 * heap and a few hundred after a large load (measured there). So it never runs while any
 * request is in flight (a stream open for hours keeps it off for hours), and a request that
 * arrives during it waits for the rest of it. Owns: its polling fiber. Must never: run while a
 * request is in flight, or more than once per quiet period.
 */
import { Clock, Duration, Effect, Layer } from "effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

/** What the reducer reads of the gateway's traffic (request/Lifecycle.ts keeps both). */
export interface Activity {
  /** Requests in flight now. */
  readonly inFlight: number
  /** Requests accepted since start (only compared for change). */
  readonly accepted: number
}

/** The reducer's memory between two polls. */
export interface Watch {
  /** `accepted` when last seen. */
  readonly accepted: number
  /** When the current quiet period started (ms): nothing in flight and nothing accepted since. */
  readonly quietSinceMs: number
  /** `accepted` at the last reduction: equal to `accepted` means this quiet period had its GC. */
  readonly reducedAt: number
}

/** At start: start-up itself counts as busy (its garbage and grown young generation are given back too). */
export const initial = (nowMs: number): Watch => ({ accepted: 0, quietSinceMs: nowMs, reducedAt: -1 })

/**
 * One poll: the next watch, and whether to reduce now. Quiet means nothing in flight and
 * nothing accepted since the last poll; a reduction needs `afterMs` of quiet and a request
 * (or the start) since the last one.
 */
export const step = (watch: Watch, now: Activity, nowMs: number, afterMs: number): readonly [Watch, boolean] => {
  if (now.inFlight > 0 || now.accepted !== watch.accepted) {
    return [{ accepted: now.accepted, quietSinceMs: nowMs, reducedAt: watch.reducedAt }, false]
  }
  if (watch.reducedAt === now.accepted || nowMs - watch.quietSinceMs < afterMs) return [watch, false]
  return [{ ...watch, reducedAt: now.accepted }, true]
}

/** How often the reducer looks: a quarter of the quiet time it waits for, between 250 ms and 5 s. */
export const pollMs = (afterMs: number): number => Math.min(5_000, Math.max(250, Math.floor(afterMs / 4)))

type Gc = (options: { readonly type: "major"; readonly flavor: "last-resort" }) => void

/**
 * V8's `gc` function, which Node offers only with `--expose-gc` on the command line: the flag
 * set now applies to contexts created after it, so a new vm context has it (the main context
 * does not). Measured side effect: once a vm context exists, V8's own memory reducer works
 * too (module header).
 */
const exposeGc = (): Gc => {
  setFlagsFromString("--expose-gc")
  const gc: Gc = runInNewContext("gc")
  setFlagsFromString("--no-expose-gc")
  return gc
}

/** A memory-reducing full GC of the whole heap. */
export const memoryReducingGc = (): (() => void) => {
  const gc = exposeGc()
  return () => gc({ type: "major", flavor: "last-resort" })
}

/**
 * The reducer's polling fiber, in the layer's scope. `afterMs` 0 turns it off (nothing is
 * set up: no vm context, no fiber). `reduce` is the GC (a test passes a counter).
 */
export const layer = (options: {
  readonly afterMs: number
  readonly activity: () => Activity
  readonly reduce?: (() => void) | undefined
}): Layer.Layer<never> =>
  options.afterMs <= 0 ? Layer.empty : Layer.effectDiscard(Effect.gen(function*() {
    const reduce = options.reduce ?? memoryReducingGc()
    let watch = initial(yield* Clock.currentTimeMillis)
    const poll = Effect.flatMap(Clock.currentTimeMillis, (nowMs) => {
      const [next, now] = step(watch, options.activity(), nowMs, options.afterMs)
      watch = next
      return now ? reduceLogged(reduce) : Effect.void
    })
    const every = Duration.millis(pollMs(options.afterMs))
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(every), poll)))
  }))

/** Runs the GC and logs (debug) how long the event loop was stopped for it. */
const reduceLogged = (reduce: () => void): Effect.Effect<void> =>
  Effect.suspend(() => {
    // wall time of a synchronous stretch (the test clock would read 0)
    const t0 = performance.now()
    reduce()
    const ms = performance.now() - t0
    return Effect.logDebug("idle memory reducer: full GC").pipe(Effect.annotateLogs({ gc_ms: Math.round(ms) }))
  })
