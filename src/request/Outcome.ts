/**
 * The outcome of a request, derived in one place from how it ended: whether it was
 * admitted, what its serve part produced (a reply, a typed error, a defect), whether its
 * scope was interrupted (the client left, or shutdown), and whether a committed stream
 * ended with a failure. Accounting, the request log line and the metrics all read the
 * outcome from here; nothing else decides it. Pure.
 */
import type { RequestOutcome } from "../domain/Outcome.ts"

/** How the part of the pipeline that builds the response ended. */
export type Served =
  /** A response was produced (unary body, or the head of a stream). */
  | { readonly _tag: "Replied" }
  /** A typed gateway error became an error response (bad input, limits, every backend failed, ...). */
  | { readonly _tag: "Refused" }
  /** A defect became an opaque 500. */
  | { readonly _tag: "Defect" }
  /** Interrupted before it produced anything. */
  | { readonly _tag: "Pending" }

export interface OutcomeFacts {
  readonly admitted: boolean
  readonly served: Served
  /** The request scope closed by interruption (client disconnect, deadline, shutdown). */
  readonly interrupted: boolean
  /** A committed stream ended with an error event (after the first byte). */
  readonly failedAfterCommit: boolean
}

export const derive = (f: OutcomeFacts): RequestOutcome => {
  // A stream that had already ended badly stays partial whoever closed the scope.
  if (f.failedAfterCommit) return "partial"
  if (f.interrupted) return "client_aborted"
  switch (f.served._tag) {
    case "Replied":
      return "completed"
    case "Refused":
      return f.admitted ? "failed" : "rejected"
    case "Defect":
      return "error"
    case "Pending":
      // Not interrupted and nothing produced cannot happen once the scope has closed; be safe.
      return "error"
  }
}
