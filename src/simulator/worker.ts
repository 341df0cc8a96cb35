/**
 * The entry point of one embedded engine thread: a `worker_threads` Worker that Supervisor.ts starts with
 * the engine's `SimulatorOptions` as `workerData`. It starts one simulator instance, tells the parent its
 * port (`Ready`) or why it could not start (`Failed`), and serves until the thread ends.
 *
 * Whatever goes wrong in here (an uncaught exception in a timer callback, heap exhaustion under the
 * worker's `resourceLimits`, the admin API's `exit` crash) ends this thread only; the gateway thread sees
 * the worker exit and restarts it. Must never: catch a crash to keep a broken engine serving, or share
 * state with the parent beyond these messages.
 */
import { Effect } from "effect"
import { parentPort, workerData } from "node:worker_threads"
import * as Simulator from "./Simulator.ts"

/** What the thread tells its parent, once. */
export type ThreadMessage =
  | { readonly _tag: "Ready"; readonly url: string; readonly port: number }
  | { readonly _tag: "Failed"; readonly message: string }

const port = parentPort
if (port === null) throw new Error("src/simulator/worker.ts runs as a worker thread (see Supervisor.ts)")

const send = (message: ThreadMessage) => Effect.sync(() => port.postMessage(message))

/** The parent sends validated options; `Simulator.startWith` checks every field again. */
const isOptions = (u: unknown): u is Simulator.SimulatorOptions =>
  typeof u === "object" && u !== null && "profile" in u && "model" in u

const program = Effect.gen(function*() {
  const options: unknown = workerData
  if (!isOptions(options)) return yield* send({ _tag: "Failed", message: "workerData is not SimulatorOptions" })
  const sim = yield* Simulator.startWith(options, { onExit: () => process.exit(1) })
  yield* send({ _tag: "Ready", url: sim.url, port: Number(new URL(sim.url).port) })
  return yield* Effect.never
}).pipe(
  Effect.scoped,
  // Nothing else keeps the thread alive after a failed start: it ends by itself.
  Effect.catch((e) => send({ _tag: "Failed", message: e.message }))
)

Effect.runFork(program)
