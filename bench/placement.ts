/**
 * What routing's read of a backend's placed work costs per candidate, against the number of
 * attempts in flight on it: `Placement.load(backend)`, which `routing/Views.ts` calls once per
 * candidate per decision, and with it `pendingMatch`, which only the precise prefix match (a
 * backend publishing KV events) asks for: a walk over the attempts still in prefill.
 * The attempts are placed through `dispatched` in one scope, half of them past their first
 * token. Process CPU time over many calls, medians over repeats; one process, no I/O.
 *
 *   npm run bench:placement                       # this tree's src/
 *   npm run bench:placement -- /tmp/before/src    # another tree's (a before/after figure)
 *
 * Works with builds before Placement counted incrementally (their `dispatched` read an
 * `AttemptProgress.started` getter, which the progress below also carries).
 */
import { Effect, Scope } from "effect"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"

const root = resolve(process.argv[2] ?? "src")
const repeats = Number(process.argv[3] ?? 5)
const Placement = await import(pathToFileURL(`${root}/routing/Placement.ts`).href)
const support = await import(pathToFileURL(`${root}/../test/routing/support.ts`).href)
const { planFromYaml } = await import(pathToFileURL(`${root}/../test/support/Gateway.ts`).href)

const plan = await planFromYaml(`
backends:
  - { id: x, url: "http://127.0.0.1:1/v1", models: [m] }
`)
const system = support.text(4000, 3)

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const measure = async (inFlight: number, withMatch: boolean): Promise<number> => {
  const state = Placement.make(plan)
  const backend = support.backend("a")
  const scope = Scope.makeUnsafe()
  for (let i = 0; i < inFlight; i++) {
    const req = support.request(system + support.text(400, 100 + i))
    const started = i % 2 === 0
    const progress = { started, served: false, cachedTokens: undefined }
    // A PlacedAttempt from this tree; undefined from a build that read `progress.started`.
    const placed: { readonly started: () => void } | undefined = await Effect.runPromise(
      state.dispatched(req, backend, progress).pipe(Scope.provide(scope))
    )
    if (started && placed !== undefined) placed.started()
  }
  const probe = support.request(system + " probe")
  const hashes = probe.estimate.prefixHashes
  const calls = Math.max(2000, Math.min(200_000, Math.floor(20_000_000 / Math.max(1, inFlight))))
  const runs: Array<number> = []
  let sink = 0
  for (let r = 0; r < repeats; r++) {
    const t0 = process.cpuUsage()
    for (let i = 0; i < calls; i++) {
      const l = state.load(backend)
      sink += l.pendingRequests + l.decoding + (withMatch ? state.pendingMatch(backend, hashes) : 0)
    }
    const t = process.cpuUsage(t0)
    runs.push(((t.user + t.system) * 1000) / calls)
  }
  if (sink < 0) console.log(sink)
  return median(runs)
}

console.log(`Placement read per candidate, ${root}, ns (CPU), medians of ${repeats}`)
console.log("in flight        load   load + pendingMatch (precise prefix index only)")
for (const n of [0, 64, 1000, 5000]) {
  const load = await measure(n, false)
  const both = await measure(n, true)
  console.log(`${String(n).padStart(9)}   ${load.toFixed(0).padStart(9)}   ${both.toFixed(0).padStart(9)}`)
}
