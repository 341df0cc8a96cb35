/**
 * The virtual-time fleet planner: one simulated engine (the simulator's pure core) per backend of a plan,
 * the router's own filter → score → pick (Views, Pipeline, Baselines, the plugins) over views built from
 * real `Backend` objects and the real routing state (Placement: prefix index and in-flight work;
 * Affinity: session pins), and a discrete-event loop that replays a trace of arrivals through them.
 *
 * Time is virtual: events (engine step completions, metric scrapes, arrivals) are processed in time
 * order; an engine steps as soon as it has work, its step's effects (first tokens, finished requests)
 * land when the step ends. The gateway's Effect-based bookkeeping (slots, tokens in flight, placements,
 * pins) runs synchronously under a virtual `Clock`, each request's in a Scope closed when it finishes,
 * exactly as dispatch scopes an attempt; a request finding no free slot waits for one (FIFO, at most
 * `timeouts.queue`, then it is rejected); when every candidate is saturated, the model's `on_saturation`
 * applies, with flow control's own queue (FlowQueue: per-tenant WFQ in tokens, priority bands, bounded
 * wait, shedding), a turn per finished request of the model and a nudge per idle second. What is left
 * out: P/D disaggregation (every backend serves whole requests), KV-event stream latency (`kvEvents`),
 * retries and failures (engines never fail here), and priority headers.
 *
 * Owns: the loop and the per-request measurements. Must never: open a socket or a file, sleep, or read
 * the wall clock (the command line and the benches do the I/O).
 */
import { Clock, Effect, Exit, Scope } from "effect"
import type { GatewayRequest } from "../admission/Request.ts"
import { Backend, type EngineSignals } from "../backends/Backend.ts"
import type { Adapter } from "../backends/Contract.ts"
import type { UpstreamPool } from "../backends/Upstream.ts"
import type { BackendPlan, Plan, RoutingPlan } from "../config/Plan.ts"
import { RequestId, TenantId } from "../domain/Ids.ts"
import { makeRng } from "../domain/Random.ts"
import { isProfileName, PROFILES } from "../profiles/Profiles.ts"
import * as Affinity from "../routing/Affinity.ts"
import * as Baselines from "../routing/Baselines.ts"
import type { AttemptProgress, BackendView, PlacedAttempt } from "../routing/Contract.ts"
import * as Pipeline from "../routing/Pipeline.ts"
import * as Placement from "../routing/Placement.ts"
import { profileOf } from "../routing/Profiles.ts"
import * as Registry from "../routing/Registry.ts"
import * as Views from "../routing/Views.ts"
import * as Breakers from "../resilience/Breakers.ts"
import { FlowQueue } from "../admission/FlowQueue.ts"
import { bandOf } from "../dispatch/FlowControl.ts"
import { Engine, type EngineConfig } from "../simulator/engine/engine.ts"
import type { Sequence } from "../simulator/engine/sequence.ts"
import { EventHeap } from "./Heap.ts"
import type { Arrival } from "./Trace.ts"

export type Policy = RoutingPlan["policy"]
export const POLICIES: ReadonlyArray<Policy> = ["inference", "round_robin", "least_outstanding", "random", "ordered"]
export const isPolicy = (s: string): s is Policy => (POLICIES as ReadonlyArray<string>).includes(s)

export interface Measure {
  /** Requests arriving before this are not measured (they warm the caches). */
  readonly warmupMs: number
  /** End of the measured window (throughput, goodput); requests arriving later are not measured. */
  readonly durationMs: number
  /** Cut-off: what has not finished by `durationMs + drainMs` is unfinished. */
  readonly drainMs: number
}

export interface Options {
  readonly policy: Policy
  /** Picker of the inference policy (default: the plan's). */
  readonly picker?: string | undefined
  readonly seed?: number | undefined
  /** Relative step-time jitter of every engine (the bench's fleet runs 0.05). */
  readonly jitter?: number | undefined
  /** Default: everything measured, run to completion. */
  readonly measure?: Measure | undefined
  /** SLO of goodput (vLLM's benchmark_serving): TTFT and TPOT bounds, ms. */
  readonly slo?: { readonly ttftMs: number; readonly tpotMs: number } | undefined
  /**
   * Closed-loop follow-ups: the next request of a session once `done` finished at `atMs` (its answer is
   * the segment `answerKey(index)` of `done.outputTokens` tokens).
   */
  readonly next?: ((done: Arrival, index: number, atMs: number) => Arrival | undefined) | undefined
  /**
   * Every backend keeps the precise prefix index from its engine's KV events (the bench's `inference+kv`),
   * applied when each step ends (no stream latency); default: the approximate index only.
   */
  readonly kvEvents?: boolean | undefined
  /** KV blocks per engine (cache-churn what-ifs); default: the profile's. */
  readonly kvBlocks?: number | undefined
}

/** The key of request `index`'s answer tokens, for follow-ups that carry the history. */
export const answerKey = (index: number): string => `a:${index}`

export interface Quantiles {
  readonly p50: number
  readonly p90: number
  readonly p99: number
}

export interface Report {
  readonly policy: string
  readonly arrivals: number
  /** Requests measured (arrived inside the window). */
  readonly requests: number
  readonly completed: number
  readonly unfinished: number
  /** Refused: no backend for the model, every candidate excluded, no slot within `timeouts.queue`, or longer than the engine's context. */
  readonly rejected: number
  /** Requests that waited in flow control (`on_saturation: queue`), and those it refused (full, shed, timeout, reject). */
  readonly flowWaited: number
  readonly flowRefused: number
  /** ms, over measured requests that got a first token. */
  readonly ttft: Quantiles
  /** ms, every gap between consecutive tokens of measured requests. */
  readonly itl: Quantiles
  /** Output tokens generated inside the window per second. */
  readonly outputTokensPerS: number
  /** Measured requests that finished within the SLO, per second of the window. */
  readonly goodput: number
  readonly goodputShare: number
  /** Prompt tokens served from the prefix cache ÷ prompt tokens, over measured requests. */
  readonly hitRate: number
  readonly preemptions: number
  /** Engine-busy GPU-seconds up to the cut-off (step time × GPUs). */
  readonly gpuSeconds: number
  /** Σ busy GPU-seconds × the backend's `cost_per_gpu_second`. */
  readonly cost: number
  /** Cost per million output tokens generated (any time). */
  readonly costPerMTokens: number
  /** Share of measured requests per backend. */
  readonly spread: Readonly<Record<string, number>>
  /** Virtual seconds simulated. */
  readonly simulatedSeconds: number
}

// ---- the gateway pieces that would do I/O: stubs that die if the planner ever reached them

const pool: UpstreamPool = {
  origin: "http://planner.invalid",
  basePath: "/v1",
  apiKey: undefined,
  post: () => Effect.die("the planner never calls a backend"),
  call: () => Effect.die("the planner never calls a backend"),
  stream: () => Effect.die("the planner never calls a backend"),
  getFromOrigin: () => Effect.die("the planner never calls a backend"),
  streamFromOrigin: () => Effect.die("the planner never calls a backend"),
  close: Effect.void,
  open: () => 0,
  queued: () => 0
}

const adapter: Adapter = {
  dialect: "openai",
  kvTransfer: false,
  capabilities: { chat: true, completion: true, embedding: false, rerank: false },
  stream: () => Effect.die("the planner never calls a backend"),
  unary: () => Effect.die("the planner never calls a backend")
}

/** The engine profile of a backend: its `profile:`, or its `simulate.profile`. */
export const engineProfileOf = (b: BackendPlan): string | undefined => b.profile ?? b.simulate?.profile

export class PlannerError extends Error {}

/** The engine config of every backend; an error names the backends without a known profile. */
const engineConfigs = (plan: Plan, kvBlocks: number | undefined): Array<EngineConfig> =>
  plan.backends.map((b) => {
    const name = engineProfileOf(b)
    if (name === undefined || !isProfileName(name)) {
      throw new PlannerError(`backend ${b.id}: the planner needs a known engine profile (profile: one of ${Object.keys(PROFILES).join(", ")})`)
    }
    const p = PROFILES[name]
    if (kvBlocks === undefined) return p
    return { ...p, numGpuBlocks: kvBlocks, maxModelLen: Math.min(p.maxModelLen, kvBlocks * p.blockSize) }
  })

// ---- prompts as token ids, and the admission estimate's prefix hashes over them

const hashString = (s: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** The prompt's token ids: each segment's ids are a function of its key (equal keys, equal runs). */
export const promptIds = (segments: Arrival["segments"]): Uint32Array => {
  let n = 0
  for (const s of segments) n += s.tokens
  const out = new Uint32Array(n)
  let k = 0
  for (const s of segments) {
    const r = makeRng(hashString(s.key))
    for (let i = 0; i < s.tokens; i++) out[k++] = 1 + Math.floor(r() * 100_000)
  }
  return out
}

const segmentIds = (key: string, tokens: number): Uint32Array => promptIds([{ key, tokens }])

/** Characters per token the planner assumes (English BPE), so `prefix_block_chars` maps to token blocks. */
export const CHARS_PER_TOKEN = 4

/** Chained hashes of the prompt's leading blocks, as admission/PrefixHash.ts chains text blocks. */
const prefixHashes = (ids: Uint32Array, routing: RoutingPlan, salt: string): Uint32Array => {
  const perBlock = Math.max(1, Math.round(routing.prefixBlockChars / CHARS_PER_TOKEN))
  const blocks = Math.min(routing.prefixMaxBlocks, Math.floor(ids.length / perBlock))
  const out = new Uint32Array(blocks)
  let h = hashString(salt)
  for (let b = 0; b < blocks; b++) {
    for (let i = b * perBlock; i < (b + 1) * perBlock; i++) h = Math.imul(h ^ ids[i]!, 0x01000193) >>> 0
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0
    out[b] = h
  }
  return out
}

const quantiles = (values: Float64Array | Array<number>, n: number): Quantiles => {
  const sorted = Float64Array.from(values.slice(0, n)).sort()
  const q = (p: number) =>
    sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99) }
}

/** One request in flight. */
interface Flight {
  readonly arrival: Arrival
  readonly index: number
  readonly backend: number
  readonly scope: Scope.Closeable
  readonly progress: { served: boolean; cachedTokens: number | undefined }
  readonly placed: PlacedAttempt
  readonly measured: boolean
  lastMs: number
  firstMs: number
}

/** A routed request waiting for a slot on its backend. */
interface Waiting {
  readonly req: GatewayRequest
  readonly arrival: Arrival
  readonly index: number
  readonly measured: boolean
  readonly ids: Uint32Array
  readonly serving: ReadonlyArray<Backend>
  /** End of its flow-control wait (infinite until it first waits). */
  readonly deadlineMs: number
}

interface Routed {
  readonly backends: ReadonlyArray<Backend>
  readonly overload: "least_bad" | "saturated_last" | undefined
}

interface StepDone {
  readonly engine: number
  readonly emitted: ReadonlyArray<Sequence<Flight>>
  readonly finished: ReadonlyArray<Sequence<Flight>>
}

type Event =
  | { readonly _tag: "step"; readonly done: StepDone }
  | { readonly _tag: "scrape" }
  | { readonly _tag: "arrival"; readonly arrival: Arrival; readonly index: number }

/** FlowControl.ts's NUDGE_MS. */
const FLOW_NUDGE_MS = 1000

const KIND_STEP = 0
const KIND_SCRAPE = 1
const KIND_ARRIVAL = 2

/** Replays `trace` through a fleet built from `plan` under one routing policy. */
export const run = (plan: Plan, trace: ReadonlyArray<Arrival>, options: Options): Report => {
  const routing: RoutingPlan = {
    ...plan.routing,
    policy: options.policy,
    picker: options.picker ?? plan.routing.picker,
    seed: options.seed ?? plan.routing.seed ?? 1
  }
  const registry = Registry.make()
  const unknown = Registry.check(registry, routing)
  if (unknown.length > 0) throw new PlannerError(unknown.map((u) => `${u.path}: ${u.message}`).join("; "))
  registry.seal()
  const compiled = Pipeline.compiler(registry)(routing)
  const random = Baselines.rng(routing.seed ?? 1)

  let now = 0
  const nanos = () => BigInt(Math.round(now * 1e6))
  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: () => now,
    currentTimeMillis: Effect.sync(() => now),
    currentTimeNanosUnsafe: nanos,
    currentTimeNanos: Effect.sync(nanos),
    monotonicTimeNanosUnsafe: nanos,
    monotonicTimeNanos: Effect.sync(nanos),
    sleep: () => Effect.die("the planner never sleeps")
  }
  const runScoped = <A, E>(scope: Scope.Closeable, effect: Effect.Effect<A, E, Scope.Scope>): Exit.Exit<A, E> =>
    Effect.runSyncExit(effect.pipe(Scope.provide(scope), Effect.provideService(Clock.Clock, clock)))
  const close = (scope: Scope.Closeable) => Effect.runSync(Scope.close(scope, Exit.void).pipe(Effect.provideService(Clock.Clock, clock)))

  const configs = engineConfigs(plan, options.kvBlocks)
  const kvEvents = options.kvEvents === true
  const backends = plan.backends.map((b) => new Backend({ ...b, kvEvents }, pool, adapter))
  // The precise index: every backend "subscribed" from the start (its engine's events applied at each step's end).
  for (let i = 0; i < backends.length; i++) backends[i]!.kvBlocks?.connected(`planner-${i}`, configs[i]!.blockSize)
  const kvSeq = new Float64Array(backends.length)
  const engines = configs.map((c, i) =>
    new Engine<Flight>(c, { jitter: options.jitter ?? 0, seed: (routing.seed ?? 1) * 7919 + i, cacheSalt: plan.backends[i]!.models.values().next().value ?? "" })
  )
  const indexOf = new Map<Backend, number>(backends.map((b, i) => [b, i]))
  const state = Placement.make({ ...plan, routing })
  const affinity = Affinity.make(100_000, routing.sessionTtlMs)
  const breakers = Breakers.make(plan.breakers)
  const deps: Views.ViewDeps = {
    breakers,
    state,
    degradedWeight: plan.breakers.degradedWeight,
    maxSignalAgeMs: 2 * plan.health.scrapeIntervalMs
  }
  const byModel = new Map<string, Array<Backend>>()
  for (const b of backends) {
    for (const m of b.plan.models.keys()) {
      const list = byModel.get(m) ?? []
      list.push(b)
      byModel.set(m, list)
    }
  }
  const turns = new Map<string, number>()

  /** The Router's route for one pool (Router.ts, without P/D): the backends in the order dispatch tries them. */
  const route = (req: GatewayRequest, serving: ReadonlyArray<Backend>): Routed | undefined => {
    const hinted = req.sessionKey === undefined ? undefined : affinity.peek(req.sessionKey, now)
    if (routing.policy === "ordered") return { backends: Baselines.ordered(serving, now, hinted), overload: undefined }
    const ctx = { req, nowMs: now, plan: routing }
    const views = Views.views(req, serving, now, hinted, deps)
    const toBackends = (vs: ReadonlyArray<BackendView>) => vs.map((v) => v.backend)
    if (routing.policy !== "inference") {
      const filtered = Pipeline.filter(compiled, ctx, views, "saturation")
      if (!filtered.ok) return undefined
      const turn = turns.get(req.model.id) ?? 0
      turns.set(req.model.id, turn + 1)
      const ordered = routing.policy === "round_robin"
        ? Baselines.roundRobin(filtered.views, turn)
        : routing.policy === "least_outstanding"
        ? Baselines.leastOutstanding(filtered.views, turn)
        : Baselines.random(filtered.views, random)
      return { backends: toBackends(Pipeline.excludedLast(ordered, filtered)), overload: filtered.overload }
    }
    const result = Pipeline.run(compiled, ctx, views, random)
    return result.ok ? { backends: toBackends(result.views), overload: result.overload } : undefined
  }

  // ---- measurements
  const measure = options.measure
  const warmupMs = measure?.warmupMs ?? 0
  const windowEnd = measure?.durationMs ?? Number.POSITIVE_INFINITY
  const cutoff = measure === undefined ? Number.POSITIVE_INFINITY : measure.durationMs + measure.drainMs
  const slo = options.slo ?? { ttftMs: 2000, tpotMs: 100 }
  const ttfts: Array<number> = []
  let gaps = new Float64Array(1 << 16)
  let gapCount = 0
  let windowTokens = 0
  let allTokens = 0
  let measuredCount = 0
  let completed = 0
  let rejected = 0
  let flowWaited = 0
  let flowRefused = 0
  let good = 0
  let cachedSum = 0
  let promptSum = 0
  const busyMs = new Float64Array(engines.length)
  const spread = new Map<string, number>()
  const inFlight = new Set<Flight>()

  const pending: Array<Array<Waiting>> = backends.map(() => [])
  const queueMs = plan.timeouts.queueMs
  const events = new EventHeap<Event>()
  const stepping = new Uint8Array(engines.length)

  const stepEngine = (i: number) => {
    const engine = engines[i]!
    if (!engine.hasWork) return
    const r = engine.step()
    if (r.scheduled === 0) return // blocked with nothing running: the next submit wakes it
    const start = r.startMs
    const end = Math.min(r.endMs, cutoff)
    if (end > start) busyMs[i]! += end - start
    stepping[i] = 1
    events.push(r.endMs, KIND_STEP, {
      _tag: "step",
      done: { engine: i, emitted: r.emitted.slice(), finished: r.finished.slice() }
    })
  }

  const arrive = (arrival: Arrival, index: number) => {
    const measured = arrival.atMs >= warmupMs && arrival.atMs < windowEnd
    if (measured) measuredCount++
    const model = plan.modelNames.get(arrival.model)
    const modelPlan = model === undefined ? undefined : plan.models.get(model)
    const serving = model === undefined ? undefined : byModel.get(model)
    if (modelPlan === undefined || serving === undefined || serving.length === 0) {
      rejected++
      return
    }
    const ids = promptIds(arrival.segments)
    const prompt = ids.length
    const hashes = prefixHashes(ids, routing, modelPlan.id)
    const body = { model: arrival.model, messages: [{ role: "user" as const, content: "" }], stream: true }
    const req: GatewayRequest = {
      kind: "chat",
      body,
      id: RequestId(`plan-${index}`),
      model: modelPlan,
      requestedModel: arrival.model,
      rawBody: undefined,
      stream: true,
      clientWantsUsage: true,
      requestedMaxTokens: arrival.maxTokens,
      estimate: {
        promptTokens: prompt,
        maxOutputTokens: arrival.maxTokens,
        outputCap: arrival.maxTokens,
        reservationTokens: prompt + arrival.maxTokens,
        promptChars: prompt * CHARS_PER_TOKEN,
        prefixHashes: hashes,
        prefixBlockChars: routing.prefixBlockChars,
        kvPromptTokens: kvEvents ? ids.subarray(0, routing.prefixMaxBlocks * 16) : undefined
      },
      identity: { tenant: TenantId(arrival.tenant), keyId: undefined, via: "anonymous" },
      tenant: TenantId(arrival.tenant),
      headers: {},
      sessionKey: arrival.session,
      promptPrefix: "",
      receivedAtMs: now
    }
    const waiting: Waiting = { req, arrival, index, measured, ids, serving, deadlineMs: Number.POSITIVE_INFINITY }
    place(waiting, true)
  }

  /**
   * Routes and places a request (Pipeline.ts's leg): when every candidate is saturated, the model's
   * `on_saturation` decides: the least bad takes it (route), it waits for a turn in flow control (queue),
   * or it is refused (reject). A turn re-routes; still all saturated, it waits again, within one max wait.
   */
  const place = (w: Waiting, first: boolean) => {
    const routed = route(w.req, w.serving)
    const backend = routed?.backends[0]
    const i = backend === undefined ? undefined : indexOf.get(backend)
    if (routed === undefined || backend === undefined || i === undefined || w.ids.length + w.arrival.outputTokens > configs[i]!.maxModelLen) {
      rejected++
      return
    }
    const saturation = w.req.model.onSaturation ?? "route"
    if (routed.overload === "least_bad" && saturation !== "route") {
      if (saturation === "reject") {
        rejected++
        flowRefused++
        return
      }
      const fc = plan.flowControl
      if (first) flowWaited++
      const queued = flowQueue(w.req.model.id).enqueue({
        tenant: w.arrival.tenant,
        band: bandOf(fc, w.arrival.tenant, undefined),
        cost: w.req.estimate.promptTokens + w.req.estimate.outputCap,
        deadlineMs: first ? now + fc.maxWaitMs : w.deadlineMs,
        value: first ? { ...w, deadlineMs: now + fc.maxWaitMs } : w
      })
      if (queued._tag === "Refused") {
        rejected++
        flowRefused++
      } else {
        rejected += queued.shed.length
        flowRefused += queued.shed.length
      }
      return
    }
    // No free slot: wait for one in FIFO order, at most `timeouts.queue` (dispatch's holdSlot).
    if (backend.slots.free === 0 || pending[i]!.length > 0) pending[i]!.push(w)
    else start(w, i)
  }

  const flowQueues = new Map<string, FlowQueue<Waiting>>()
  const flowDepth = () => {
    let n = 0
    for (const q of flowQueues.values()) n += q.size
    return n
  }
  const lastTurn = new Map<string, number>()
  const flowQueue = (model: string): FlowQueue<Waiting> => {
    let q = flowQueues.get(model)
    if (q === undefined) {
      const fc = plan.flowControl
      q = new FlowQueue<Waiting>({ bands: fc.bands, maxQueued: fc.maxQueued, weight: (t) => fc.tenants.get(t)?.weight ?? 1 })
      flowQueues.set(model, q)
    }
    return q
  }
  /** A request of `model` ended (or a nudge): the next waiter in fair order gets a turn. */
  const turn = (model: string) => {
    const q = flowQueues.get(model)
    if (q === undefined || q.size === 0) return
    lastTurn.set(model, now)
    for (const expired of q.expire(now)) {
      void expired
      rejected++
      flowRefused++
    }
    const next = q.next()
    if (next !== undefined) place(next.value, false)
  }

  /** Takes the backend's slot, tokens in flight, session pin and placement, then submits to its engine. */
  const start = (w: Waiting, i: number) => {
    const backend = backends[i]!
    const { req } = w
    const scope = Scope.makeUnsafe()
    const progress: Flight["progress"] = { served: false, cachedTokens: undefined }
    const taken = runScoped(scope, Effect.gen(function*() {
      yield* backend.holdSlot(0)
      yield* backend.holdTokens(req.estimate.reservationTokens)
      if (req.sessionKey !== undefined) yield* affinity.pin(req.sessionKey, backend.id)
      backend.attempted()
      const attempt: AttemptProgress = progress
      return yield* state.dispatched(req, backend, attempt)
    }))
    if (Exit.isFailure(taken)) {
      close(scope)
      rejected++
      return
    }
    const flight: Flight = { arrival: w.arrival, index: w.index, backend: i, scope, progress, placed: taken.value, measured: w.measured, lastMs: -1, firstMs: -1 }
    inFlight.add(flight)
    const engine = engines[i]!
    if (stepping[i] === 0) engine.advanceTo(now)
    engine.submit(
      { prompt: w.ids, outputTokens: w.arrival.outputTokens, outputIds: segmentIds(answerKey(w.index), w.arrival.outputTokens), finish: "stop" },
      flight,
      now
    )
    if (stepping[i] === 0) stepEngine(i)
  }

  /** A slot freed on backend `i`: the waiters that still may, in order. */
  const admitWaiting = (i: number) => {
    const queue = pending[i]!
    while (queue.length > 0 && backends[i]!.slots.free > 0) {
      const w = queue.shift()!
      if (now - w.arrival.atMs > queueMs) rejected++
      else start(w, i)
    }
  }

  const stepDone = (done: StepDone) => {
    const t = now
    const backend = backends[done.engine]!
    stepping[done.engine] = 0
    const index = backend.kvBlocks
    if (index !== undefined) {
      const events = engines[done.engine]!.kvEvents.drain()
      if (events !== undefined) index.apply({ seq: kvSeq[done.engine]!++, ts: t / 1000, events })
    }
    const inWindow = t >= warmupMs && t <= windowEnd
    allTokens += done.emitted.length
    if (inWindow) windowTokens += done.emitted.length
    for (const seq of done.emitted) {
      const f = seq.sink
      if (f.firstMs < 0) {
        f.firstMs = t
        f.placed.started()
        backend.firstToken(t - f.arrival.atMs)
        backend.succeeded(t)
        if (f.measured) ttfts.push(t - f.arrival.atMs)
      } else if (f.measured) {
        if (gapCount === gaps.length) {
          const bigger = new Float64Array(gaps.length * 2)
          bigger.set(gaps)
          gaps = bigger
        }
        gaps[gapCount++] = t - f.lastMs
      }
      f.lastMs = t
    }
    for (const seq of done.finished) {
      const f = seq.sink
      inFlight.delete(f)
      f.progress.served = true
      f.progress.cachedTokens = seq.cachedPromptTokens
      const out = seq.outputCount
      const tpot = out > 1 ? (t - f.firstMs) / (out - 1) : 0
      if (out > 1) backend.streamed(tpot)
      close(f.scope)
      admitWaiting(done.engine)
      turn(plan.modelNames.get(f.arrival.model) ?? f.arrival.model)
      if (f.measured) {
        completed++
        cachedSum += Math.max(0, seq.cachedPromptTokens)
        promptSum += seq.promptLength
        spread.set(backend.id, (spread.get(backend.id) ?? 0) + 1)
        if (f.firstMs - f.arrival.atMs <= slo.ttftMs && tpot <= slo.tpotMs) good++
      }
      const follow = options.next?.(f.arrival, f.index, t)
      if (follow !== undefined) events.push(Math.max(t, follow.atMs), KIND_ARRIVAL, { _tag: "arrival", arrival: follow, index: nextIndex++ })
    }
    stepEngine(done.engine)
  }

  const scrapeMs = plan.health.scrapeIntervalMs
  const scrape = () => {
    for (let i = 0; i < backends.length; i++) {
      const b = backends[i]!
      if (b.plan.metrics === "none") continue
      const s = engines[i]!.snapshot()
      const signals: EngineSignals = {
        waiting: s.waiting,
        running: s.running,
        kvUsage: s.kvUsage,
        prefixHitRate: undefined,
        blockSize: configs[i]!.blockSize,
        numGpuBlocks: s.totalBlocks,
        scrapedAtMs: now
      }
      b.observeSignals(signals)
    }
  }

  let nextIndex = trace.length
  let cursor = 0
  // Scrapes (and flow control's nudges) on a timer, while anything is scraped or may wait for a turn.
  const queueing = [...plan.models.values()].some((m) => m.onSaturation === "queue")
  const tickMs = scrapeMs > 0 ? scrapeMs : 500
  const scraping = (plan.backends.some((b) => b.metrics !== "none") && scrapeMs > 0) || queueing
  if (scraping) events.push(0, KIND_SCRAPE, { _tag: "scrape" })
  for (;;) {
    const head = events.peek()
    const arrival = trace[cursor]
    // Static arrivals come from the sorted trace; a tie with a heap event goes to the heap first.
    if (arrival !== undefined && (head === undefined || arrival.atMs < head.at)) {
      if (arrival.atMs > cutoff) break
      now = Math.max(now, arrival.atMs)
      arrive(arrival, cursor++)
      continue
    }
    if (head === undefined) break
    // Only scrapes left (and nothing in flight, nothing to arrive): done.
    if (head.kind === KIND_SCRAPE && inFlight.size === 0 && arrival === undefined && events.size === 1 && flowDepth() === 0) break
    if (head.at > cutoff) break
    events.pop()
    now = Math.max(now, head.at)
    const e = head.value
    if (e._tag === "step") stepDone(e.done)
    else if (e._tag === "scrape") {
      scrape()
      // FlowControl's nudge: a model whose waiters got no turn for a second gets one.
      for (const model of flowQueues.keys()) if (now - (lastTurn.get(model) ?? 0) >= FLOW_NUDGE_MS) turn(model)
      events.push(now + tickMs, KIND_SCRAPE, e)
    } else arrive(e.arrival, e.index)
  }

  let unfinished = 0
  for (const f of inFlight) {
    if (f.measured) unfinished++
    close(f.scope)
  }
  for (const queue of pending) for (const w of queue) if (w.measured) unfinished++
  for (const q of flowQueues.values()) {
    for (let w = q.next(); w !== undefined; w = q.next()) if (w.value.measured) unfinished++
  }
  let preemptions = 0
  let gpuSeconds = 0
  let cost = 0
  for (let i = 0; i < engines.length; i++) {
    preemptions += engines[i]!.counters.preemptions
    const g = (busyMs[i]! / 1000) * profileOf(plan.backends[i]!).gpuCount
    gpuSeconds += g
    cost += g * plan.backends[i]!.costPerGpuSecond
  }
  // Unmeasured runs: the whole run (to the last token) is the window.
  const windowS = measure === undefined ? now / 1000 : (measure.durationMs - measure.warmupMs) / 1000
  const spreadOut: Record<string, number> = {}
  for (const [k, v] of spread) spreadOut[k] = completed === 0 ? 0 : v / completed
  return {
    policy: `${routing.policy}${kvEvents ? "+kv" : ""}${options.picker === undefined || routing.policy !== "inference" ? "" : `/${options.picker}`}`,
    arrivals: nextIndex,
    requests: measuredCount,
    completed,
    unfinished,
    rejected,
    flowWaited,
    flowRefused,
    ttft: quantiles(ttfts, ttfts.length),
    itl: quantiles(gaps, gapCount),
    outputTokensPerS: windowS > 0 ? windowTokens / windowS : Number.NaN,
    goodput: windowS > 0 ? good / windowS : Number.NaN,
    goodputShare: measuredCount === 0 ? 0 : good / measuredCount,
    hitRate: promptSum === 0 ? 0 : cachedSum / promptSum,
    preemptions,
    gpuSeconds,
    cost,
    costPerMTokens: allTokens === 0 ? Number.NaN : (cost / allTokens) * 1e6,
    spread: spreadOut,
    simulatedSeconds: now / 1000
  }
}
