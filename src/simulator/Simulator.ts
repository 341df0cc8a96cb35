/**
 * The in-process API of the engine simulator: start one instance (or a fleet) as a scoped resource or a Layer.
 *
 * Owns: option validation and defaults, wiring one instance (engine + faults + HTTP server + engine loop), and
 * the instance's lifecycle: the server listens when the effect runs and is closed (connections destroyed, loop
 * interrupted) when the scope closes.
 * Must never: hold state shared between instances (each `start` builds its own engine), or read the wall clock
 * except through Effect's `Clock`.
 */
import { Clock, Context, Effect, Layer, Result, Schema, type Scope } from "effect"
import type { Server } from "node:http"
import { runEngineLoop, Timebase, Wakeup } from "./driver.ts"
import { Engine } from "./engine/engine.ts"
import { hashString } from "./engine/random.ts"
import type { Sequence } from "./engine/sequence.ts"
import { FaultState, type Faults, parseFaultsPatch } from "./faults.ts"
import { statsOf } from "./http/admin.ts"
import { createSimServer } from "./http/server.ts"
import { KvEventPublisher } from "./http/kvEvents.ts"
import type { Dialect, SequenceSink, SimContext } from "./http/wire.ts"
import { getProfile, isProfileName, type ProfileName } from "../profiles/Profiles.ts"
import type { EngineStats } from "./stats.ts"

export type { EngineStats } from "./stats.ts"
export type { Faults } from "./faults.ts"
export type { ProfileName } from "../profiles/Profiles.ts"
export type { Dialect } from "./http/wire.ts"

export interface SimulatorOptions {
  readonly profile: ProfileName
  /** Served model name, e.g. "llama-3.1-8b". */
  readonly model: string
  /** Default "openai" (vLLM flavour). */
  readonly dialect?: Dialect
  /** Default 127.0.0.1; port 0 (default) = ephemeral. */
  readonly host?: string
  readonly port?: number
  /** Default 1 (real time); 10 = ten times faster. */
  readonly timeScale?: number
  /** Default 0.05 (±5% per step). */
  readonly jitter?: number
  /** Default 1. */
  readonly seed?: number
  readonly faults?: Partial<Faults>
  /** P/D disaggregation: bandwidth of KV transfers pulled by this instance, GB/s (default 25). */
  readonly kvTransferGBps?: number
  /** KV-cache blocks instead of the profile's (a small cache evicts: cache-churn experiments). */
  readonly kvBlocks?: number
}

export interface RunningSimulator {
  /** "http://127.0.0.1:PORT" (no /v1). */
  readonly url: string
  readonly options: SimulatorOptions
  readonly setFaults: (faults: Partial<Faults>) => Effect.Effect<void>
  readonly stats: Effect.Effect<EngineStats>
}

export class UnknownProfile extends Schema.TaggedError<UnknownProfile>()("UnknownProfile", {
  profile: Schema.String
}) {}

export class InvalidOptions extends Schema.TaggedError<InvalidOptions>()("InvalidOptions", {
  detail: Schema.String
}) {}

export class ListenFailed extends Schema.TaggedError<ListenFailed>()("ListenFailed", {
  host: Schema.String,
  port: Schema.Number,
  detail: Schema.String
}) {}

export class SimulatorError extends Schema.TaggedError<SimulatorError>()("SimulatorError", {
  reason: Schema.Union([UnknownProfile, InvalidOptions, ListenFailed])
}) {
  override get message(): string {
    const r = this.reason
    switch (r._tag) {
      case "UnknownProfile":
        return `unknown simulator profile "${r.profile}"`
      case "InvalidOptions":
        return `invalid simulator options: ${r.detail}`
      case "ListenFailed":
        return `cannot listen on ${r.host}:${r.port}: ${r.detail}`
    }
  }
}

const DIALECTS: ReadonlyArray<string> = ["openai", "anthropic", "ollama", "sglang"]

const invalid = (detail: string) => new SimulatorError({ reason: new InvalidOptions({ detail }) })

/** Checks options that the type system cannot (they may come from a CLI or a YAML file). */
export const validateOptions = (o: SimulatorOptions): Effect.Effect<void, SimulatorError> =>
  Effect.gen(function*() {
    if (!isProfileName(o.profile)) {
      return yield* new SimulatorError({ reason: new UnknownProfile({ profile: String(o.profile) }) })
    }
    if (typeof o.model !== "string" || o.model.length === 0) return yield* invalid("model must be a non-empty string")
    if (o.dialect !== undefined && !DIALECTS.includes(o.dialect)) return yield* invalid(`unknown dialect ${o.dialect}`)
    if (o.timeScale !== undefined && !(o.timeScale > 0)) return yield* invalid("timeScale must be > 0")
    if (o.jitter !== undefined && !(o.jitter >= 0 && o.jitter < 1)) return yield* invalid("jitter must be in [0, 1)")
    if (o.seed !== undefined && !Number.isInteger(o.seed)) return yield* invalid("seed must be an integer")
    if (o.kvTransferGBps !== undefined && !(o.kvTransferGBps > 0)) return yield* invalid("kvTransferGBps must be > 0")
    if (o.kvBlocks !== undefined && !(Number.isInteger(o.kvBlocks) && o.kvBlocks >= 16)) {
      return yield* invalid("kvBlocks must be an integer >= 16")
    }
    if (o.port !== undefined && !(Number.isInteger(o.port) && o.port >= 0 && o.port < 65536)) {
      return yield* invalid("port must be an integer in [0, 65535]")
    }
    const faults = parseFaultsPatch(o.faults ?? {})
    if (Result.isFailure(faults)) return yield* invalid(`faults: ${faults.failure}`)
  })

const listen = (server: Server, host: string, port: number) =>
  Effect.callback<void, SimulatorError>((resume) => {
    const onError = (e: Error) =>
      resume(Effect.fail(new SimulatorError({ reason: new ListenFailed({ host, port, detail: e.message }) })))
    server.once("error", onError)
    server.listen(port, host, () => {
      server.off("error", onError)
      resume(Effect.void)
    })
  })

const closeServer = (server: Server, ctx: SimContext) =>
  Effect.callback<void>((resume) => {
    for (const socket of ctx.connections) socket.destroy()
    ctx.engine.reset()
    if (!server.listening) return resume(Effect.void)
    server.close(() => resume(Effect.void))
    server.closeAllConnections()
  })

export interface StartHooks {
  /** Called after a crash with mode "exit" has closed the server (main.ts ends the process). */
  readonly onExit?: () => void
}

/** Starts one instance; it serves until the scope closes. `hooks` is for the standalone process. */
export const startWith = Effect.fn("Simulator.start")(function*(options: SimulatorOptions, hooks: StartHooks = {}) {
  yield* validateOptions(options)
  const base = getProfile(options.profile)
  const profile = options.kvBlocks === undefined ? base : {
    ...base,
    numGpuBlocks: options.kvBlocks,
    maxModelLen: Math.min(base.maxModelLen, options.kvBlocks * base.blockSize)
  }
  const timeScale = options.timeScale ?? 1
  const seed = options.seed ?? 1
  const host = options.host ?? "127.0.0.1"
  const clock = yield* Clock.Clock
  const nowMs = () => Number(clock.monotonicTimeNanosUnsafe()) / 1e6
  const wall0 = nowMs()
  const engine = new Engine<SequenceSink>(profile, { jitter: options.jitter ?? 0.05, seed, cacheSalt: options.model })
  const faults = new FaultState(options.faults ?? {}, seed, timeScale, wall0)
  const wakeup = new Wakeup()
  const timebase = new Timebase(engine, timeScale, nowMs)
  let ids = 0
  const idTag = hashString(`${options.model}:${seed}:${clock.currentTimeMillisUnsafe()}`).toString(36)
  const holder: { server: Server | undefined } = { server: undefined }
  const kvEvents = new KvEventPublisher(engine.kvEvents, () => clock.currentTimeMillisUnsafe(), idTag)
  const ctx: SimContext = {
    model: options.model,
    dialect: options.dialect ?? "openai",
    profile,
    seed,
    timeScale,
    engine,
    faults,
    nowMs,
    epochMs: () => clock.currentTimeMillisUnsafe(),
    virtualNow: () => timebase.virtualNow(),
    wake: () => wakeup.notify(),
    nextId: (prefix) => `${prefix}${idTag}${(ids++).toString(16).padStart(6, "0")}`,
    connections: new Set(),
    byRid: new Map<string, Sequence<SequenceSink>>(),
    transfers: new Map(),
    kvTransferGBps: options.kvTransferGBps ?? 25,
    kvEvents,
    crash: (mode, spare) => {
      for (const socket of ctx.connections) if (socket !== spare) socket.resetAndDestroy()
      engine.reset()
      kvEvents.flush()
      if (mode === "exit" && holder.server !== undefined) {
        holder.server.close()
        spare?.end()
        hooks.onExit?.()
      }
    }
  }
  const server = createSimServer(ctx)
  holder.server = server
  yield* Effect.acquireRelease(listen(server, host, options.port ?? 0), () => closeServer(server, ctx))
  yield* Effect.forkScoped(runEngineLoop({ engine, faults, timebase, wakeup, nowMs, afterStep: () => kvEvents.flush() }))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : (options.port ?? 0)
  const running: RunningSimulator = {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    options,
    setFaults: (patch) =>
      Effect.suspend(() => {
        const checked = parseFaultsPatch(patch)
        return Result.isFailure(checked)
          ? Effect.die(invalid(`faults: ${checked.failure}`))
          : Effect.sync(() => faults.apply(checked.success, nowMs()))
      }),
    stats: Effect.sync((): EngineStats => statsOf(ctx))
  }
  return running
})

/** Starts one instance; the server is closed when the scope closes. */
export const start = (options: SimulatorOptions): Effect.Effect<RunningSimulator, SimulatorError, Scope.Scope> =>
  startWith(options)

/** Starts several instances (in order); all are closed when the scope closes. */
export const startFleet = (
  options: ReadonlyArray<SimulatorOptions>
): Effect.Effect<ReadonlyArray<RunningSimulator>, SimulatorError, Scope.Scope> => Effect.forEach(options, start)

/** A running simulator as a service, for code that wires layers. */
export class Simulator extends Context.Service<Simulator, RunningSimulator>()("sluice/simulator/Simulator") {
  static layer(options: SimulatorOptions): Layer.Layer<Simulator, SimulatorError> {
    return Layer.effect(Simulator, start(options))
  }
}
