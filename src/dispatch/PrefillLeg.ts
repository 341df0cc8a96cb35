/**
 * The prefill leg of a disaggregated request (the router planned it onto a P/D pool:
 * routing/Disaggregation.ts), and the decode leg's call that follows from it.
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
import * as Calls from "../api/openai/Calls.ts"
import type { GatewayRequest } from "../admission/Request.ts"
import type { Backend } from "../backends/Backend.ts"
import { unaryAll, type UpstreamCall, withBodyFields } from "../backends/Contract.ts"
import type { Plan } from "../config/Plan.ts"
import { RequestId } from "../domain/Ids.ts"
import * as Metrics from "../observability/Metrics.ts"
import type { RoutingState } from "../routing/Placement.ts"

const decoder = new TextDecoder()

/** The first prefill candidate with a free slot that is not cooling down, else the first. */
const pickPrefill = (prefill: ReadonlyArray<Backend>, now: number): Backend =>
  prefill.find((b) => b.slots.free > 0 && b.coolDownUntilMs <= now) ?? prefill[0]!

/** The prefill leg's call: non-streaming, one token, asking the engine to keep the KV for a transfer. */
const prefillCall = (req: GatewayRequest, p: Backend, call: UpstreamCall): UpstreamCall => {
  const upstreamModel = p.plan.models.get(req.model.id) ?? req.model.id
  const leg = Calls.withFields(Calls.withoutFields(call, ["max_completion_tokens", "stream_options"]), {
    model: upstreamModel,
    stream: false,
    max_tokens: 1,
    kv_transfer_params: { do_remote_decode: true }
  })
  return {
    ...leg,
    requestId: RequestId(`${req.id}:prefill`),
    rawBody: undefined,
    upstreamModel,
    stream: false,
    clientWantsUsage: false,
    maxOutputTokens: 1
  }
}

const isRecord = (v: unknown): v is { readonly [key: string]: unknown } => typeof v === "object" && v !== null && !Array.isArray(v)

/** The `kv_transfer_params` of a prefill answer, if it carries them. */
export const transferParams = (body: Uint8Array): { readonly [key: string]: unknown } | undefined => {
  let json: unknown
  try {
    json = JSON.parse(decoder.decode(body))
  } catch {
    return undefined
  }
  const params = isRecord(json) ? json["kv_transfer_params"] : undefined
  return isRecord(params) ? params : undefined
}

/** The decode leg: the client's call plus the transfer parameters. */
export const decodeCall = (call: UpstreamCall, params: { readonly [key: string]: unknown }): UpstreamCall =>
  withBodyFields(call, { kv_transfer_params: { ...params, do_remote_prefill: true } })

/**
 * Runs the prefill leg on one of `prefill` and returns the decode leg's call (or `call`
 * unchanged when the prefill leg fails). The prefill engine's slot and in-flight tokens are
 * held for the leg only; its prefix blocks are recorded with the router's placement state.
 */
export const decodeLeg = (
  req: GatewayRequest,
  prefill: ReadonlyArray<Backend>,
  call: UpstreamCall,
  plan: Plan,
  placement: RoutingState
): Effect.Effect<UpstreamCall, never, Scope.Scope> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const p = pickPrefill(prefill, now)
    const leg = Effect.gen(function*() {
      const waited = yield* p.holdSlot(plan.timeouts.queueMs).pipe(
        Effect.tapError((e) => Metrics.recordQueueWait(req.model.id, p.id, e.afterMs))
      )
      yield* Metrics.recordQueueWait(req.model.id, p.id, waited)
      yield* p.holdTokens(req.estimate.promptTokens + 1)
      p.attempted()
      yield* placement.prefilled(req, p)
      const result = yield* unaryAll(p.adapter, prefillCall(req, p, call))
      const params = result.status === 200 ? transferParams(result.body) : undefined
      if (params !== undefined) p.succeeded(yield* Clock.currentTimeMillis)
      return params
    }).pipe(Effect.scoped)
    return leg.pipe(
      Effect.catch((reason) => Effect.as(Effect.sync(() => p.failed(reason._tag)), undefined)),
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
