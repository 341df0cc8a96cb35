/**
 * What the translating inbound encoders (Anthropic Messages, OpenAI Responses) share when
 * they re-encode a backend frame: its typed events through the API's own encoder, with the
 * generated text replaced when response policies changed it.
 *
 * Pure: no I/O. Must never: pass bytes through (passthrough is the caller's choice).
 */
import type { StreamEvent } from "../api/Events.ts"
import type { Frame } from "../backends/Contract.ts"

/** The non-empty parts as one buffer; undefined when nothing is left. */
export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array | undefined => {
  const filled = parts.filter((p) => p.length > 0)
  if (filled.length === 0) return undefined
  if (filled.length === 1) return filled[0]
  return Buffer.concat(filled)
}

/**
 * The frame's events through `push` (error events are the stream's end, not the frame's).
 * `text`, when given, replaces the frame's generated text: one delta, or none.
 */
export const encodeFrame = (
  push: (event: StreamEvent) => Uint8Array,
  frame: Frame,
  text: string | undefined
): Uint8Array | undefined => {
  const parts: Array<Uint8Array> = []
  let replaced = false
  for (const event of frame.events) {
    if (event._tag === "Error") continue
    if (event._tag === "Delta" && text !== undefined) {
      if (!replaced && text !== "") parts.push(push({ _tag: "Delta", text }))
      replaced = true
      continue
    }
    parts.push(push(event))
  }
  return concat(parts)
}
