/**
 * Prefill/decode disaggregation: the two legs of a request the router planned onto a P/D
 * pool (backends with `role: prefill` and `role: decode` serving the model).
 *
 *   1. prefill leg: the request, non-streaming with `max_tokens: 1` and
 *      `kv_transfer_params: {do_remote_decode: true}`, to a prefill backend. The engine
 *      computes the prompt's KV, leaves it in its transfer store and answers with the
 *      `kv_transfer_params` the decode side needs (transfer id, where to pull from, size).
 *      Its one token is discarded; its usage is not billed (the decode leg reports the
 *      request's full usage).
 *   2. decode leg: the client's request, unchanged but for those `kv_transfer_params`, to the
 *      decode backend the dispatcher is attempting. The engine pulls the KV (paying
 *      bytes ÷ bandwidth), skips the prefill of the transferred blocks and streams.
 *
 * This mirrors vLLM's disaggregated-prefill proxy protocol (NixlConnector) in shape. The
 * gateway owns the plan; the legs run inside the decode attempt's scope and under its
 * first-token deadline. A failed prefill leg is not a failed request: the decode leg is
 * sent without transfer parameters and the decode engine prefills locally.
 * Must never: bill the prefill leg, hold the prefill slot past the leg, or retry it.
 */
import { Clock, Effect, type Scope } from "effect"
import type { Backend } from "../backends/Backend.ts"
import { unaryAll, type UpstreamCall } from "../backends/Contract.ts"
import type { Plan } from "../config/Plan.ts"
import { RequestId } from "../domain/Ids.ts"
import type { GatewayRequest } from "../domain/Request.ts"
import * as Metrics from "../observability/Metrics.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Backends whose engines speak the `kv_transfer_params` extension (vLLM, SGLang and the simulator). */
export const supportsTransfer = (b: Backend): boolean => b.adapter.kvTransfer === true

/** The first prefill candidate with a free slot that is not cooling down, else the first. */
const pickPrefill = (prefill: ReadonlyArray<Backend>, now: number): Backend =>
  prefill.find((b) => b.slots.free > 0 && b.coolDownUntilMs <= now) ?? prefill[0]!

const prefillCall = (req: GatewayRequest, p: Backend, call: UpstreamCall): UpstreamCall => {
  const { max_completion_tokens: _m, stream_options: _s, ...rest } = call.body
  const upstreamModel = p.plan.models.get(req.model.id) ?? req.model.id
  const body = { ...rest, model: upstreamModel, stream: false, max_tokens: 1, kv_transfer_params: { do_remote_decode: true } }
  return {
    kind: call.kind,
    requestId: RequestId(`${req.id}:prefill`),
    body,
    rawBody: encoder.encode(JSON.stringify(body)),
    upstreamModel,
    stream: false,
    clientWantsUsage: false,
    maxOutputTokens: 1
  }
}

/** The `kv_transfer_params` of a prefill answer, if it carries them. */
export const transferParams = (body: Uint8Array): Readonly<Record<string, unknown>> | undefined => {
  const text = decoder.decode(body)
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof json !== "object" || json === null) return undefined
  const params = (json as Record<string, unknown>)["kv_transfer_params"]
  return typeof params === "object" && params !== null ? (params as Record<string, unknown>) : undefined
}

/** The decode leg: the client's call plus the transfer parameters. */
export const decodeCall = (call: UpstreamCall, params: Readonly<Record<string, unknown>>): UpstreamCall => {
  const body = { ...call.body, kv_transfer_params: { ...params, do_remote_prefill: true } }
  return { ...call, body, rawBody: encoder.encode(JSON.stringify(body)) }
}

/**
 * Runs the prefill leg on one of `prefill` and returns the decode leg's call (or `call`
 * unchanged when the prefill leg fails). `onPrefill` records the prefill backend's prefix blocks.
 */
export const decodeLeg = (
  req: GatewayRequest,
  prefill: ReadonlyArray<Backend>,
  call: UpstreamCall,
  plan: Plan,
  onPrefill: (backend: Backend, now: number) => void
): Effect.Effect<UpstreamCall, never, Scope.Scope> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const p = pickPrefill(prefill, now)
    const tokens = req.estimate.promptTokens + 1
    const leg = Effect.gen(function*() {
      const waited = yield* p.slots.acquire(plan.timeouts.queueMs).pipe(
        Effect.tapError((e) => Metrics.recordQueueWait(req.model.id, p.id, e.afterMs))
      )
      yield* Metrics.recordQueueWait(req.model.id, p.id, waited)
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          p.inFlightTokens += tokens
          p.stats.attempts++
          onPrefill(p, now)
        }),
        () =>
          Effect.sync(() => {
            p.inFlightTokens -= tokens
          })
      )
      const result = yield* unaryAll(p.adapter, prefillCall(req, p, call))
      const params = result.status === 200 ? transferParams(result.body) : undefined
      if (params !== undefined) p.stats.successes++
      return params
    }).pipe(Effect.scoped)
    return leg.pipe(
      Effect.catch((reason) =>
        Effect.as(
          Effect.sync(() => p.stats.recordFailure(reason._tag)),
          undefined
        )
      ),
      Effect.flatMap((params) =>
        params === undefined
          ? Effect.as(
            Effect.logWarning("prefill leg failed; the decode backend prefills locally").pipe(
              Effect.annotateLogs({ request_id: req.id, prefill: p.id })
            ),
            call
          )
          : Effect.succeed(decodeCall(call, params))
      )
    )
  })
