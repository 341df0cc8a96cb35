/**
 * What dispatch's `hold` costs per attempt, taken and released: a model slot (free), the
 * queue-wait record, the in-flight tokens, the session's KV pin (with a session key) and the
 * placement ticket, in a fresh scope that is then closed. `one step` is this tree's
 * `dispatch/Hold.ts`; `one by one` is the hold of 455182f (four scoped acquisitions, each with
 * its finalizer, the records as effects), written out here over another tree's Affinity and
 * Placement (`src` of a checkout of 455182f, e.g. `git worktree add /tmp/b-hold 455182f`) and the
 * scoped `holdSlot`/`holdTokens` that both trees share. Process CPU time over N attempts,
 * alternated rounds (the first warms up), one process, no I/O.
 *
 *   npm run bench:hold -- /tmp/b-hold/src [rounds]
 */
import { Effect, Exit, Scope } from "effect"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import type { GatewayRequest } from "../src/admission/Request.ts"
import type { Backend } from "../src/backends/Backend.ts"
import * as Hold from "../src/dispatch/Hold.ts"
import * as Metrics from "../src/observability/Metrics.ts"
import * as Affinity from "../src/routing/Affinity.ts"
import * as Placement from "../src/routing/Placement.ts"
import * as support from "../test/routing/support.ts"
import { planFromYaml } from "../test/support/Gateway.ts"

if (process.argv[2] === undefined) {
  process.stderr.write("usage: npm run bench:hold -- <src of a 455182f checkout> [rounds]\n")
  process.exit(2)
}
const beforeRoot = resolve(process.argv[2])
const rounds = Number(process.argv[3] ?? 5)
const AffinityBefore = await import(pathToFileURL(`${beforeRoot}/routing/Affinity.ts`).href)
const PlacementBefore = await import(pathToFileURL(`${beforeRoot}/routing/Placement.ts`).href)

const N = 20_000
const plan = await planFromYaml(`
backends:
  - { id: x, url: "http://127.0.0.1:1/v1", models: [m] }
`)
const progress = { served: true, cachedTokens: undefined }

type Holder = (req: GatewayRequest, backend: Backend, queueMs: number) => Effect.Effect<unknown, unknown, Scope.Scope>

/** 455182f's `hold` (src/dispatch/Dispatch.ts there), over that tree's Affinity and Placement. */
const oneByOne = (affinity: any, placement: any): Holder => (req, backend, queueMs) =>
  Effect.gen(function*() {
    const waited = yield* backend.holdSlot(queueMs).pipe(
      Effect.tapError((e) => Metrics.recordQueueWait(req.model.id, backend.id, e.afterMs))
    )
    yield* Metrics.recordQueueWait(req.model.id, backend.id, waited)
    yield* backend.holdTokens(req.estimate.reservationTokens)
    if (req.sessionKey !== undefined) yield* (affinity.pin(req.sessionKey, backend.id) as Effect.Effect<void, never, Scope.Scope>)
    return yield* (placement.dispatched(req, backend, progress) as Effect.Effect<unknown, never, Scope.Scope>)
  })

const oneStep = (affinity: Affinity.Affinity["Service"], placement: Placement.RoutingState) =>
(req: GatewayRequest, backend: Backend, queueMs: number) => Hold.hold(affinity, placement, req, backend, queueMs, progress)

const run = async (holder: Holder, req: GatewayRequest, backend: Backend): Promise<number> => {
  const loop = Effect.gen(function*() {
    for (let i = 0; i < N; i++) {
      const scope = yield* Scope.make()
      const placed = yield* holder(req, backend, 1000).pipe(Scope.provide(scope))
      ;(placed as { started: () => void }).started()
      yield* Scope.close(scope, Exit.void)
    }
  })
  const t = process.cpuUsage()
  await Effect.runPromise(loop)
  const d = process.cpuUsage(t)
  if (backend.slots.inUse !== 0 || backend.inFlightTokens !== 0) throw new Error("a hold leaked")
  return (d.user + d.system) / N
}

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

for (const session of [false, true]) {
  const req = support.request(support.text(2000, 1), session ? { sessionKey: "s:1" } : {})
  const before: Array<number> = []
  const after: Array<number> = []
  for (let r = 0; r <= rounds; r++) {
    const b = await run(oneByOne(AffinityBefore.make(1000, 60_000), PlacementBefore.make(plan)), req, support.backend("a"))
    const a = await run(oneStep(Affinity.make(1000, 60_000), Placement.make(plan)), req, support.backend("a"))
    if (r === 0) continue
    before.push(b)
    after.push(a)
  }
  const mb = median(before)
  const ma = median(after)
  console.log(
    `${session ? "with a session key" : "no session key    "}: one by one ${mb.toFixed(2)} µs, one step ${ma.toFixed(2)} µs, ` +
      `${(ma / mb).toFixed(2)}x  (rounds: ${before.map((x) => x.toFixed(2)).join(", ")} / ${after.map((x) => x.toFixed(2)).join(", ")})`
  )
}
