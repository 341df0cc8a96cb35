/**
 * What a dispatch attempt holds on its backend until the attempt's scope closes: a model slot
 * (the request's only wait for capacity), its in-flight tokens, the session's KV pin (when the
 * request has a session key) and its routing placement ticket; and the queue-wait metric,
 * recorded whether it waited or not.
 *
 * Each of these was a scoped acquisition of its own (an uninterruptible region, a finalizer
 * added, and the finalizer run in its captured context when the scope closed: ~60 of a unary
 * request's ~245 Effect operations, bench/README.md round 2). Here they are plain calls in one
 * uninterruptible step that adds ONE finalizer, which gives everything back in the reverse order
 * of acquisition: placement ticket, pin, tokens, slot. When a slot is free and nobody queues
 * ahead (the fast path), the slot is taken in that same step and the same finalizer returns it;
 * otherwise the attempt waits in `Backend.holdSlot` as before (FIFO queue, `timeouts.queue`,
 * interruptible while it waits), whose own finalizer, added first, returns the slot after ours.
 *
 * Interruption cannot fall between two acquisitions, nor between the last one and the
 * finalizer (the step is uninterruptible). A throw from one of the calls (a defect) gives back
 * what was taken before it and rethrows: the only release outside the finalizer, because the
 * finalizer is added after the calls (adding it is an Effect operation, taking them is not).
 *
 * Must never: release a resource by hand anywhere else; add a second finalizer for any of them.
 */
import { Clock, Context, Effect, Scope } from "effect"
import type { GatewayRequest } from "../admission/Request.ts"
import type { Backend } from "../backends/Backend.ts"
import type { SlotsExhausted } from "../backends/Failure.ts"
import * as Metrics from "../observability/Metrics.ts"
import type { Affinity, Pin } from "../routing/Affinity.ts"
import type { AttemptProgress, PlacedAttempt } from "../routing/Contract.ts"
import type { PlacedTicket, RoutingState } from "../routing/Placement.ts"

/** What one attempt took, as it took it; `release` gives back exactly that, last taken first. */
class Held {
  slot = false
  tokens = 0
  pin: Pin | undefined = undefined
  ticket: PlacedTicket | undefined = undefined

  constructor(
    private readonly backend: Backend,
    private readonly affinity: Affinity["Service"],
    private readonly clock: Clock.Clock
  ) {}

  /** Each step runs even if an earlier one throws, as separate finalizers would. */
  release(): void {
    try {
      if (this.ticket !== undefined) this.ticket.release()
    } finally {
      try {
        if (this.pin !== undefined) this.affinity.unpin(this.pin, this.clock.currentTimeMillisUnsafe())
      } finally {
        try {
          if (this.tokens !== 0) this.backend.addInFlightTokens(-this.tokens)
        } finally {
          if (this.slot) this.backend.releaseSlot()
        }
      }
    }
  }
}

/**
 * Everything after the slot, in the fiber's `context`: `slot` says whether this step took the
 * slot (the fast path) and so must return it; `waitedMs` is the queue wait to record.
 */
const take = (
  context: Context.Context<never>,
  affinity: Affinity["Service"],
  placement: RoutingState,
  req: GatewayRequest,
  backend: Backend,
  progress: AttemptProgress,
  slot: boolean,
  waitedMs: number
): Effect.Effect<PlacedAttempt> => {
  const clock = Context.get(context, Clock.Clock)
  const held = new Held(backend, affinity, clock)
  held.slot = slot
  let scope: Scope.Scope
  let ticket: PlacedTicket
  try {
    Metrics.recordQueueWaitUnsafe(req.model.id, backend.id, waitedMs, context)
    scope = Context.get(context as Context.Context<Scope.Scope>, Scope.Scope)
    const now = clock.currentTimeMillisUnsafe()
    backend.addInFlightTokens(req.estimate.reservationTokens)
    held.tokens = req.estimate.reservationTokens
    if (req.sessionKey !== undefined) held.pin = affinity.pinAt(req.sessionKey, backend.id, now)
    // Routing state: prefix blocks recorded for this backend, in-flight work until the scope closes.
    ticket = placement.dispatchedAt(req, backend, progress, now)
    held.ticket = ticket
  } catch (defect) {
    held.release()
    throw defect
  }
  return Effect.as(Scope.addFinalizerExit(scope, () => Effect.sync(() => held.release())), ticket)
}

/**
 * Holds a slot on `backend` (waiting at most `queueMs`), the request's tokens, its session pin
 * and its placement until the current scope closes; the attempt reports its first token to
 * routing through the handle returned.
 */
export const hold = (
  affinity: Affinity["Service"],
  placement: RoutingState,
  req: GatewayRequest,
  backend: Backend,
  queueMs: number,
  progress: AttemptProgress
): Effect.Effect<PlacedAttempt, SlotsExhausted, Scope.Scope> =>
  Effect.uninterruptible(Effect.withFiber((fiber) => {
    if (backend.takeSlotNow()) return take(fiber.context, affinity, placement, req, backend, progress, true, 0)
    return Effect.interruptible(backend.holdSlot(queueMs)).pipe(
      Effect.tapError((e) => Metrics.recordQueueWait(req.model.id, backend.id, e.afterMs)),
      Effect.flatMap((waited) =>
        Effect.withFiber((fiber) => take(fiber.context, affinity, placement, req, backend, progress, false, waited))
      )
    )
  }))
