/**
 * Starts the engine simulator for `simulate:` backends, each in a worker thread of its own
 * with a heap cap, supervised and restarted on the same port when it crashes
 * (src/simulator/Supervisor.ts), all in the fleet's scope (stopped with it). This is what
 * lets `npm start` run a whole gateway in front of a realistic fleet with no GPU and no
 * external service, and an engine bug (an uncaught exception, an out-of-memory) can only
 * make that backend unavailable for a moment, never take the gateway down.
 */
import { Effect, Layer } from "effect"
import { EngineLauncher, FleetError } from "./backends/Fleet.ts"
import type { BackendPlan } from "./config/Plan.ts"

export { EngineLauncher as EngineLauncherService }

/** V8 old-generation cap of each embedded engine's thread. */
export const ENGINE_HEAP_MB = 512

/**
 * What an engine was started as: a reload that changes a `simulate:` backend's engine gets a
 * new engine, not the one the cluster primary started under the same id.
 */
export const engineKey = (backend: BackendPlan): string =>
  JSON.stringify([backend.simulate ?? null, [...backend.models.values()]])

/** Engines a cluster primary already started for this worker: backend id → base URL and engine key. */
const shared = (): Readonly<Record<string, { readonly url: string; readonly key: string }>> => {
  const raw = process.env["SLUICE_SIMULATED_URLS"]
  if (raw === undefined || raw === "") return {}
  const parsed: unknown = JSON.parse(raw)
  return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, { url: string; key: string }>) : {}
}

export const layer = Layer.succeed(
  EngineLauncher,
  EngineLauncher.of({
    launch: (backend) =>
      Effect.gen(function*() {
        const already = shared()[backend.id]
        if (already !== undefined && already.key === engineKey(backend)) return already.url
        const sim = backend.simulate
        if (sim === undefined) {
          return yield* new FleetError({ backend: backend.id, message: "no simulate section" })
        }
        // Loaded on first use: a gateway that fronts real engines never loads the supervisor;
        // the simulator itself (and its tokenizer tables) only ever loads in the engine threads.
        const { Supervisor, profiles } = yield* Effect.promise(async () => ({
          Supervisor: await import("./simulator/Supervisor.ts"),
          profiles: await import("./profiles/Profiles.ts")
        }))
        if (!profiles.isProfileName(sim.profile)) {
          return yield* new FleetError({
            backend: backend.id,
            message: `unknown simulator profile "${sim.profile}" (one of ${profiles.PROFILE_NAMES.join(", ")})`
          })
        }
        const model = [...backend.models.values()][0]!
        const running = yield* Supervisor.supervise({
          profile: sim.profile,
          model,
          dialect: sim.dialect,
          timeScale: sim.timeScale,
          ...(sim.jitter !== undefined ? { jitter: sim.jitter } : {}),
          ...(sim.seed !== undefined ? { seed: sim.seed } : {})
        }, { name: backend.id, heapMb: ENGINE_HEAP_MB }).pipe(
          Effect.mapError((e) => new FleetError({ backend: backend.id, message: e.message }))
        )
        // Ollama's native API lives at the origin; the others under /v1.
        return sim.dialect === "ollama" ? running.url : `${running.url}/v1`
      })
  })
)
