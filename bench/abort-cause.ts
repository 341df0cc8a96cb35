/**
 * What @effect/platform-node's handler pays per aborted stream for the `Die` it adds to the
 * interruption once the headers are sent: `Cause.combine(interrupt, Cause.die(response))`
 * hashes and compares both reasons, the response structurally (status, headers, cookies, and
 * the body's Stream object, walked key by key). Sluice's streamed responses are marked
 * `Equal.byReferenceUnsafe`, so the response hashes and compares by identity.
 * One process, 20,000 fresh responses per round (hashes are cached per object), 7 rounds
 * alternated, medians.
 *
 *   npm run bench:abort-cause
 */
import { Cause, Effect } from "effect"
import { HttpServerError, HttpServerResponse } from "effect/http"
import * as Respond from "../src/request/Respond.ts"
const N = 20000
const fiberId = Effect.runSync(Effect.withFiber((f) => Effect.succeed(f.id)))
// the interruption as the handler makes it on the response's close
const annotated = Cause.fromReasons(Cause.interrupt(fiberId).reasons.map((r) => r.annotate(HttpServerError.ClientAbort.annotation)))
const headers = { "x-ratelimit-limit-requests": "1000", "x-ratelimit-remaining-requests": "999", "x-request-id": "req_0123456789abcdef", "x-sluice-model": "llama-3-8b", "cache-control": "no-cache", "x-sluice-backend": "vllm-a" }
const encoder = { frame: () => undefined, text: () => new Uint8Array(0), error: () => new Uint8Array(0), end: () => undefined } as any
const make = (mark: boolean) => {
  const body = Respond.streamBody(Effect.never as any, encoder, undefined, { status: 200 } as any)
  const r = HttpServerResponse.stream(body, { contentType: "text/event-stream", headers })
  return mark ? Respond.byIdentity(r) : r
}
const cpu = (mark: boolean) => {
  const rs = Array.from({ length: N }, () => make(mark))
  const t = process.cpuUsage()
  for (const r of rs) Cause.combine(annotated, Cause.die(r))
  const d = process.cpuUsage(t)
  return (d.user + d.system) / N
}
const med = (xs: Array<number>) => xs.sort((x, y) => x - y)[xs.length >> 1]!
const plain: Array<number> = []
const marked: Array<number> = []
for (let r = 0; r < 7; r++) {
  plain.push(cpu(false))
  marked.push(cpu(true))
}
console.log(`combine(interrupt, die(response)) per aborted stream, median of 7: structural ${med(plain).toFixed(2)} µs, by identity ${med(marked).toFixed(2)} µs`)
