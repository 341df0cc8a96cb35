/**
 * The typed token events of a streamed answer, as every inbound stream encoder reads them
 * (ARCHITECTURE.md §4). The backend contract (backends/Contract.ts) produces the same shapes;
 * it will re-export these so there is one definition. Failures are not events here: an
 * encoder receives the canonical wire error (WireError.ts) on its own path.
 *
 * Values only: no I/O, no clocks.
 */
import type { Usage as UsageCounts } from "../domain/Usage.ts"

export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter" | "function_call" | "error" | "other"

/**
 * Generated text. `reasoning` marks text from the model's reasoning channel (an engine's
 * `reasoning_content`, an Anthropic thinking block); absent means answer text.
 */
export interface Delta {
  readonly _tag: "Delta"
  readonly text: string
  readonly reasoning?: boolean
}

/** A piece of one tool call; `index` names the call, the first piece carries id and name. */
export interface ToolCallDelta {
  readonly _tag: "ToolCallDelta"
  readonly index: number
  readonly id: string | undefined
  readonly name: string | undefined
  readonly arguments: string | undefined
}

/** Cumulative usage so far (a later event supersedes an earlier one). */
export interface Usage {
  readonly _tag: "Usage"
  readonly usage: UsageCounts
}

export interface Finish {
  readonly _tag: "Finish"
  readonly reason: FinishReason
}

export type StreamEvent = Delta | ToolCallDelta | Usage | Finish
