/**
 * Placement keeps each backend's load as running counts (pending requests and their uncached
 * prompt tokens, decoding requests, KV tokens) instead of walking the attempts in flight per
 * routing decision. Property (fast-check): over any sequence of dispatches, first tokens
 * (repeated ones included, and ones reported after the attempt ended) and releases (served or
 * not), the counts equal a walk over a model of the attempts in flight, `pendingMatch` equals
 * the walk over the pending ones, and everything returns to zero once every attempt ended.
 */
import { Effect, Exit, Scope } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { GatewayRequest } from "../../src/admission/Request.ts"
import type { Plan } from "../../src/config/Plan.ts"
import type { PlacedAttempt } from "../../src/routing/Contract.ts"
import * as Placement from "../../src/routing/Placement.ts"
import { planFromYaml } from "../support/Gateway.ts"
import { backend, request, text } from "./support.ts"

const SYSTEMS = [text(640, 1), text(640, 2)]

/** Prompts that share leading blocks in a few groups, so pending matches are not all zero. */
const prompt = (group: number, tail: number, length: number): GatewayRequest =>
  request(SYSTEMS[group % 2]!.slice(0, 64 * (1 + (group % 10))) + text(length, 100 + tail), { maxTokens: 1 + tail * 7 })

interface ModelTicket {
  readonly backend: number
  readonly hashes: Uint32Array
  readonly uncached: number
  readonly kv: number
  started: boolean
  released: boolean
  readonly scope: Scope.Closeable
  readonly placed: PlacedAttempt
  readonly progress: { served: boolean; cachedTokens: number | undefined }
}

const op = fc.oneof(
  fc.record({
    _tag: fc.constant("dispatch" as const),
    backend: fc.integer({ min: 0, max: 1 }),
    group: fc.integer({ min: 0, max: 5 }),
    tail: fc.integer({ min: 0, max: 20 }),
    length: fc.integer({ min: 1, max: 700 })
  }),
  fc.record({ _tag: fc.constant("start" as const), pick: fc.nat() }),
  fc.record({ _tag: fc.constant("release" as const), pick: fc.nat(), served: fc.boolean(), cached: fc.option(fc.nat(2000), { nil: undefined }) }),
  fc.record({ _tag: fc.constant("match" as const), backend: fc.integer({ min: 0, max: 1 }), group: fc.integer({ min: 0, max: 5 }), tail: fc.integer({ min: 0, max: 20 }) })
)

describe("Placement load counts", () => {
  it("equal the walk over the attempts in flight, through any dispatch / first token / release sequence", async () => {
    const plan: Plan = await planFromYaml(`
backends:
  - { id: x, url: "http://127.0.0.1:1/v1", models: [m] }
`)
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
        const state = Placement.make(plan)
        const backends = [backend("a"), backend("b")]
        const tickets: Array<ModelTicket> = []
        const live = () => tickets.filter((t) => !t.released)
        const walk = (b: number) => {
          let pendingRequests = 0
          let pendingPrefillTokens = 0
          let decoding = 0
          let kvTokens = 0
          for (const t of live()) {
            if (t.backend !== b) continue
            kvTokens += t.kv
            if (t.started) decoding++
            else {
              pendingRequests++
              pendingPrefillTokens += t.uncached
            }
          }
          return { pendingRequests, pendingPrefillTokens, decoding, kvTokens }
        }
        const walkMatch = (b: number, hashes: Uint32Array) => {
          let best = 0
          for (const t of live()) {
            if (t.backend !== b || t.started) continue
            let k = 0
            while (k < Math.min(hashes.length, t.hashes.length) && hashes[k] === t.hashes[k]) k++
            best = Math.max(best, k)
          }
          return best
        }
        for (const o of ops) {
          switch (o._tag) {
            case "dispatch": {
              const req = prompt(o.group, o.tail, o.length)
              const be = backends[o.backend]!
              const before = state.load(be)
              const scope = Scope.makeUnsafe()
              const progress = { served: false, cachedTokens: undefined as number | undefined }
              const placed = await Effect.runPromise(state.dispatched(req, be, progress).pipe(Scope.provide(scope)))
              const after = state.load(be)
              // The new attempt's own numbers, as placement sized it (bounds checked here).
              const uncached = after.pendingPrefillTokens - before.pendingPrefillTokens
              const kv = after.kvTokens - before.kvTokens
              expect(after.pendingRequests).toBe(before.pendingRequests + 1)
              expect(uncached).toBeGreaterThanOrEqual(1)
              expect(uncached).toBeLessThanOrEqual(Math.max(1, req.estimate.promptTokens))
              expect(kv).toBe(uncached + req.estimate.maxOutputTokens)
              tickets.push({ backend: o.backend, hashes: req.estimate.prefixHashes, uncached, kv, started: false, released: false, scope, placed, progress })
              break
            }
            case "start": {
              if (tickets.length === 0) break
              // Any attempt, ended ones included (a late report must change nothing).
              const t = tickets[o.pick % tickets.length]!
              t.placed.started()
              if (!t.released) t.started = true
              break
            }
            case "release": {
              const open = live()
              if (open.length === 0) break
              const t = open[o.pick % open.length]!
              t.progress.served = o.served
              t.progress.cachedTokens = o.cached
              t.released = true
              await Effect.runPromise(Scope.close(t.scope, Exit.void))
              break
            }
            case "match": {
              const hashes = prompt(o.group, o.tail, 100).estimate.prefixHashes
              expect(state.pendingMatch(backends[o.backend]!, hashes)).toBe(walkMatch(o.backend, hashes))
              break
            }
          }
          for (let b = 0; b < backends.length; b++) expect(state.load(backends[b]!)).toEqual(walk(b))
        }
        for (const t of live()) {
          t.released = true
          await Effect.runPromise(Scope.close(t.scope, Exit.void))
        }
        for (const be of backends) {
          expect(state.load(be)).toEqual({ pendingRequests: 0, pendingPrefillTokens: 0, decoding: 0, kvTokens: 0 })
        }
      }),
      { numRuns: 200 }
    )
  })
})
