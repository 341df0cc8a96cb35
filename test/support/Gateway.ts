/**
 * Starts the real gateway graph (Gateway.make) on an ephemeral port for integration
 * tests, from YAML text, and exposes the services whose state the invariants are about.
 */
import { Context, Effect, Layer, ManagedRuntime } from "effect"
import { SqlClient } from "effect/sql"
import { HttpServer } from "effect/http"
import { UsageSink } from "../../src/accounting/Accounting.ts"
import { TokenBudget } from "../../src/admission/Budget.ts"
import { ApiKeys } from "../../src/auth/ApiKeys.ts"
import { KeyAdmin } from "../../src/auth/KeyAdmin.ts"
import { EngineLauncher, Fleet } from "../../src/backends/Fleet.ts"
import { GatewayConfig } from "../../src/config/GatewayConfig.ts"
import * as Load from "../../src/config/Load.ts"
import type { Plan } from "../../src/config/Plan.ts"
import * as Gateway from "../../src/Gateway.ts"
import { Connections } from "../../src/http/Connections.ts"
import { type ReloadOptions, Reloader } from "../../src/http/Reload.ts"
import { readFileSync } from "node:fs"
import { Lifecycle } from "../../src/request/Lifecycle.ts"
import { RequestLog, type RequestLine } from "../../src/observability/RequestLog.ts"
import { RetryBudget } from "../../src/resilience/RetryBudget.ts"
import { Breakers } from "../../src/resilience/Breakers.ts"
import { Affinity } from "../../src/routing/Affinity.ts"

export const planFromYaml = (yaml: string, env: Record<string, string> = {}): Promise<Plan> =>
  Effect.runPromise(Load.parse(yaml, "test.yaml", env))

export const startGateway = async (
  yaml: string,
  options: {
    readonly env?: Record<string, string>
    readonly launcher?: Layer.Layer<EngineLauncher>
    /** Keep the active probes on (off by default so probe requests don't mix with a test's own). */
    readonly probes?: boolean
    /** Extra layers under the graph (e.g. tracing). */
    readonly extra?: Layer.Layer<never>
    /** Extension layers (registry entries), as an embedder passes them to Gateway.make. */
    readonly extensions?: Gateway.GatewayParts<never>["extensions"]
    /**
     * Read the config from this file instead of `yaml` (so a reload re-reads it); the same
     * test adjustments (ephemeral port, probes) apply to every plan read from it.
     */
    readonly file?: string
    /** Reload triggers besides the admin endpoint (SIGHUP, the file watch). */
    readonly reload?: ReloadOptions
  } = {}
) => {
  const adjust = (parsed: Plan): Plan => ({
    ...parsed,
    server: { ...parsed.server, host: "127.0.0.1", port: 0 },
    health: options.probes === true ? parsed.health : { ...parsed.health, probeIntervalMs: 0 }
  })
  const plan = adjust(await planFromYaml(options.file === undefined ? yaml : readFileSync(options.file, "utf8"), options.env))
  const lines: Array<RequestLine> = []
  const runtime = ManagedRuntime.make(
    Gateway.make({
      config: options.file === undefined ? GatewayConfig.fromPlan(plan) : GatewayConfig.fromFile(options.file, adjust),
      reload: options.reload,
      launcher: options.launcher ?? EngineLauncher.none,
      requestLog: options.extra === undefined ? RequestLog.memory(lines) : Layer.merge(RequestLog.memory(lines), options.extra),
      extensions: options.extensions
    })
  )
  const services = await runtime.runPromise(Effect.gen(function*() {
    return {
      server: yield* HttpServer.HttpServer,
      budget: yield* TokenBudget,
      sink: yield* UsageSink,
      fleet: yield* Fleet,
      affinity: yield* Affinity,
      breakers: yield* Breakers,
      retryBudget: yield* RetryBudget,
      lifecycle: yield* Lifecycle,
      connections: yield* Connections,
      keyAdmin: yield* KeyAdmin,
      apiKeys: yield* ApiKeys,
      reloader: yield* Reloader,
      /** The key store's database (SQLite in memory unless DATABASE_URL is given). */
      database: Context.make(SqlClient.SqlClient, yield* SqlClient.SqlClient)
    }
  }))
  const url = HttpServer.formatAddress(services.server.address)
  const run = <A, E>(effect: Effect.Effect<A, E>) => runtime.runPromise(effect)
  return {
    url,
    lines,
    plan,
    ...services,
    run,
    /** Everything a request can hold, summed over the gateway (all zero when idle). */
    held: async () => {
      const budget = await run(services.budget.snapshot)
      const affinity = await run(services.affinity.snapshot)
      return {
        slots: services.fleet.all.reduce((n, b) => n + b.slots.inUse, 0),
        queued: services.fleet.all.reduce((n, b) => n + b.slots.queued, 0),
        reservedTokens: budget.reservedTokens,
        openReservations: budget.openReservations,
        pins: affinity.heldPins,
        upstreamOpen: services.fleet.all.reduce((n, b) => n + b.pool.open(), 0),
        inFlight: services.lifecycle.state.inFlight
      }
    },
    close: () => runtime.dispose()
  }
}

export type TestGateway = Awaited<ReturnType<typeof startGateway>>

export const idle = { slots: 0, queued: 0, reservedTokens: 0, openReservations: 0, pins: 0, upstreamOpen: 0, inFlight: 0 }

/** Polls until `f` holds or `ms` pass (for finalizers that run after the response ends). */
export const eventually = async <A>(f: () => Promise<A>, check: (a: A) => boolean, ms = 2000): Promise<A> => {
  const start = performance.now()
  let last = await f()
  while (!check(last) && performance.now() - start < ms) {
    await new Promise((r) => setTimeout(r, 5))
    last = await f()
  }
  return last
}
