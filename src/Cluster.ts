/**
 * Running on every core: `--workers N` (or `SLUICE_WORKERS`, `auto` = one per core) forks N
 * node:cluster workers that share the listening socket; each runs the whole Layer graph.
 * Budgets are shared when `REDIS_URL` is set (otherwise each worker enforces its own);
 * breakers, backend statistics and the affinity index are per worker (soft state).
 *
 * Simulated engines (`simulate:` backends) are started once, in the primary, and handed to
 * the workers by URL, so N workers front one fleet, not N fleets. The primary restarts a
 * worker that dies, passes SIGHUP (reload) on to every worker and, on SIGINT/SIGTERM, lets
 * every worker drain before exiting. Each worker has a slot (`SLUICE_WORKER_SLOT`, 0..N-1) that outlives it: its replacement gets
 * the same slot, and with it the ledger journal the dead worker left to settle.
 *
 * A drained stop on SIGINT/SIGTERM exits 0 (Effect's default for an interrupted main
 * fiber is 130, which supervisors such as `restart: on-failure` read as a crash).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Runtime } from "effect"
import cluster from "node:cluster"
import { availableParallelism } from "node:os"
import type { Flags } from "./config/Settings.ts"
import * as Gateway from "./Gateway.ts"

/** `--workers` (checked by the command line) wins over `SLUICE_WORKERS`; default one. */
export const workerCount = (flags: Flags, env: NodeJS.ProcessEnv): number => {
  const raw = flags.workers ?? env["SLUICE_WORKERS"]
  if (typeof raw === "number") return raw
  if (raw === undefined || raw === "") return 1
  if (raw === "auto") return availableParallelism()
  const n = Number(raw)
  return Number.isInteger(n) && n >= 1 ? n : 1
}

/** The primary: starts shared simulated engines, forks workers, restarts the ones that die. */
const primary = (flags: Flags, workers: number) =>
  Effect.gen(function*() {
    const urls = yield* Gateway.launchSimulatedFleet(flags)
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
    // A reload is each worker's own (each runs the whole graph and watches the file): the
    // primary passes SIGHUP on instead of dying of it.
    const hangup = () => {
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGHUP")
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => process.on("SIGHUP", hangup)),
      () => Effect.sync(() => process.off("SIGHUP", hangup))
    )
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

/**
 * A server stopped by SIGINT/SIGTERM has drained and shut down as asked: exit status 0,
 * not 130 (what an interrupted program gets by default), so a container stop is a clean exit.
 */
const drainedIsSuccess: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

/**
 * The serve command (`src/cli/` parsed its flags). Cluster workers re-run the same command
 * line, so they see the same flags.
 */
export const serve = (flags: Flags): void => {
  const workers = workerCount(flags, process.env)
  if (workers > 1 && cluster.isPrimary) {
    NodeRuntime.runMain(
      Layer.launch(Layer.effectDiscard(primary(flags, workers)).pipe(Layer.provide(Gateway.logging(flags)))),
      { teardown: drainedIsSuccess }
    )
    return
  }
  NodeRuntime.runMain(Layer.launch(Gateway.main(flags)), { teardown: drainedIsSuccess })
}
