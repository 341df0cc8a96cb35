/**
 * Test helpers for typed calls: a JSON body decoded with the endpoint's wire schema, as the
 * pipeline's decode phase does (a body the schema refuses fails the test that built it).
 */
import { Effect } from "effect"
import type { CallKind, InferenceCall } from "../../src/api/openai/Calls.ts"
import * as Calls from "../../src/api/openai/Calls.ts"
import type { UpstreamCall } from "../../src/backends/Contract.ts"
import { RequestId } from "../../src/domain/Ids.ts"
import * as Decode from "../../src/request/Decode.ts"

export const decoded = (kind: CallKind, body: { readonly [key: string]: unknown }): InferenceCall =>
  Effect.runSync(Decode.decode(kind, body))

/** An attempt's call for `body`, as dispatch builds it (the client's own bytes forwarded). */
export const upstreamCall = (
  kind: CallKind,
  body: { readonly [key: string]: unknown },
  options: { readonly upstreamModel?: string; readonly requestId?: string; readonly maxOutputTokens?: number } = {}
): UpstreamCall => {
  const call = decoded(kind, body)
  return {
    ...call,
    requestId: RequestId(options.requestId ?? "req-test"),
    rawBody: new TextEncoder().encode(JSON.stringify(body)),
    upstreamModel: options.upstreamModel ?? "upstream-model",
    stream: Calls.isStream(call),
    clientWantsUsage: Calls.wantsUsage(call),
    // The gateway's reservation cap when the client sent none (the model's default_max_tokens).
    maxOutputTokens: options.maxOutputTokens ?? 4096
  }
}
