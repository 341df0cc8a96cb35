/**
 * What bounding one effect by a deadline costs per use, in CPU: `Effect.timeoutOrElse` (a race of
 * two forked fibers, one a sleep) against `Deadline.within` (one fork started at once, one plain
 * timer only when the effect suspends), for an effect that suspends once and one that does not.
 * One process, 20,000 uses per figure, three rounds (the first warms up).
 *
 *   npm run bench:deadline
 */
import { Effect } from "effect"
import { within } from "../src/domain/Deadline.ts"
const N = 20000
const asyncWork = Effect.gen(function*() { yield* Effect.yieldNow; return 1 })
const syncWork = Effect.succeed(1)
const loop = (e: Effect.Effect<unknown, unknown>) => Effect.gen(function*() { for (let i = 0; i < N; i++) yield* e })
const cpu = async (e: Effect.Effect<unknown, unknown>) => { const t = process.cpuUsage(); await Effect.runPromise(e); const d = process.cpuUsage(t); return (d.user + d.system) / N }
for (const [name, w] of [["suspends", asyncWork], ["sync", syncWork]] as const) {
  for (let r = 0; r < 3; r++) {
    const a = await cpu(loop(w))
    const b = await cpu(loop(w.pipe(Effect.timeoutOrElse({ duration: 5000, orElse: () => Effect.fail("late") }))))
    const c = await cpu(loop(within(w, 5000, () => Effect.fail("late"))))
    console.log(`${name}: plain ${a.toFixed(2)} µs  timeoutOrElse ${b.toFixed(2)} µs  within ${c.toFixed(2)} µs`)
  }
}
