/**
 * The routing state's local load of a backend: requests waiting for their first token (and
 * their uncached prompt tokens), requests decoding, KV tokens in flight, as attempts start,
 * get their first token and end, in any order.
 */
import { afterEach, describe, expect, it } from "vitest"
import { routerFor } from "./harness.ts"
import { backend, request, text } from "./support.ts"

let close: (() => Promise<void>) | undefined
afterEach(async () => {
  await close?.()
  close = undefined
})

describe("Placement.load", () => {
  it("counts pending and decoding attempts as their first tokens come and their scopes close", async () => {
    const a = backend("a")
    const r = await routerFor([a])
    close = r.close
    const zero = { pendingRequests: 0, pendingPrefillTokens: 0, decoding: 0, kvTokens: 0 }
    expect(r.placement.load(a)).toEqual(zero)

    const attempts = []
    for (let i = 0; i < 6; i++) attempts.push(await r.dispatch(request(text(400, i)), a, false))
    const six = r.placement.load(a)
    expect(six.pendingRequests).toBe(6)
    expect(six.decoding).toBe(0)
    expect(six.pendingPrefillTokens).toBeGreaterThan(0)
    expect(six.kvTokens).toBeGreaterThan(six.pendingPrefillTokens)

    // three get their first token; one of those and one still pending end
    for (const x of attempts.slice(0, 3)) x.placed.started()
    const started = r.placement.load(a)
    expect(started.pendingRequests).toBe(3)
    expect(started.decoding).toBe(3)
    expect(started.kvTokens).toBe(six.kvTokens)
    expect(started.pendingPrefillTokens).toBeLessThan(six.pendingPrefillTokens)
    await attempts[0]!.end()
    await attempts[5]!.end()
    expect(r.placement.load(a)).toMatchObject({ pendingRequests: 2, decoding: 2 })

    // one starts and ends without a routing decision in between
    attempts[4]!.placed.started()
    await attempts[4]!.end()
    expect(r.placement.load(a)).toMatchObject({ pendingRequests: 1, decoding: 2 })

    for (const x of [attempts[1]!, attempts[2]!, attempts[3]!]) await x.end()
    expect(r.placement.load(a)).toEqual(zero)
  })
})
