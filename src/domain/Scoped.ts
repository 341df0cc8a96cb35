/**
 * Scope finalizers for the per-request path, without Effect's per-run context merge.
 *
 * `Effect.addFinalizer` and `Effect.acquireRelease` capture the fiber's context and run the
 * finalizer under `provideContext(captured)`, which copies the closing fiber's whole context
 * and then every entry of the captured one into a new map each time a finalizer runs: with
 * every gateway service in the context, and five such finalizers per unary request, that was
 * 5-7% of the gateway's CPU (effect's Context.ts in `--profile`, bench/README.md round 2). These run the finalizer
 * in exactly the captured context instead (`Effect.setContext`: no copy, and nothing at all
 * when the closing fiber's context is that same context). The captured context is what the
 * finalizer saw when it was added, as with Effect's own; only services the closing fiber has
 * and the adding fiber had not would differ, and a request's scope is closed by the fiber that
 * opened it.
 *
 * Must never: be used where a finalizer needs a service provided only around the scope's close.
 */
import { Context, Effect, type Exit, Scope } from "effect"

/**
 * As `Effect.addFinalizer`, the finalizer run in the context it was added in. The scope and
 * the context are read off the fiber in one step (two Effect operations per finalizer added
 * instead of four; several per request).
 */
export const addFinalizer = <R>(
  finalizer: (exit: Exit.Exit<unknown, unknown>) => Effect.Effect<unknown, never, R>
): Effect.Effect<void, never, R | Scope.Scope> =>
  Effect.withFiber((fiber) => {
    const context = fiber.context as Context.Context<R | Scope.Scope>
    return Scope.addFinalizerExit(Context.get(context, Scope.Scope), (exit) => Effect.setContext(finalizer(exit), context))
  })

/** As `Effect.acquireRelease`: the acquisition is uninterruptible and its release added in the same step. */
export const acquireRelease = <A, E, R, R2>(
  acquire: Effect.Effect<A, E, R>,
  release: (a: A, exit: Exit.Exit<unknown, unknown>) => Effect.Effect<unknown, never, R2>
): Effect.Effect<A, E, R | R2 | Scope.Scope> =>
  Effect.uninterruptible(Effect.tap(acquire, (a) => addFinalizer((exit) => release(a, exit))))
