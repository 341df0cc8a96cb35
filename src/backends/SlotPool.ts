/**
 * Bounded per-backend model slots. A slot is held for one attempt and released when the
 * attempt's scope closes: the holder never releases by hand. Waiting here is the only wait
 * for capacity a request has (the upstream pool is at least as large as the slots); the
 * caller learns how long it waited, and meters it.
 *
 * Waiters queue FIFO and a released slot is handed straight to the next waiter. A waiter
 * interrupted at the moment of handover gives the slot back, so no interleaving of
 * interruption and release can leak a permit. Counters are plain fields because the
 * router reads them on every request (a snapshot per pick).
 */
import { Clock, Effect, Scope } from "effect"
import { SlotsExhausted } from "./Failure.ts"

interface Waiter {
  granted: boolean
  resume: (() => void) | undefined
}

export class SlotPool {
  private held = 0
  private readonly waiters = new Set<Waiter>()

  constructor(private capacity: number) {}

  get inUse(): number {
    return this.held
  }
  get queued(): number {
    return this.waiters.size
  }
  get limit(): number {
    return this.capacity
  }
  get free(): number {
    return Math.max(0, this.capacity - this.held)
  }

  /** Changes the limit (hot reload); excess holders finish normally. */
  resize(capacity: number): void {
    this.capacity = capacity
    this.wakeWaiters()
  }

  /** Gives back a slot taken by `tryAcquire` (one `acquire` took releases itself). */
  readonly release = (): void => {
    this.held--
    this.wakeWaiters()
  }

  private wakeWaiters(): void {
    for (const waiter of this.waiters) {
      if (this.held >= this.capacity) return
      this.waiters.delete(waiter)
      this.held++
      waiter.granted = true
      waiter.resume?.()
    }
  }

  /**
   * Takes a slot now if one is free and nobody queues ahead, without waiting: the caller
   * gives it back with `release` exactly once (dispatch's hold, which releases everything
   * its attempt holds in one finalizer). False: wait in `acquire`.
   */
  tryAcquire(): boolean {
    if (this.held < this.capacity && this.waiters.size === 0) {
      this.held++
      return true
    }
    return false
  }

  /**
   * Takes a slot until the current scope closes, waiting at most `waitMs`; succeeds with the
   * milliseconds waited (0 when a slot was free), the request's queue time on this backend.
   */
  acquire(waitMs: number): Effect.Effect<number, SlotsExhausted, Scope.Scope> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.scope, (scope) => {
        if (this.tryAcquire()) return Effect.as(Scope.addFinalizer(scope, Effect.sync(this.release)), 0)
        const startedMs = Clock.currentTimeMillis
        const waiter: Waiter = { granted: false, resume: undefined }
        this.waiters.add(waiter)
        const wait = Effect.callback<void>((resume) => {
          if (waiter.granted) return resume(Effect.void)
          waiter.resume = () => resume(Effect.void)
        })
        return Effect.flatMap(startedMs, (started) =>
          restore(Effect.timeoutOption(wait, waitMs)).pipe(
            Effect.onExit(() =>
              Effect.sync(() => {
                // Interrupted or timed out: leave the queue, or give back a slot handed over meanwhile.
                this.waiters.delete(waiter)
              })
            ),
            Effect.onInterrupt(() => Effect.sync(() => waiter.granted && this.release())),
            Effect.flatMap((got) => {
              if (got._tag === "Some" || waiter.granted) {
                return Effect.andThen(
                  Scope.addFinalizer(scope, Effect.sync(this.release)),
                  Effect.map(Clock.currentTimeMillis, (now) => now - started)
                )
              }
              return Effect.fail(new SlotsExhausted({ afterMs: waitMs }))
            })
          ))
      })
    )
  }
}
