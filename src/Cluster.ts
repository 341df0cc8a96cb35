/**
 * Running on every core: `--workers N` (or `SLUICE_WORKERS`, `auto` = one per core) forks N
 * node:cluster workers that share the listening socket; each runs the whole Layer graph.
 * Budgets are shared when `REDIS_URL` is set (otherwise each worker enforces its own);
 * breakers, backend statistics and the affinity index are per worker (soft state).
 *
 * Simulated engines (`simulate:` backends) are started once, in the primary, and handed to
 * the workers by URL, so N workers front one fleet, not N fleets. The primary restarts a
 * worker that dies and, on SIGINT/SIGTERM, lets every worker drain before exiting. Each
 * worker has a slot (`SLUICE_WORKER_SLOT`, 0..N-1) that outlives it: its replacement gets
 * the same slot, and with it the ledger journal the dead worker left to settle.
 *
 * A drained stop on SIGINT/SIGTERM exits 0 (Effect's default for an interrupted main
 * fiber is 130, which supervisors such as `restart: on-failure` read as a crash).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Runtime } from "effect"
import cluster from "node:cluster"
import { availableParallelism } from "node:os"
import * as Gateway from "./Gateway.ts"

const flag = (argv: ReadonlyArray<string>, name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`)
  if (i >= 0) return argv[i + 1]
  return argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
}

export const workerCount = (argv: ReadonlyArray<string>, env: NodeJS.ProcessEnv): number => {
  const raw = flag(argv, "workers") ?? env["SLUICE_WORKERS"]
  if (raw === undefined || raw === "") return 1
  if (raw === "auto") return availableParallelism()
  const n = Number(raw)
  return Number.isInteger(n) && n >= 1 ? n : 1
}

/** The primary: starts shared simulated engines, forks workers, restarts the ones that die. */
const primary = (argv: ReadonlyArray<string>, workers: number) =>
  Effect.gen(function*() {
    const urls = yield* Gateway.launchSimulatedFleet(argv)
    const env = { SLUICE_SIMULATED_URLS: JSON.stringify(urls), SLUICE_WORKER: "1" }
    let stopping = false
    const slots = new Map<number, number>()
    const fork = (slot: number) => slots.set(cluster.fork({ ...env, SLUICE_WORKER_SLOT: String(slot) }).id, slot)
    cluster.on("exit", (worker, code, signal) => {
      const slot = slots.get(worker.id) ?? 0
      slots.delete(worker.id)
      if (stopping) return
      Effect.runFork(Effect.logWarning("worker exited; restarting").pipe(
        Effect.annotateLogs({ pid: worker.process.pid, code, signal, slot })
      ))
      setTimeout(() => fork(slot), 500)
    })
    for (let i = 0; i < workers; i++) fork(i)
    yield* Effect.logInfo("sluice primary started").pipe(Effect.annotateLogs({ workers }))
    yield* Effect.addFinalizer(() =>
      Effect.callback<void>((resume) => {
        stopping = true
        const alive = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined)
        if (alive.length === 0) return resume(Effect.void)
        let left = alive.length
        for (const w of alive) {
          w.once("exit", () => {
            if (--left === 0) resume(Effect.void)
          })
          w.process.kill("SIGTERM")
        }
      })
    )
    return yield* Effect.never
  })

/** A main fiber interrupted by SIGINT/SIGTERM has drained: that is a clean exit. */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

/** Entry point of the service binary. */
export const main = (argv: ReadonlyArray<string>): void => {
  const workers = workerCount(argv, process.env)
  if (workers > 1 && cluster.isPrimary) {
    NodeRuntime.runMain(Layer.launch(Layer.effectDiscard(primary(argv, workers)).pipe(Layer.provide(Gateway.logging(argv)))), {
      teardown
    })
    return
  }
  NodeRuntime.runMain(Layer.launch(Gateway.main(argv)), { teardown })
}
