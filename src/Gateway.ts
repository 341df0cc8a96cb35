/**
 * The single Layer graph of the gateway:
 *
 *   config → observability → database, keys → registries → stores → backends → admission → routing → dispatch → http
 *
 * This is the only file that wires layers across folders. `make` takes the few parts a
 * deployment or a test swaps (where the config comes from, how simulated engines start,
 * where request lines go, the listener); everything else is fixed here.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { ByteSize, Clock, Context, Duration, Effect, Layer, Scheduler } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServer } from "effect/http"
import { createServer, type Server } from "node:http"
import { Accounting } from "./accounting/Accounting.ts"
import * as Sinks from "./accounting/Sinks.ts"
import { QuotaTable } from "./admission/Quotas.ts"
import * as Tokenizer from "./admission/Tokenizer.ts"
import { QuotaStore } from "./stores/QuotaStore.ts"
import * as Stores from "./admission/Stores.ts"
import { AdminToken } from "./auth/AdminToken.ts"
import { ApiKeys } from "./auth/ApiKeys.ts"
import { Authentication } from "./auth/Authentication.ts"
import { KeyAdmin } from "./auth/KeyAdmin.ts"
import * as Protection from "./auth/Protection.ts"
import { Revocations } from "./auth/Revocations.ts"
import { HealthReports } from "./backends/Actor.ts"
import { type EngineLauncher, Fleet } from "./backends/Fleet.ts"
import * as SimulatedEngines from "./SimulatedFleet.ts"
import { PlanChecks, verify } from "./config/Checks.ts"
import { type Registries, registries } from "./Registries.ts"
import { GatewayConfig } from "./config/GatewayConfig.ts"
import type { Plan } from "./config/Plan.ts"
import type * as Settings from "./config/Settings.ts"
import { Dispatcher } from "./dispatch/Dispatch.ts"
import { FlowControl } from "./dispatch/FlowControl.ts"
import * as ConnectionLimits from "./http/Connections.ts"
import { Lifecycle } from "./request/Lifecycle.ts"
import { type ReloadOptions, Reloader } from "./http/Reload.ts"
import * as Routes from "./http/Routes.ts"
import * as Teardowns from "./http/Teardowns.ts"
import { EventLoopDelay } from "./observability/EventLoopDelay.ts"
import * as IdleMemory from "./observability/IdleMemory.ts"
import { LiveStats } from "./observability/LiveStats.ts"
import * as Logging from "./observability/Logging.ts"
import * as Tracing from "./observability/Tracing.ts"
import type { RequestLog } from "./observability/RequestLog.ts"
import { Breakers } from "./resilience/Breakers.ts"
import { RetryBudget } from "./resilience/RetryBudget.ts"
import { Affinity } from "./routing/Affinity.ts"
import { Placement } from "./routing/Placement.ts"
import { Router } from "./routing/Router.ts"
import * as Database from "./stores/Database.ts"
import { KeyStore } from "./stores/KeyStore.ts"

export type { Registries } from "./Registries.ts"

export interface GatewayParts<E> {
  readonly config: Layer.Layer<GatewayConfig, E>
  readonly launcher: Layer.Layer<EngineLauncher>
  readonly requestLog: Layer.Layer<RequestLog>
  /**
   * The data folder: the embedded database (`sluice.db`: tenants, keys) and the embedded audit
   * ledger live there when no `DATABASE_URL` is set (none: both in memory only).
   */
  readonly dataDir?: string | undefined
  /**
   * Extensions: layers that add entries to the registries (routing plugins, ...). Built
   * after the config and before anything reads a registry.
   */
  readonly extensions?: Layer.Layer<never, unknown, Registries | GatewayConfig> | undefined
  /**
   * Hot reload triggers besides `POST /admin/v1/reload`: SIGHUP and a watch on the config
   * file (default: neither).
   */
  readonly reload?: ReloadOptions | undefined
  /** The listener; default: node:http on the plan's host and port. */
  readonly server?:
    | Layer.Layer<HttpServer.HttpServer | Listener | ConnectionLimits.Connections, unknown, GatewayConfig>
    | undefined
}

/** The node:http server under the listener, so draining can close connections as they go idle. */
export class Listener extends Context.Service<Listener, { readonly server: Server | undefined }>()("sluice/Gateway/Listener") {
  static readonly none = Layer.succeed(Listener, Listener.of({ server: undefined }))
}

/** Connections the kernel may hold for us before we accept them (see nodeServer). */
const LISTEN_BACKLOG = 4096

/**
 * node:http on the plan's address, with the connection limits of `server:` (deadlines for
 * receiving a request, connection caps, parser rejections in the OpenAI envelope), draining
 * in-flight requests for up to `timeouts.drain` on shutdown.
 */
export const nodeServer: Layer.Layer<
  HttpServer.HttpServer | Listener | ConnectionLimits.Connections,
  unknown,
  GatewayConfig
> = Layer.unwrap(
  Effect.map(GatewayConfig, ({ initial }) => {
    const server = createServer(ConnectionLimits.serverOptions(initial.server))
    const connections = ConnectionLimits.guard(server, initial.server)
    return NodeHttpServer.layer(() => server, {
      host: initial.server.host,
      port: initial.server.port,
      // Node's default accept queue (511) overflows when a burst of connections arrives while
      // the event loop is busy, and the kernel then drops or resets them: a client's request
      // failed by the host, not by any policy. The kernel caps this at net.core.somaxconn.
      backlog: LISTEN_BACKLOG,
      gracefulShutdownTimeout: initial.timeouts.drainMs
    }).pipe(
      Layer.merge(Layer.succeed(Listener, Listener.of({ server }))),
      Layer.merge(Layer.succeed(ConnectionLimits.Connections, connections))
    )
  })
)

/**
 * Draining, before the listener closes (built after it, so torn down first): new requests
 * get 503 `draining` and readiness fails, while in-flight streams may finish. Node's
 * `server.close()` only closes connections idle at that moment; a keep-alive connection
 * whose last response ends during the drain would hold shutdown for the whole drain
 * time, so every connection without a request in progress (idle keep-alive, and one that
 * has sent nothing yet, which node counts as waiting for headers) is closed every 50 ms
 * until the server is closed.
 */
const drainOnShutdown = Layer.effectDiscard(
  Effect.gen(function*() {
    const { state } = yield* Lifecycle
    const { server } = yield* Listener
    const connections = yield* ConnectionLimits.Connections
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        state.draining = true
        if (server === undefined) return
        const timer = setInterval(() => connections.closeUnused(), 50)
        timer.unref()
        server.once("close", () => clearInterval(timer))
      })
    )
  })
)

/** One line at start: where Sluice listens and what it fronts. */
const announce = Layer.effectDiscard(
  Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const fleet = yield* Fleet
    const { initial } = yield* GatewayConfig
    yield* Effect.logInfo("sluice listening").pipe(
      Effect.annotateLogs({
        address: HttpServer.formatAddress(server.address),
        models: [...initial.models.keys()].join(","),
        backends: fleet.all.map((b) => `${b.id}=${b.plan.url}`).join(","),
        routing: initial.routing.policy
      })
    )
  })
)

/** How often the tables' load looks for its moment. */
const TABLES_POLL_MS = 25
/** With no request at all since the listener came up, the tables load after this long. */
const TABLES_IDLE_MS = 250
/** The tables load at the latest this long after the listener is up, however busy the gateway is. */
const TABLES_LATEST_MS = 1_000

/**
 * Completes at the first poll that finds no request in flight once a request has been
 * accepted (the first requests after a start are answered first), or `idleMs` after the
 * start if none came, or at `latestMs` however busy the gateway is.
 */
export const firstQuiet = (
  state: { readonly inFlight: number; readonly accepted: number },
  timing: { readonly pollMs: number; readonly idleMs: number; readonly latestMs: number }
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const startMs = yield* Clock.currentTimeMillis
    while (true) {
      yield* Effect.sleep(Duration.millis(timing.pollMs))
      const waitedMs = (yield* Clock.currentTimeMillis) - startMs
      if (waitedMs >= timing.latestMs) return
      if (state.inFlight === 0 && (state.accepted > 0 || waitedMs >= timing.idleMs)) return
    }
  })

/**
 * The configured models' tokenizer tables (~80 ms of CPU in one synchronous piece and tens of
 * MB each), loaded in the background once the gateway has answered its first requests
 * (`firstQuiet`): start-up does not wait for them, and neither do the first requests
 * (admission uses an upper bound of the prompt's count until they are loaded, and waits for
 * them only where a count too high could refuse a request or make a charge: Pipeline's
 * admit). Models added by a reload load theirs on first use.
 */
const preloadTokenizers = Layer.effectDiscard(
  Effect.gen(function*() {
    const { initial } = yield* GatewayConfig
    const { state } = yield* Lifecycle
    yield* Effect.forkScoped(
      Tokenizer.preload(
        [...initial.models.values()].map((m) => m.tokenizer),
        firstQuiet(state, { pollMs: TABLES_POLL_MS, idleMs: TABLES_IDLE_MS, latestMs: TABLES_LATEST_MS })
      )
    )
  })
)

/**
 * The idle memory reducer (observability/IdleMemory.ts) on the pipeline's request counts:
 * one memory-reducing GC once nothing has been in flight for `server.idle_gc_after`.
 */
const idleMemory = Layer.unwrap(
  Effect.gen(function*() {
    const { initial } = yield* GatewayConfig
    const { state } = yield* Lifecycle
    return IdleMemory.layer({ afterMs: initial.server.idleGcAfterMs, activity: () => state })
  })
)

/** Runs every registry's checks on the initial plan: unknown names stop the start, with their paths. */
const verifyPlan = Layer.effectDiscard(Effect.gen(function*() {
  const { initial } = yield* GatewayConfig
  const checks = yield* PlanChecks
  yield* verify(initial, checks.run(initial), "config")
}))

export const make = <E>(parts: GatewayParts<E>) => {
  const usage = Layer.unwrap(Effect.map(GatewayConfig, ({ initial }) =>
    Sinks.fromEnvironment(initial.ledger, initial.timeouts.drainMs, parts.dataDir)))
  // Limits and prices: the config file's, overlaid with the database's (QuotaStore).
  const quotas = QuotaTable.layer.pipe(Layer.provideMerge(QuotaStore.layer))
  const stores = Layer.mergeAll(Stores.budgetLayer, usage, RetryBudget.layer, Affinity.layer, Breakers.layer, Placement.layer).pipe(
    Layer.provideMerge(quotas)
  )
  const backends = Fleet.layer.pipe(Layer.provideMerge(HealthReports.layer), Layer.provide(parts.launcher))
  // Tenants and keys: the database, the key store, key events between replicas, and the
  // `api_key` authenticator, registered before extensions add theirs and the plan is checked.
  const revocations = Layer.unwrap(Effect.map(GatewayConfig, ({ initial }) =>
    Revocations.fromEnvironment(initial.auth.revocationChannel)))
  // With `auth: none` no key is ever read: the key store stays in memory, so the gateway
  // never needs (or waits for) a database to authenticate.
  const database = Layer.unwrap(Effect.map(GatewayConfig, ({ initial }) =>
    initial.auth.mode === "none"
      ? Database.layer({ kind: "sqlite", file: ":memory:" })
      : Database.fromEnvironment(parts.dataDir)))
  const keys = ApiKeys.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(KeyStore.layer, revocations)),
    Layer.provideMerge(database)
  )
  const withKeys = ApiKeys.register.pipe(Layer.provideMerge(registries), Layer.provideMerge(keys))
  const extended = parts.extensions === undefined
    ? withKeys
    : parts.extensions.pipe(Layer.provideMerge(withKeys))
  // Authentication seals the authenticator registry; the protected-mode rule runs before the listener.
  const identity = Layer.mergeAll(Authentication.layer, KeyAdmin.layer, AdminToken.fromEnvironment, Protection.layer)
  // The plan is checked against the registries once every extension has registered,
  // before any backend, engine or listener starts.
  const core = Layer.mergeAll(Accounting.layer, Router.layer, Dispatcher.layer, FlowControl.fromConfig, identity, Reloader.layer(parts.reload)).pipe(
    Layer.provideMerge(backends),
    Layer.provideMerge(Layer.mergeAll(stores, Lifecycle.layer, LiveStats.layer)),
    Layer.provideMerge(verifyPlan),
    Layer.provideMerge(extended)
  )
  // The body cap while reading (the content-length check uses the current plan per request).
  const maxBody = Layer.unwrap(Effect.map(GatewayConfig, ({ initial }) =>
    Layer.succeed(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(initial.limits.maxBodyBytes))))
  const http = HttpRouter.serve(Routes.layer, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provide(maxBody),
    // Request fibers inherit it: a client's leaving runs its teardown after the socket events
    // waiting behind it, which close their upstreams first (see Teardowns.ts).
    Layer.provide(Layer.succeed(Scheduler.Scheduler, Teardowns.scheduler)),
    Layer.provide(EventLoopDelay.layer),
    Layer.provideMerge(parts.server ?? nodeServer)
  )
  return Layer.mergeAll(drainOnShutdown, announce, preloadTokenizers, idleMemory).pipe(
    Layer.provideMerge(http),
    Layer.provideMerge(core),
    Layer.provideMerge(parts.requestLog),
    Layer.provideMerge(parts.config)
  )
}

/** How an embedder runs the gateway in its own program (the public API: src/index.ts). */
export interface EmbedOptions {
  /** The config: a file path, YAML text, or an already validated plan. */
  readonly config: { readonly file: string } | { readonly yaml: string; readonly source?: string } | { readonly plan: Plan }
  /** Layers that add routing plugins, dialects, policies or authenticators to the registries. */
  readonly extensions?: Layer.Layer<never, unknown, Registries | GatewayConfig> | undefined
  /** Where to listen instead of the config's `server.host`/`server.port` (port 0: a free port the OS picks). */
  readonly host?: string | undefined
  readonly port?: number | undefined
  /** The data folder (embedded database and ledger); none: both in memory. */
  readonly dataDir?: string | undefined
  /** Request log lines and logs on stdout at this level (default `info`); `none` turns them off. */
  readonly logLevel?: string | undefined
}

/**
 * The whole gateway as a layer, for an embedder's own program: the same graph the service
 * binary runs, with the embedder's extensions registered before anything reads a registry.
 * Simulated engines (`simulate:` backends) start in the gateway's scope, as with `npm start`.
 */
export const embedded = (options: EmbedOptions) => {
  const listen = (plan: Plan): Plan => ({
    ...plan,
    server: { ...plan.server, host: options.host ?? plan.server.host, port: options.port ?? plan.server.port }
  })
  const config = "plan" in options.config
    ? GatewayConfig.fromPlan(listen(options.config.plan))
    : "yaml" in options.config
    ? GatewayConfig.fromYaml(options.config.yaml, options.config.source)
    : GatewayConfig.fromFile(options.config.file, listen)
  // A file applies the listen address to every plan it reads (a reload must not see the
  // file's own address as a change); text and a plan are fixed at start.
  const overridden = "plan" in options.config || "file" in options.config || (options.host === undefined && options.port === undefined)
    ? config
    : Layer.effect(GatewayConfig, Effect.map(GatewayConfig, (c) => GatewayConfig.of({ ...c, initial: listen(c.initial), load: Effect.map(c.load, listen) }))).pipe(
      Layer.provide(config)
    )
  const flags: Settings.Flags = { logLevel: options.logLevel }
  return make({
    config: overridden,
    launcher: SimulatedEngines.layer,
    requestLog: Tracing.layer.pipe(Layer.provideMerge(Logging.layer(flags))),
    dataDir: options.dataDir,
    extensions: options.extensions,
    // A config file is watched; process signals belong to the embedding program.
    reload: { watch: true }
  })
}

/** The address the gateway listens on (`http://host:port`). */
export const address = Effect.map(HttpServer.HttpServer, (server) => HttpServer.formatAddress(server.address))

/** The service binary's logging: JSON lines on stdout at the configured level. */
export const logging = (flags: Settings.Flags) => Logging.layer(flags)

/** The service binary's graph: config from flags and environment, JSON logs on stdout. */
export const main = (flags: Settings.Flags) =>
  make({
    config: GatewayConfig.fromEnvironment(flags),
    launcher: SimulatedEngines.layer,
    requestLog: Tracing.layer.pipe(Layer.provideMerge(Logging.layer(flags))),
    dataDir: "data",
    reload: { signal: true, watch: true }
  })

/**
 * Starts the `simulate:` engines of the configured plan in the current scope and returns
 * their URLs (and what each was started as) by backend id (the cluster primary shares one
 * fleet with all its workers).
 */
export const launchSimulatedFleet = (flags: Settings.Flags) =>
  Effect.gen(function*() {
    const { initial } = yield* GatewayConfig
    const launcher = yield* SimulatedEngines.EngineLauncherService
    const simulated = initial.backends.filter((b) => b.simulate !== undefined)
    const launched = yield* Effect.forEach(simulated, (b) => launcher.launch(b), { concurrency: "unbounded" })
    return Object.fromEntries(simulated.map((b, i) => [b.id, { url: launched[i]!, key: SimulatedEngines.engineKey(b) }]))
  }).pipe(Effect.provide(Layer.merge(GatewayConfig.fromEnvironment(flags), SimulatedEngines.layer)))
