/**
 * The closed set of request outcomes. Used as a metric label and in the
 * per-request log line, so it must stay a small closed union: never a free string.
 */

export type RequestOutcome =
  /** The backend finished the response normally. */
  | "completed"
  /** The response was cut after the first token (mid-stream failure): accounted as partial. */
  | "partial"
  /** The client went away before the end; the backend was aborted. */
  | "client_aborted"
  /** Rejected before dispatch: bad input, unknown model, budget, rate limit. */
  | "rejected"
  /** Every candidate failed before the first token. */
  | "failed"
  /** A defect in the gateway (opaque 500). */
  | "error"
  /**
   * Admitted, then the gateway process died before the request was settled (kill -9, crash,
   * power loss): settled at the next start from the journal's admission entry.
   */
  | "interrupted"

export const RequestOutcomes: ReadonlyArray<RequestOutcome> = [
  "completed",
  "partial",
  "client_aborted",
  "rejected",
  "failed",
  "error",
  "interrupted"
]
