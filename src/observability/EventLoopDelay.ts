/**
 * The gateway's event-loop delay, from `perf_hooks.monitorEventLoopDelay` (a libuv timer
 * every 10 ms that records how late it fires), as the Prometheus summary
 * `sluice_event_loop_delay_seconds`: p50, p99 and the maximum (`quantile="1"`) over a
 * sliding window of the last 30–35 s, with `_sum` and `_count` since start. The value is
 * the lateness beyond the 10 ms sampling interval, so an idle loop reads ~0.
 *
 * The window is six 5 s slices plus the current one: every 5 s the monitor's histogram is
 * turned into its samples (at most ~500; reconstructed from its percentile table) and
 * reset. Owns the monitor (enabled while the layer lives) and its rotation fiber; never
 * touches request state and costs nothing per request.
 */
import { Context, Duration, Effect, Layer } from "effect"
import { type Histogram, monitorEventLoopDelay } from "node:perf_hooks"

/** The monitor's sampling interval, ms. */
export const RESOLUTION_MS = 10
const SLICE_MS = 5_000
const SLICES = 6

export interface DelaySnapshot {
  /** Seconds, over the window. */
  readonly p50: number
  readonly p99: number
  readonly max: number
  /** Samples in the window. */
  readonly samples: number
  /** Since start: total delay (seconds) and samples. */
  readonly sum: number
  readonly count: number
}

/** The samples a histogram holds, in seconds of delay beyond the interval, ascending. */
const samplesOf = (h: Histogram): Array<number> => {
  const out: Array<number> = []
  const count = h.count
  if (count === 0) return out
  let recorded = 0
  for (const [percentile, ns] of h.percentiles) {
    const upTo = Math.round((percentile / 100) * count)
    const delay = Math.max(0, ns / 1e6 - RESOLUTION_MS) / 1000
    for (; recorded < upTo; recorded++) out.push(delay)
  }
  return out
}

const quantile = (sorted: ReadonlyArray<number>, q: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!

export class EventLoopDelay extends Context.Service<EventLoopDelay, {
  readonly snapshot: Effect.Effect<DelaySnapshot>
  /** The summary in the Prometheus text format. */
  readonly exposition: Effect.Effect<string>
}>()("sluice/observability/EventLoopDelay") {
  static readonly layer = Layer.effect(
    EventLoopDelay,
    Effect.gen(function*() {
      const monitor = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const m = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
          m.enable()
          return m
        }),
        (m) => Effect.sync(() => m.disable())
      )
      const slices: Array<{ readonly samples: ReadonlyArray<number>; readonly max: number }> = []
      let sum = 0
      let count = 0
      const current = () => {
        const samples = samplesOf(monitor)
        const max = monitor.count === 0 ? 0 : Math.max(0, monitor.max / 1e6 - RESOLUTION_MS) / 1000
        return { samples, max }
      }
      const rotate = Effect.sync(() => {
        const slice = current()
        for (const s of slice.samples) sum += s
        count += slice.samples.length
        slices.push(slice)
        if (slices.length > SLICES) slices.shift()
        monitor.reset()
      })
      yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(Duration.millis(SLICE_MS)), rotate)))

      const snapshot = Effect.sync((): DelaySnapshot => {
        const live = current()
        const all = [...slices, live]
        const samples = all.flatMap((s) => s.samples).sort((a, b) => a - b)
        let liveSum = 0
        for (const s of live.samples) liveSum += s
        return {
          p50: quantile(samples, 0.5),
          p99: quantile(samples, 0.99),
          max: Math.max(0, ...all.map((s) => s.max)),
          samples: samples.length,
          sum: sum + liveSum,
          count: count + live.samples.length
        }
      })
      return EventLoopDelay.of({
        snapshot,
        exposition: Effect.map(snapshot, (s) =>
          [
            "# HELP sluice_event_loop_delay_seconds Event-loop delay beyond the 10 ms sampling interval; quantiles over the last 30-35 s (quantile 1 is the maximum), sum and count since start",
            "# TYPE sluice_event_loop_delay_seconds summary",
            `sluice_event_loop_delay_seconds{quantile="0.5"} ${s.p50}`,
            `sluice_event_loop_delay_seconds{quantile="0.99"} ${s.p99}`,
            `sluice_event_loop_delay_seconds{quantile="1"} ${s.max}`,
            `sluice_event_loop_delay_seconds_sum ${s.sum}`,
            `sluice_event_loop_delay_seconds_count ${s.count}`,
            ""
          ].join("\n"))
      })
    })
  )
}
