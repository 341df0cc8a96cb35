/**
 * What an extension implements: request policies (guardrails and transforms of the decoded
 * call, before admission), response policies (filters over the generated text, safe across
 * chunk boundaries) and authenticators (who a request is from). Registries.ts holds them by
 * name; the pipeline (request/Pipeline.ts) runs them inside the request's scope, each call
 * under a deadline, so an extension that fails, dies, hangs or is interrupted never leaks a
 * resource or settles a reservation twice (docs/EXTENDING.md states the guarantees).
 *
 * Contracts only: no behaviour here.
 */
import type { Effect } from "effect"
import type { InferenceCall } from "../api/openai/Calls.ts"
import type { ModelId, RequestId } from "../domain/Ids.ts"
import type { Identity } from "../domain/Identity.ts"

/** What every policy may read about the request it runs for. */
export interface PolicyContext {
  readonly requestId: RequestId
  readonly identity: Identity
  /** The model the call resolved to (after alias resolution). */
  readonly model: ModelId
  /** The request's headers, names in lower case. */
  readonly headers: Readonly<Record<string, string | undefined>>
}

export type RequestVerdict =
  /** Go on with the call as it is. */
  | { readonly _tag: "Pass" }
  /** Go on with this call instead (e.g. masked text); later policies see the new one. */
  | { readonly _tag: "Rewrite"; readonly call: InferenceCall }
  /** Refuse the request: a 400 with `code` (default `request_blocked`) and this message. */
  | { readonly _tag: "Reject"; readonly message: string; readonly code?: string | undefined }

export const pass: RequestVerdict = { _tag: "Pass" }
export const rewrite = (call: InferenceCall): RequestVerdict => ({ _tag: "Rewrite", call })
export const reject = (message: string, code?: string): RequestVerdict => ({ _tag: "Reject", message, code })

/** A request guardrail or transform: runs after decode, before the tokens are estimated and reserved. */
export interface RequestPolicy {
  readonly name: string
  readonly apply: (call: InferenceCall, ctx: PolicyContext) => Effect.Effect<RequestVerdict>
}

/** One step of a text filter: text to emit now (possibly empty: held back), or stop the response. */
export type FilterStep =
  | { readonly _tag: "Emit"; readonly text: string }
  | { readonly _tag: "Block"; readonly message: string }

export const emit = (text: string): FilterStep => ({ _tag: "Emit", text })
export const block = (message: string): FilterStep => ({ _tag: "Block", message })

/**
 * The state of one response's filter. The generated text arrives in order, cut anywhere
 * (mid-word, mid-term); `push` may hold text back until it can decide (a term split across
 * chunks), and `end` releases what is held when the generation ends. A `Block` ends the
 * response: a stream gets an error event, a unary answer a 400 `content_blocked`.
 */
export interface TextFilter {
  readonly push: (text: string) => Effect.Effect<FilterStep>
  readonly end: Effect.Effect<FilterStep>
}

/** A response policy: builds the filter state of one response. */
export interface ResponsePolicy {
  readonly name: string
  readonly start: (ctx: PolicyContext) => Effect.Effect<TextFilter>
}

/** What an authenticator sees of the request. */
export interface Credentials {
  /** Headers, names in lower case (`authorization`, `x-api-key`, ...). */
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly remoteAddress: string | undefined
}

/** Why a request was not authenticated (401 in the envelope; never says which part was wrong). */
export interface AuthRejection {
  readonly _tag: "AuthRejection"
  readonly message: string
  /** The authenticator could not decide (its store did not answer): 503, not 401. */
  readonly unavailable?: boolean | undefined
}

/**
 * An authenticator: an identity when it recognises the request's credentials, `undefined`
 * when they are not its kind (the next authenticator tries), or a rejection when they are
 * its kind but not valid.
 */
export interface Authenticator {
  readonly name: string
  readonly authenticate: (credentials: Credentials) => Effect.Effect<Identity | undefined, AuthRejection>
  /**
   * The authenticator bounds its own waits (store lookups, hashing) by `extensions.timeout`,
   * failing with an `unavailable` rejection when one runs out, and answers a credential it
   * already knows without suspending: the chain then does not race it (a fiber per request).
   * Without it (the default), the chain bounds every call.
   */
  readonly boundsItself?: boolean
}
