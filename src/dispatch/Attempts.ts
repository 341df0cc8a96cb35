/**
 * The attempt log of one request: every attempt dispatch made (or skipped) and the one that
 * committed. Dispatch is its only writer; accounting, the request log and the metrics read
 * it when the request ends. Append-only while the request runs.
 */
import type { FailureTag } from "../backends/Failure.ts"
import type { BackendId } from "../domain/Ids.ts"

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

export class AttemptLog {
  private readonly failedAttempts: Array<AttemptRecord> = []
  private committedBackend: BackendId | undefined = undefined
  private committedAt: number | undefined = undefined

  /** The attempts that failed (or were skipped), in order. */
  get failed(): ReadonlyArray<AttemptRecord> {
    return this.failedAttempts
  }

  /** The backend that served the request, once an attempt committed. */
  get backend(): BackendId | undefined {
    return this.committedBackend
  }

  /** When the attempt committed (a stream's first token, a unary answer's headers). */
  get committedAtMs(): number | undefined {
    return this.committedAt
  }

  get wastedPromptTokens(): number {
    let n = 0
    for (const a of this.failedAttempts) n += a.wastedPromptTokens
    return n
  }

  fail(record: AttemptRecord): void {
    this.failedAttempts.push(record)
  }

  commit(backend: BackendId, atMs: number): void {
    this.committedBackend = backend
    this.committedAt = atMs
  }
}
