/**
 * The tally of one request's answer: what the committed backend produced, as the stream
 * phase (or the unary answer) observed it — first and last token times, chunks, the usage
 * the backend reported, the finish reason, and the failure that ended a committed stream.
 * The relay (dispatch/Relay.ts) and the unary answer are its only writers; accounting reads
 * it once, at settlement, and the request log and metrics at the end.
 *
 * Plain fields on a class: observed once per upstream frame, no allocation.
 */
import type { FinishReason, TokenEvent } from "../backends/Contract.ts"
import type { FailureReason } from "../backends/Failure.ts"
import type { Usage } from "../domain/Usage.ts"

export class Tally {
  firstTokenAtMs: number | undefined = undefined
  lastTokenAtMs: number | undefined = undefined
  reported: Usage | undefined = undefined
  deltaChunks = 0
  toolCallDeltas = 0
  finish: FinishReason | undefined = undefined
  /** A failure after the first token: the stream ended with an error event. */
  failure: FailureReason | undefined = undefined
  /** The answer was cut short, or served, for a reason worth a log line (e.g. `Truncated`). */
  note: string | undefined = undefined

  constructor(readonly startedAtMs: number) {}

  /** Records the token events of one frame at time `now`. */
  observe(events: ReadonlyArray<TokenEvent>, now: number): void {
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!
      switch (e._tag) {
        case "Delta":
        case "ToolCallDelta": {
          if (e._tag === "Delta") this.deltaChunks++
          else this.toolCallDeltas++
          if (this.firstTokenAtMs === undefined) this.firstTokenAtMs = now
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

  /** A unary answer: its usage and finish, produced at `now`. */
  answered(usage: Usage | undefined, finish: FinishReason | undefined, now: number): void {
    this.firstTokenAtMs = now
    this.lastTokenAtMs = now
    this.reported = usage
    this.finish = finish
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

  /** Mean gap between tokens of a stream with at least two chunks. */
  get interTokenMs(): number | undefined {
    const n = this.deltaChunks + this.toolCallDeltas
    const first = this.firstTokenAtMs
    const last = this.lastTokenAtMs
    return first !== undefined && last !== undefined && n > 1 ? (last - first) / (n - 1) : undefined
  }
}
