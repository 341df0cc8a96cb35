/**
 * The baseline policies, for comparison with `inference` (bench/routing) and for simple
 * deployments: `ordered` (the foundation's policy), `round_robin`, `least_outstanding`
 * (fewest requests in flight from this gateway) and `random`.
 *
 * `ordered` looks at backends only: config order, the session's backend first, backends
 * cooling down after a retry-after and backends with no free slot behind the others.
 * The other three see the views after the hard filters (model loaded, health, breaker,
 * quantization, SKU, tenant: what any load balancer's health checks would give it) and
 * ignore everything an inference-aware router knows (queues, KV, prefixes, profiles);
 * backends cooling down go last. Plain functions; the router owns the counters and the RNG.
 */
import type { Backend } from "../backends/Backend.ts"
import type { BackendId } from "../domain/Ids.ts"
import type { BackendView } from "./Contract.ts"
import { makeRng } from "../domain/Random.ts"

export const ordered = (serving: ReadonlyArray<Backend>, now: number, pinned: BackendId | undefined): ReadonlyArray<Backend> => {
  if (serving.length === 1) return serving
  const rank = (b: Backend) => (b.id === pinned ? 0 : 4) + (b.coolDownUntilMs > now ? 2 : 0) + (b.slots.free === 0 ? 1 : 0)
  return [...serving].sort((a, b) => rank(a) - rank(b))
}

/** Moves cooling-down backends behind the others, keeping order otherwise. */
const coolingLast = (views: Array<BackendView>): Array<BackendView> => {
  if (!views.some((v) => v.coolingDown)) return views
  return [...views.filter((v) => !v.coolingDown), ...views.filter((v) => v.coolingDown)]
}

const rotate = (views: ReadonlyArray<BackendView>, offset: number): Array<BackendView> => {
  const n = views.length
  const out = new Array<BackendView>(n)
  for (let i = 0; i < n; i++) out[i] = views[(offset + i) % n]!
  return out
}

/** Round robin: the candidate after the previous pick, then the rest in rotation. */
export const roundRobin = (views: ReadonlyArray<BackendView>, turn: number): Array<BackendView> =>
  coolingLast(rotate(views, turn % Math.max(1, views.length)))

/** Least outstanding requests: fewest in flight first; equal loads in rotation (no pile-up on the first). */
export const leastOutstanding = (views: ReadonlyArray<BackendView>, turn: number): Array<BackendView> => {
  const rotated = rotate(views, turn % Math.max(1, views.length))
  return coolingLast(rotated.sort((a, b) => a.inFlight - b.inFlight))
}

/** Uniformly random order (Fisher–Yates). */
export const random = (views: ReadonlyArray<BackendView>, rng: () => number): Array<BackendView> => {
  const out = [...views]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1))
    const t = out[i]!
    out[i] = out[j]!
    out[j] = t
  }
  return coolingLast(out)
}

/** A small seeded PRNG: reproducible pickers and baselines with `routing.seed`. */
export const rng = makeRng
