/**
 * The world the lifecycle property drives: three fake engines (two for model `m`, one with a
 * single slot for model `q`), the real gateway graph in front of them with one request-policy
 * extension (the probe), and the clients.
 *
 * The probe runs for every request, as an embedder's guardrail would: it acquires a resource
 * (a count of open probe calls) with `acquireUseRelease`, does what the request's scenario
 * drew (pass, reject, fail, die, hang), and its release records whether it was interrupted,
 * so the oracle can check that every probe call was released, and by interruption when the
 * deadline or the client ended it.
 *
 * The `Ledger` is the bookkeeping shared by the engines and the clients: the n-th request an
 * engine receives for a request id gets the n-th scripted attempt of its scenario, whatever
 * backend the router chose, and clients leave on cue (when an engine has seen an attempt,
 * after N events, when queued). Nothing here judges anything.
 */
import { Data, Effect, Exit } from "effect"
import * as Tokenizer from "../../src/admission/Tokenizer.ts"
import * as Extensions from "../../src/extensions/Contract.ts"
import type { RequestVerdict } from "../../src/extensions/Contract.ts"
import { RequestPolicies } from "../../src/extensions/Registries.ts"
import { type ClientOptions, streamChat, unaryChat } from "../support/Client.ts"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"
import type { ClientResult } from "./lifecycle.oracle.ts"
import { type Batch, type ExtensionBehaviour, MAX_ATTEMPTS, type Scenario, scriptOf, TIMEOUTS } from "./lifecycle.scenarios.ts"

/** A client that has no answer this long after sending has hit a hang. */
const HANG_MS = TIMEOUTS.totalMs + 4000

export const idleJson = JSON.stringify(idle)
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

let nextKey = 0
/** A request id no other request in this process has. */
export const newKey = () => `r${nextKey++}`

interface Waiter {
  readonly n: number
  readonly resolve: () => void
}

/** What the probe policy did for one request. */
export interface ProbeTrace {
  entered: boolean
  released: boolean
  interrupted: boolean
}

/** The probe's typed failure (outside its contract's `never`: the gateway must contain it). */
class ProbeFailed extends Data.TaggedError("ProbeFailed")<{ readonly key: string }> {}

/** Per-request bookkeeping shared by the engines' script function, the probe policy and the clients. */
export class Ledger {
  readonly scenarios = new Map<string, Scenario>()
  readonly probes = new Map<string, ProbeTrace>()
  /** Probe calls acquired and not released yet (0 when idle). */
  probesOpen = 0
  private readonly probeWaiters = new Map<string, Array<Waiter>>()
  private readonly attempts = new Map<string, number>()
  /** Waiters for a count (attempts received, events seen by the client) to reach `n`. */
  private readonly seenWaiters = new Map<string, Array<Waiter>>()
  private readonly events = new Map<string, number>()
  private readonly eventWaiters = new Map<string, Array<Waiter>>()

  attemptsOf(key: string): number {
    return this.attempts.get(key) ?? 0
  }

  /** Resolves once the engines have received attempt `n` (0-based) of `key`. */
  seen(key: string, n: number): Promise<void> {
    if (this.attemptsOf(key) >= n + 1) return Promise.resolve()
    return new Promise((resolve) => this.push(this.seenWaiters, key, { n: n + 1, resolve }))
  }

  /** Resolves once the client of `key` has received `n` SSE events. */
  clientSaw(key: string, n: number): Promise<void> {
    if ((this.events.get(key) ?? 0) >= n) return Promise.resolve()
    return new Promise((resolve) => this.push(this.eventWaiters, key, { n, resolve }))
  }

  /** Resolves once the probe policy is running for `key`. */
  probeRuns(key: string): Promise<void> {
    if (this.probes.get(key)?.entered === true) return Promise.resolve()
    return new Promise((resolve) => this.push(this.probeWaiters, key, { n: 1, resolve }))
  }

  /** The probe's behaviour for a request: its scenario's, `pass` for requests without one. */
  private behaviour(key: string): ExtensionBehaviour {
    return this.scenarios.get(key)?.extension ?? "pass"
  }

  /** The request policy every request passes through. */
  readonly probe: Extensions.RequestPolicy = {
    name: "lifecycle-probe",
    apply: (_call, ctx) => {
      const key: string = ctx.requestId
      const act = (behaviour: ExtensionBehaviour): Effect.Effect<RequestVerdict> => {
        switch (behaviour) {
          case "pass":
            return Effect.succeed(Extensions.pass)
          case "reject":
            return Effect.succeed(Extensions.reject("blocked by the lifecycle probe"))
          case "fail":
            // A typed error the contract does not allow: an extension's bug the gateway must contain.
            return Effect.fail(new ProbeFailed({ key })) as unknown as Effect.Effect<RequestVerdict>
          case "die":
            return Effect.die(new Error(`lifecycle probe defect (${key})`))
          case "hang":
            return Effect.never
        }
      }
      return Effect.acquireUseRelease(
        Effect.sync(() => {
          const trace: ProbeTrace = { entered: true, released: false, interrupted: false }
          this.probes.set(key, trace)
          this.probesOpen++
          this.wake(this.probeWaiters, key, 1)
          return trace
        }),
        () => act(this.behaviour(key)),
        (trace, exit) =>
          Effect.sync(() => {
            trace.released = true
            trace.interrupted = Exit.hasInterrupts(exit)
            this.probesOpen--
          })
      )
    }
  }

  onEvent(key: string, count: number): void {
    this.events.set(key, count)
    this.wake(this.eventWaiters, key, count)
  }

  /** The engines' script function: the n-th request for a key gets the n-th scripted attempt. */
  readonly script = (_model: string, _body: Record<string, unknown>, headers: Record<string, unknown>): Fake.Script => {
    const key = String(headers["x-request-id"])
    const sc = this.scenarios.get(key)
    if (sc === undefined) return {}
    const n = this.attemptsOf(key)
    this.attempts.set(key, n + 1)
    this.wake(this.seenWaiters, key, n + 1)
    return scriptOf(key, sc.stream, n, sc.attempts[n], (events) => this.clientSaw(key, events))
  }

  private push(map: Map<string, Array<Waiter>>, key: string, w: Waiter) {
    const list = map.get(key) ?? []
    list.push(w)
    map.set(key, list)
  }

  private wake(map: Map<string, Array<Waiter>>, key: string, count: number) {
    const list = map.get(key)
    if (list === undefined) return
    const still = list.filter((w) => {
      if (count >= w.n) {
        w.resolve()
        return false
      }
      return true
    })
    map.set(key, still)
  }
}

export interface World {
  readonly gw: TestGateway
  readonly engines: ReadonlyArray<Fake.FakeEngine>
  readonly ledger: Ledger
  readonly close: () => Promise<void>
}

export const startWorld = async (): Promise<World> => {
  const ledger = new Ledger()
  const [a, b, q] = await Promise.all([Fake.start(ledger.script), Fake.start(ledger.script), Fake.start(ledger.script)])
  const gw = await startGateway(`
backends:
  - { id: a, url: "${a.url}", models: [m], gpu: fake-a, max_concurrency: 64, metrics: none }
  - { id: b, url: "${b.url}", models: [m], gpu: fake-b, max_concurrency: 64, metrics: none }
  - { id: q, url: "${q.url}", models: [q], gpu: fake-q, max_concurrency: 1, metrics: none }
timeouts: { first_token: ${TIMEOUTS.firstTokenMs}ms, idle: ${TIMEOUTS.idleMs}ms, total: ${TIMEOUTS.totalMs}ms, queue: ${TIMEOUTS.queueMs}ms }
extensions: { timeout: ${TIMEOUTS.extensionMs}ms }
retries: { max_attempts: ${MAX_ATTEMPTS}, budget_ratio: 1, min_per_second: 100000 }
# Neither health nor breakers may mask a path: no run produces enough evidence to judge.
health: { unhealthy_after: 1000000, min_samples: 1000000, min_tokens_per_second: 0 }
breakers: { min_requests: 1000000 }
`, { extensions: RequestPolicies.add(ledger.probe) })
  // The tokenizer tables load on first use, and the process's first requests run cold:
  // both happen here, so the first run's deadlines are like the others'.
  await gw.run(Tokenizer.load("cl100k"))
  const world: World = {
    gw,
    engines: [a, b, q],
    ledger,
    close: async () => {
      await gw.close()
      await Promise.all([a.close(), b.close(), q.close()])
    }
  }
  if (!warmedUp) await warmUp(world)
  warmedUp = true
  return world
}

let warmedUp = false

/** A few plain requests through the first world (not judged): the process's code runs warm. */
const warmUp = async (world: World) => {
  const plain = (stream: boolean, model: Scenario["model"]): Scenario => ({
    cls: stream ? "stream:completed" : "unary:completed",
    stream,
    model,
    attempts: [{ kind: "ok", tokens: 3, gapMs: 0, usage: null }],
    client: { kind: "read" },
    extension: "pass",
    prompt: "warm up",
    maxTokens: 16,
    includeUsage: false,
    session: "user",
    delayMs: 0
  })
  await Promise.all([true, false, true, false, true, false].map((stream, i) => send(world, `warm${i}`, plain(stream, "m"))))
  await send(world, "warm-q", plain(true, "q"))
  await eventually(() => world.gw.held(), (h) => JSON.stringify(h) === idleJson, 3000)
}

/** Sends one scenario's request; resolves with what the client got. */
export const send = (world: World, key: string, sc: Scenario, leaveWhen?: Promise<unknown>): Promise<{ client: ClientResult; hung: boolean }> => {
  const { gw, ledger } = world
  ledger.scenarios.set(key, sc)
  const body: Record<string, unknown> = {
    model: sc.model,
    messages: [{ role: "user", content: sc.prompt }],
    max_tokens: sc.maxTokens,
    stream: sc.stream,
    ...(sc.stream && sc.includeUsage ? { stream_options: { include_usage: true } } : {}),
    ...(sc.session === "user" ? { user: `u-${key}` } : {})
  }
  const headers = { "x-request-id": key, ...(sc.session === "header" ? { "x-session-id": `s-${key}` } : {}) }
  let hung = false
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      hung = true
      resolve()
    }, HANG_MS)
  })
  const leave = sc.client.kind === "leave_when_seen"
    ? ledger.seen(key, sc.client.attempt)
    : sc.client.kind === "leave_when_policy_runs"
    ? ledger.probeRuns(key)
    : leaveWhen
  const abortWhen = leave === undefined ? hang : Promise.race([leave, hang])
  const options: ClientOptions = {
    headers,
    abortWhen,
    onEvent: (n) => ledger.onEvent(key, n),
    ...(sc.client.kind === "leave_after_events" ? { abortAfterEvents: sc.client.events } : {})
  }
  const done = sleep(sc.delayMs).then(() =>
    sc.stream
      ? streamChat(gw.url, body, options).then((result): ClientResult => ({ api: "stream", result }))
      : unaryChat(gw.url, body, options).then((result): ClientResult => ({ api: "unary", result }))
  )
  return done.then((client) => {
    clearTimeout(timer)
    return { client, hung }
  })
}

/**
 * The queue group on the single-slot backend: the holder takes the slot; then one waiter
 * times out in the queue, and after it another leaves as soon as it is queued (one at a
 * time, so that leaving never races the waiter's own queue deadline).
 */
export const sendQueueGroup = async (world: World, group: Batch["queue"], keys: readonly [string, string, string]) => {
  const [holderKey, timesOutKey, leavesKey] = keys
  const holder = send(world, holderKey, group.holder)
  await world.ledger.seen(holderKey, 0)
  const q = world.gw.fleet.all.find((x) => x.id === "q")!
  const timesOut = await send(world, timesOutKey, group.timesOut)
  const queued = eventually(async () => q.slots.queued, (n) => n >= 1, 2000)
  const leaves = await send(world, leavesKey, group.leaves, queued)
  return [await holder, timesOut, leaves] as const
}
