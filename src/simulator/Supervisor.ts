/**
 * Embedded engines in threads of their own, kept alive. `supervise` runs one simulator instance in a
 * `worker_threads` Worker with a heap cap (`resourceLimits`), so an uncaught exception or an out-of-memory
 * inside the engine ends that thread only, never the gateway. When the thread ends, it is started again on
 * the same port (the gateway's backend keeps its URL) after a backoff that doubles per consecutive crash;
 * meanwhile the port refuses connections and the gateway treats the engine like any unavailable backend.
 * Each restart is logged and counted (`sluice_engine_restarts_total{engine}`).
 *
 * Owns: the worker's lifecycle (start, readiness, restart, termination when the scope closes) and where the
 * worker's entry is: `worker.ts` under tsx's loader when running from source (a Worker cannot load `.ts` by
 * itself), or the bundle's `simulator-worker.mjs`. Must never: share memory with the engine or reach into it
 * other than by its start options and its URL, nor leave a Worker's `error` event unhandled (an unhandled
 * one is thrown in this thread).
 */
import { Clock, Data, Deferred, Duration, Effect, Metric, Result, Scope } from "effect"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import type { SimulatorOptions } from "./Simulator.ts"
import type { ThreadMessage } from "./worker.ts"

export class EngineThreadError extends Data.TaggedError("EngineThreadError")<{ readonly message: string }> {}

export interface ThreadOptions {
  /** For logs and the restart counter's `engine` label (a configured backend id). */
  readonly name: string
  /** V8 old-generation cap of the engine's thread, MiB. */
  readonly heapMb: number
  /** First restart delay (default 100 ms), doubled per consecutive crash up to `maxBackoffMs` (default 5 s). */
  readonly backoffMs?: number
  readonly maxBackoffMs?: number
  /** How long a thread may take to report ready (default 30 s). */
  readonly startTimeoutMs?: number
}

export interface SupervisedEngine {
  /** "http://127.0.0.1:PORT" (no /v1), the same across restarts. */
  readonly url: string
  /** Threads started again after the first one ended. */
  readonly restarts: () => number
}

/** A thread that ran this long before it ended resets the backoff. */
const STABLE_MS = 10_000

const restartsTotal = Metric.counter("sluice_engine_restarts_total", {
  description: "Embedded engine threads started again after the previous one ended (crash, OOM, exit)",
  incremental: true
})

interface Entry {
  readonly url: URL
  readonly execArgv: ReadonlyArray<string>
}

/** The worker's entry: next to this file from source, next to (or above) this chunk in the bundle. */
const findEntry = (): Entry | undefined => {
  const here = import.meta.url
  if (here.endsWith(".ts")) {
    const tsx = pathToFileURL(createRequire(here).resolve("tsx")).href
    return { url: new URL("./worker.ts", here), execArgv: ["--import", tsx] }
  }
  for (const candidate of ["./simulator-worker.mjs", "../simulator-worker.mjs"]) {
    const url = new URL(candidate, here)
    if (existsSync(url)) return { url, execArgv: [] }
  }
  return undefined
}

interface ThreadEnd {
  readonly code: number
  readonly error: string | undefined
}

interface Thread {
  readonly worker: Worker
  readonly url: string
  readonly port: number
  /** Completed when the thread has ended. */
  readonly ended: Deferred.Deferred<ThreadEnd>
}

const describe = (e: unknown): string => e instanceof Error ? `${e.name}: ${e.message}` : String(e)

const isMessage = (u: unknown): u is ThreadMessage =>
  typeof u === "object" && u !== null && "_tag" in u && (u._tag === "Ready" || u._tag === "Failed")

const terminate = (worker: Worker): Effect.Effect<void> =>
  Effect.tryPromise(() => worker.terminate()).pipe(Effect.ignore)

/** Starts one thread and waits for its `Ready`; interrupting the wait terminates it. */
const startThread = (entry: Entry, options: SimulatorOptions, port: number, t: ThreadOptions) =>
  Effect.callback<Thread, EngineThreadError>((resume) => {
    const worker = new Worker(entry.url, {
      execArgv: [...entry.execArgv],
      workerData: { ...options, port },
      resourceLimits: { maxOldGenerationSizeMb: t.heapMb }
    })
    const ended = Deferred.makeUnsafe<ThreadEnd>()
    let error: string | undefined
    let settled = false
    const settle = (effect: Effect.Effect<Thread, EngineThreadError>) => {
      if (settled) return
      settled = true
      resume(effect)
    }
    const failed = (message: string) => settle(Effect.fail(new EngineThreadError({ message })))
    // Listened to for the thread's whole life: an unhandled Worker `error` would be thrown here.
    worker.on("error", (e) => {
      error = describe(e)
    })
    worker.once("exit", (code) => {
      Deferred.doneUnsafe(ended, Effect.succeed({ code, error }))
      failed(`engine ${t.name}: thread exited (code ${code}) before it was ready${error === undefined ? "" : `: ${error}`}`)
    })
    worker.on("message", (m: unknown) => {
      if (!isMessage(m)) return
      if (m._tag === "Ready") return settle(Effect.succeed({ worker, url: m.url, port: m.port, ended }))
      failed(`engine ${t.name}: ${m.message}`)
      void worker.terminate()
    })
    return terminate(worker)
  }).pipe(
    Effect.timeoutOrElse({
      duration: Duration.millis(t.startTimeoutMs ?? 30_000),
      orElse: () => Effect.fail(new EngineThreadError({ message: `engine ${t.name}: thread not ready in time` }))
    })
  )

/** Starts an engine in its own thread and keeps it running until the scope closes. */
export const supervise = Effect.fn("Supervisor.supervise")(function*(options: SimulatorOptions, t: ThreadOptions) {
  const entry = findEntry()
  if (entry === undefined) {
    return yield* new EngineThreadError({ message: "simulator-worker.mjs is missing next to the bundle (npm run bundle)" })
  }
  const scope = yield* Effect.scope
  const first = yield* startThread(entry, options, options.port ?? 0, t)
  let current = first
  let restarts = 0
  yield* Scope.addFinalizer(scope, Effect.suspend(() => terminate(current.worker)))
  const backoffMs = t.backoffMs ?? 100
  const maxBackoffMs = t.maxBackoffMs ?? 5_000
  const counter = Metric.withAttributes(restartsTotal, { engine: t.name })

  const keepAlive = Effect.gen(function*() {
    let startedAt = yield* Clock.currentTimeMillis
    let consecutive = 0
    while (true) {
      const end = yield* Deferred.await(current.ended)
      consecutive = (yield* Clock.currentTimeMillis) - startedAt >= STABLE_MS ? 1 : consecutive + 1
      let why = `thread ended (code ${end.code})${end.error === undefined ? "" : `: ${end.error}`}`
      while (true) {
        const delay = Math.min(maxBackoffMs, backoffMs * 2 ** Math.min(16, consecutive - 1))
        yield* Effect.logError("embedded engine down; restarting").pipe(
          Effect.annotateLogs({ engine: t.name, url: first.url, cause: why, restarts, delay_ms: delay })
        )
        yield* Effect.sleep(Duration.millis(delay))
        // Same port, so the gateway's backend (and a cluster's workers) keep the URL they have.
        const next = yield* Effect.result(startThread(entry, options, first.port, t))
        if (Result.isSuccess(next)) {
          current = next.success
          break
        }
        why = next.failure.message
        consecutive++
      }
      restarts++
      startedAt = yield* Clock.currentTimeMillis
      yield* Metric.update(counter, 1)
      yield* Effect.logWarning("embedded engine restarted").pipe(Effect.annotateLogs({ engine: t.name, url: first.url, restarts }))
    }
  })
  yield* Effect.forkIn(keepAlive, scope)
  return { url: first.url, restarts: () => restarts } satisfies SupervisedEngine
})
