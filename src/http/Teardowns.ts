/**
 * When the teardown of a request whose client left runs: after the socket events waiting
 * behind it, not inside the client socket's close event.
 *
 * node:http emits a client socket's `close` from the event loop's close phase, and
 * @effect/platform-node interrupts the request's fiber synchronously from that event: the
 * fiber unwinds and runs its finalizers (settlement, ledger, request end, metrics, span)
 * right there, ~150–250 µs of CPU a stream. When thousands of clients leave at once, those
 * teardowns ran batch by batch between the reads of the next sockets' events, and each of
 * those events is what closes its upstream (`Upstream.onClientGone`, on the socket's end or
 * error): the upstream of the k-th client to leave waited for the teardowns of the clients
 * before it, and the engine kept generating for them meanwhile.
 *
 * `scheduler` is the request fibers' scheduler (Gateway.ts provides it to the listener): a
 * fiber that starts running while `clientLeaving` says a client socket's close is being
 * emitted yields at once, into one queue that the check phase drains a slice of time per
 * event-loop turn (`SLICE_MS`); the next turn's poll reads the sockets' pending events (and
 * closes their upstreams) before the next slice. Everything else is effect's own
 * `MixedScheduler`. Nothing is skipped or reordered within a fiber: its interruption runs
 * as before, one loop turn or more later, so every resource is still released exactly once.
 *
 * Must never: defer work outside a client socket's close (a request's normal run, a
 * backend's failure), or hold a queued teardown when the loop is otherwise idle.
 */
import { Scheduler } from "effect"

/**
 * How long one check phase runs queued teardowns before it lets the loop poll again. Each
 * socket event that arrives meanwhile waits at most this long for its turn.
 */
const SLICE_MS = 1

/** True while a client socket's close is being emitted (see `clientLeaving`). */
let leaving = false

const stopLeaving = () => {
  leaving = false
}

/**
 * Marks the rest of the current client socket `close` event (until the next tick) as a
 * client leaving: a request fiber woken in it yields its teardown to the queue. Called from
 * a `close` listener prepended to node:http's (Connections.guard), only for a socket whose
 * response is unfinished.
 */
export const clientLeaving = (): void => {
  if (leaving) return
  leaving = true
  process.nextTick(stopLeaving)
}

/** The teardowns waiting for their slice, oldest first; `head` is the next to run. */
let queue: Array<() => void> = []
let head = 0
let draining = false

const drain = () => {
  const until = performance.now() + SLICE_MS
  while (head < queue.length) {
    const task = queue[head]!
    queue[head++] = undefined as never
    task()
    if (performance.now() >= until) break
  }
  if (head < queue.length) {
    setImmediate(drain)
    return
  }
  queue = []
  head = 0
  draining = false
}

const defer = (task: () => void) => {
  queue.push(task)
  if (draining) return
  draining = true
  setImmediate(drain)
}

/** One fiber's dispatcher: a task scheduled while a client leaves is queued, the rest is effect's. */
class Dispatcher implements Scheduler.SchedulerDispatcher {
  constructor(private readonly base: Scheduler.SchedulerDispatcher) {}
  scheduleTask(task: () => void, priority: number): void {
    if (leaving) defer(task)
    else this.base.scheduleTask(task, priority)
  }
  flush(): void {
    this.base.flush()
  }
}

class DeferringScheduler implements Scheduler.Scheduler {
  readonly executionMode = "async" as const
  private readonly base = new Scheduler.MixedScheduler()
  /** A fiber woken while a client leaves yields before its first step (its teardown is then queued). */
  shouldYield(fiber: Parameters<Scheduler.Scheduler["shouldYield"]>[0]): boolean {
    return leaving || this.base.shouldYield(fiber)
  }
  makeDispatcher(): Scheduler.SchedulerDispatcher {
    return new Dispatcher(this.base.makeDispatcher())
  }
}

/** The request fibers' scheduler (see the module header). */
export const scheduler: Scheduler.Scheduler = new DeferringScheduler()
