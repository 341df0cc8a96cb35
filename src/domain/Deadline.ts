/**
 * A deadline on the per-request path for one effect, cheaper than `Effect.timeoutOrElse`.
 *
 * `Effect.timeoutOrElse` is `raceFirst(self, sleep)`: two child fibers (the second a sleep
 * on the Clock) and a callback, every time; ~13 µs of CPU per use when `self` suspends
 * (bench/README.md, round 2), and the unary path used three per request (the authenticator's
 * answer, the backend's headers, its body). `within` forks `self` once, starting it at once:
 * an effect that finishes without suspending (a cached key) costs that one fork and no timer;
 * one that suspends is awaited with one plain timer (cleared when it finishes). On time-out
 * `self` is interrupted, and awaited, before `orElse` runs; interrupting the caller
 * interrupts `self` as well. The timer is a plain `setTimeout`, as the upstream's own header
 * deadline: a `TestClock` does not move it.
 *
 * Must never: be used where `self` needs to keep running after the deadline (it is interrupted).
 */
import { Effect, Fiber } from "effect"

export const within = <A, E, R, A2, E2>(
  self: Effect.Effect<A, E, R>,
  ms: number,
  orElse: () => Effect.Effect<A2, E2>
): Effect.Effect<A | A2, E | E2, R> =>
  Effect.flatMap(Effect.forkChild(self, { startImmediately: true }), (fiber) => {
    const exit = fiber.pollUnsafe()
    if (exit !== undefined) return exit
    return Effect.callback<A | A2, E | E2>((resume) => {
      const timer = setTimeout(() => {
        stop()
        resume(Effect.andThen(Fiber.interrupt(fiber), orElse()))
      }, Math.max(0, ms))
      const stop = fiber.addObserver((exit) => {
        clearTimeout(timer)
        resume(exit)
      })
      // The caller was interrupted while waiting: so is `self`.
      return Effect.suspend(() => {
        clearTimeout(timer)
        stop()
        return Fiber.interrupt(fiber)
      })
    })
  })
