/**
 * The real-time driver: runs engine steps back to back as an Effect fiber, each taking `step_ms / timeScale` of
 * wall time, then delivers the step's tokens to the sequences' sinks (the HTTP generations). Idles without
 * spinning when the engine has nothing to do.
 *
 * Owns: the mapping between simulated and wall time (`Timebase`), the per-step OOM fault and the "slow"
 * multiplier. Simulated time is the engine's own clock (the sum of step times, plus idle gaps measured on the
 * wall clock). Timer overshoot is caught up by running the next steps without sleeping; if the host falls more
 * than `MAX_LAG_MS` behind (CPU-bound at a high time scale), the schedule is re-anchored and the shortfall is
 * counted in `counters.lagMs` instead of being charged to the engine's latencies.
 * Must never: run a step while a previous step's tokens are undelivered, or sleep for less than a timer can
 * honour (sub-millisecond waits yield to the event loop instead, so sockets and aborts are served between steps).
 */
import { Effect } from "effect"
import type { Engine, StepResult } from "./engine/engine.ts"
import type { FaultState } from "./faults.ts"
import type { SequenceSink } from "./http/wire.ts"

/** Wall-clock lag (ms) beyond which the driver stops catching up and re-anchors its schedule. */
export const MAX_LAG_MS = 50

/** Simulated ↔ wall time for one instance. */
export class Timebase {
  private anchorWall: number
  private anchorVirtual = 0
  private busy = false

  constructor(
    private readonly engine: Engine<SequenceSink>,
    private readonly timeScale: number,
    private readonly nowMs: () => number
  ) {
    this.anchorWall = nowMs()
  }

  private unclamped(): number {
    return this.anchorVirtual + (this.nowMs() - this.anchorWall) * this.timeScale
  }

  /** Simulated "now" for an arrival: never later than the end of the step in flight. */
  virtualNow(): number {
    const v = this.unclamped()
    return this.busy && v > this.engine.now ? this.engine.now : v
  }

  /** Leaving idle: simulated time catches up with the wall clock across the gap. */
  wake(): void {
    this.engine.advanceTo(this.unclamped())
    this.anchorWall = this.nowMs()
    this.anchorVirtual = this.engine.now
    this.busy = true
  }

  idle(): void {
    this.busy = false
  }

  /** Wall time at which the engine's current simulated time is due. */
  dueWall(): number {
    return this.anchorWall + (this.engine.now - this.anchorVirtual) / this.timeScale
  }

  /** After a wait: if far behind schedule, count the shortfall as lag and re-anchor at the present. */
  settle(): void {
    const now = this.nowMs()
    const lag = now - this.dueWall()
    if (lag > MAX_LAG_MS) {
      this.engine.counters.lagMs += lag * this.timeScale
      this.anchorWall = now
      this.anchorVirtual = this.engine.now
    }
  }
}

/** Wakes the idle engine loop when work arrives (level-triggered: a notify before the wait is not lost). */
export class Wakeup {
  private pending = false
  private resume: ((effect: Effect.Effect<void>) => void) | undefined

  notify(): void {
    const resume = this.resume
    if (resume !== undefined) {
      this.resume = undefined
      resume(Effect.void)
    } else {
      this.pending = true
    }
  }

  readonly wait: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.pending) {
      this.pending = false
      resume(Effect.void)
      return
    }
    this.resume = resume
    return Effect.sync(() => {
      this.resume = undefined
    })
  })
}

/** Yields to the Node event loop (I/O callbacks run) without a timer's 1 ms floor. */
const yieldToEventLoop: Effect.Effect<void> = Effect.callback<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

const deliver = (r: StepResult<SequenceSink>): void => {
  for (let i = 0; i < r.emitted.length; i++) {
    const seq = r.emitted[i]!
    seq.sink.onToken(seq)
  }
}

export interface DriverOptions {
  readonly engine: Engine<SequenceSink>
  readonly faults: FaultState
  readonly timebase: Timebase
  readonly wakeup: Wakeup
  /** Monotonic wall-clock ms. */
  readonly nowMs: () => number
  /** Runs after every step that did something (publishes the step's KV-cache events). */
  readonly afterStep?: () => void
}

export const runEngineLoop = Effect.fn("Simulator.engineLoop")(function*(options: DriverOptions) {
  const { engine, faults, timebase, wakeup, nowMs, afterStep } = options
  const idle = Effect.gen(function*() {
    timebase.idle()
    yield* wakeup.wait
    timebase.wake()
  })
  while (true) {
    if (!engine.hasWork) {
      yield* idle
      continue
    }
    if (faults.drawOom()) {
      for (const seq of engine.failRunning()) seq.sink.onFail(seq, "oom")
    }
    engine.slow = faults.current.slow
    const r = engine.step()
    afterStep?.()
    if (r.scheduled === 0) {
      yield* idle
      continue
    }
    const ahead = timebase.dueWall() - nowMs()
    if (ahead >= 1) yield* Effect.sleep(ahead)
    else yield* yieldToEventLoop
    timebase.settle()
    deliver(r)
  }
})
