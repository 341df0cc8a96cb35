/**
 * What dispatch can end with when no stream was committed: one non-retryable reason from
 * a backend (the client's own fault, surfaced as is), or every candidate failed.
 */
import { Data } from "effect"
import type { FailureReason } from "../backends/Failure.ts"
import type { AttemptRecord } from "./Attempts.ts"
import type { BackendId, ModelId } from "../domain/Ids.ts"

/** A backend failed in a way another backend would not fix (e.g. the prompt is too long). */
export class BackendFailed extends Data.TaggedError("BackendFailed")<{
  readonly backend: BackendId
  readonly reason: FailureReason
}> {}

/** Every candidate failed before the first token (or the attempt/retry budget ran out). */
export class BackendsExhausted extends Data.TaggedError("BackendsExhausted")<{
  readonly model: ModelId
  readonly attempts: ReadonlyArray<AttemptRecord>
  /** Why no further attempt was made. */
  readonly stoppedBy: "candidates" | "max_attempts" | "retry_budget"
  /** The soonest any backend said it could take work again, if one said so. */
  readonly retryAfterMs: number | undefined
}> {}
