/**
 * The per-request tracker: what happened while the request ran (attempts, first token,
 * usage, finish, failure after commit, outcome). Owned by exactly one request fiber and
 * written only by its phases; the settlement finalizer reads it once, at scope close.
 */
import type { FinishReason, TokenEvent } from "../backends/Contract.ts"
import type { FailureReason, FailureTag } from "../backends/Failure.ts"
import type { BackendId } from "../domain/Ids.ts"
import type { RequestOutcome } from "../domain/Outcome.ts"
import type { Usage } from "../domain/Usage.ts"

export interface AttemptRecord {
  readonly backend: BackendId
  readonly reason: FailureTag
  readonly message: string
  /** Prompt tokens the backend may have processed before failing (attempt waste). */
  readonly wastedPromptTokens: number
  /** Completion tokens it generated for nothing (a unary answer that failed after 2xx), when known. */
  readonly wastedCompletionTokens: number
  /** The attempt failed after the backend had answered 2xx (a unary answer, not retried by default). */
  readonly afterResponse: boolean
}

export class RequestTracker {
  backend: BackendId | undefined = undefined
  readonly attempts: Array<AttemptRecord> = []
  committedAtMs: number | undefined = undefined
  firstTokenAtMs: number | undefined = undefined
  lastTokenAtMs: number | undefined = undefined
  maxGapMs = 0
  reported: Usage | undefined = undefined
  deltaChunks = 0
  deltaChars = 0
  toolCallDeltas = 0
  finish: FinishReason | undefined = undefined
  /** A failure after the first token (the stream ended with an error event). */
  failureAfterCommit: FailureReason | undefined = undefined
  outcome: RequestOutcome | undefined = undefined
  status = 0
  errorType: string | undefined = undefined

  constructor(readonly startedAtMs: number) {}

  /** Records the token events of one frame at time `now`. Hot path: no allocation. */
  observe(events: ReadonlyArray<TokenEvent>, now: number): void {
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!
      switch (e._tag) {
        case "Delta":
        case "ToolCallDelta": {
          if (e._tag === "Delta") {
            this.deltaChunks++
            this.deltaChars += e.text.length
          } else {
            this.toolCallDeltas++
            this.deltaChars += e.arguments?.length ?? 0
          }
          if (this.firstTokenAtMs === undefined) this.firstTokenAtMs = now
          else if (this.lastTokenAtMs !== undefined && now - this.lastTokenAtMs > this.maxGapMs) {
            this.maxGapMs = now - this.lastTokenAtMs
          }
          this.lastTokenAtMs = now
          break
        }
        case "Usage":
          this.reported = e.usage
          break
        case "Finish":
          this.finish = e.reason
          break
        case "Error":
          break
      }
    }
  }

  /**
   * Completion tokens seen on the wire, for when the backend did not report usage (a cut
   * stream). Engines stream one chunk per decode step, so a chunk is at least one token:
   * this errs low (in the tenant's favour) only when a step emits several tokens.
   */
  get countedCompletionTokens(): number {
    return this.deltaChunks + this.toolCallDeltas
  }

  get ttftMs(): number | undefined {
    return this.firstTokenAtMs === undefined ? undefined : this.firstTokenAtMs - this.startedAtMs
  }
}
