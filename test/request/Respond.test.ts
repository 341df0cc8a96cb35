/**
 * A streamed response as @effect/platform-node's handler sees it when the client leaves after
 * the headers: it adds `Die(response)` to the interruption, and `Cause.combine` hashes and
 * compares every reason. Sluice's streamed responses hash by identity, never walking their
 * headers or their body.
 */
import { Cause, Effect, Equal, Hash, Stream } from "effect"
import { HttpServerError, HttpServerResponse } from "effect/http"
import { describe, expect, it } from "vitest"
import * as Respond from "../../src/request/Respond.ts"

/** A streamed response whose body counts the reads of one of its fields (a structural walk reads it). */
const counted = () => {
  const response = HttpServerResponse.stream(Stream.make(new Uint8Array([1])), {
    contentType: "text/event-stream",
    headers: { "x-request-id": "req_1" }
  })
  let reads = 0
  Object.defineProperty(response.body, "probe", { enumerable: true, get: () => ++reads })
  return { response, reads: () => reads }
}

const clientAbort = () => {
  const fiberId = Effect.runSync(Effect.withFiber((f) => Effect.succeed(f.id)))
  return Cause.fromReasons(Cause.interrupt(fiberId).reasons.map((r) => r.annotate(HttpServerError.ClientAbort.annotation)))
}

describe("Respond.byIdentity", () => {
  it("a plain streamed response is walked when its client abort's cause is combined (the cost avoided)", () => {
    const { response, reads } = counted()
    Cause.combine(clientAbort(), Cause.die(response))
    expect(reads()).toBeGreaterThan(0)
  })

  it("combining a client abort with Die(response) reads nothing of the response's body", () => {
    const { response, reads } = counted()
    const marked = Respond.byIdentity(response)
    expect(marked).toBe(response)
    const combined = Cause.combine(clientAbort(), Cause.die(marked))
    expect(combined.reasons.length).toBe(2)
    expect(reads()).toBe(0)
  })

  it("the body alone stays by identity when a middleware rebuilds the response around it (CORS headers)", () => {
    const { response, reads } = counted()
    const rebuilt = HttpServerResponse.setHeader(Respond.byIdentity(response), "access-control-allow-origin", "*")
    expect(rebuilt).not.toBe(response)
    expect(rebuilt.body).toBe(response.body)
    Hash.hash(rebuilt)
    expect(reads()).toBe(0)
  })

  it("two equal-looking streamed responses are distinct", () => {
    const body = Stream.make(new Uint8Array([1]))
    const a = HttpServerResponse.stream(body, { headers: { "x-request-id": "req_1" } })
    const b = HttpServerResponse.stream(body, { headers: { "x-request-id": "req_1" } })
    expect(Equal.equals(Respond.byIdentity(a), Respond.byIdentity(b))).toBe(false)
    expect(Equal.equals(a, a)).toBe(true)
  })
})
