/**
 * Errors of the public request itself (before admission): the client's fault, each
 * mapped to a 4xx in ErrorResponse.ts.
 */
import { Data } from "effect"

export class InvalidJson extends Data.TaggedError("InvalidJson")<{ readonly message: string }> {}

export class InvalidBody extends Data.TaggedError("InvalidBody")<{
  readonly message: string
  readonly param: string | null
}> {}

export class UnknownModel extends Data.TaggedError("UnknownModel")<{ readonly model: string }> {}

export class BodyTooLarge extends Data.TaggedError("BodyTooLarge")<{ readonly limit: number }> {}

export class UnsupportedOperation extends Data.TaggedError("UnsupportedOperation")<{ readonly message: string }> {}

export class Draining extends Data.TaggedError("Draining")<{}> {}

/** A decode-time limit (`limits.*`, `models[].max_n`) exceeded; `param` names the field. */
export class LimitExceeded extends Data.TaggedError("LimitExceeded")<{
  readonly message: string
  readonly param: string | null
  readonly code: "json_too_deep" | "too_many_json_values" | "too_many_json_keys" | "too_many_items" | "n_too_large"
}> {}

/** The body carries a field the gateway owns (api/openai/Requests.ts `GATEWAY_OWNED_FIELDS`). */
export class GatewayOwnedField extends Data.TaggedError("GatewayOwnedField")<{ readonly field: string }> {}

/** A body that is not `application/json` (a browser's form or text POST needs no preflight). */
export class UnsupportedMediaType extends Data.TaggedError("UnsupportedMediaType")<{
  readonly contentType: string | undefined
}> {}

/** The prompt plus `max_tokens` does not fit the model's `context_window` (a fallback may take it). */
export class ContextWindowExceeded extends Data.TaggedError("ContextWindowExceeded")<{ readonly message: string }> {}

export type RequestError =
  | ContextWindowExceeded
  | InvalidJson
  | InvalidBody
  | UnknownModel
  | BodyTooLarge
  | UnsupportedOperation
  | Draining
  | LimitExceeded
  | GatewayOwnedField
  | UnsupportedMediaType

/** A request policy (guardrail) refused the request: a 400 with the policy's code. */
export class PolicyRejected extends Data.TaggedError("PolicyRejected")<{
  readonly policy: string
  readonly message: string
  readonly code: string
}> {}

/** A response policy stopped a unary answer (a stream gets an error event instead). */
export class ContentBlocked extends Data.TaggedError("ContentBlocked")<{
  readonly policy: string
  readonly message: string
}> {}

/** An extension failed, died, or ran past its deadline (`extensions.timeout`). */
export class ExtensionFailed extends Data.TaggedError("ExtensionFailed")<{
  readonly extension: string
  readonly phase: "request" | "response" | "authentication"
  readonly reason: "failed" | "died" | "timeout"
}> {}
