/**
 * Typed token events → Anthropic Messages SSE, in Anthropic's event order:
 *
 *   message_start (usage so far) → for each content block: content_block_start,
 *   content_block_delta… (text_delta / thinking_delta / input_json_delta), content_block_stop
 *   → message_delta (stop_reason and the cumulative usage) → message_stop
 *
 * with one `ping` after the first content_block_start, as Anthropic sends it. One block is
 * open at a time: answer text, reasoning text (a `thinking` block) and each tool call (a
 * `tool_use` block per tool-call index) open their own block, closing the one before, so text
 * after a tool call opens a new text block. A failure ends the stream with `event: error`
 * (after closing the open block); nothing is emitted after message_stop or an error.
 *
 * Usage: message_start carries zeros (an OpenAI-compatible engine reports usage only at the
 * end, and an estimate could exceed the truth and make the counts go down); message_delta
 * carries input, cache and output counts, each the largest seen, so they never decrease.
 *
 * A fragment for a tool call whose block was already closed (an engine interleaving parallel
 * tool calls) cannot be expressed in Anthropic's one-open-block format: the encoder ends the
 * stream with an api_error rather than corrupt or drop the call.
 *
 * A plain stateful object on the hot path (one call per token event); no I/O, no clocks.
 */
import type { FinishReason, StreamEvent } from "../Events.ts"
import { bytes, namedEvent } from "../Inbound.ts"
import type { WireError } from "../WireError.ts"
import { errorEvent } from "./Errors.ts"
import { type MessageHead, stopReason } from "./Message.ts"

type Open =
  | { readonly kind: "text" | "thinking"; readonly index: number }
  | { readonly kind: "tool"; readonly index: number; readonly tool: number }

const EMPTY = new Uint8Array(0)

export class MessageStreamEncoder {
  private started = false
  private finished = false
  private pinged = false
  private nextIndex = 0
  private open: Open | undefined
  /** Tool-call indexes whose block has been opened. */
  private readonly tools = new Set<number>()
  private finish: FinishReason | undefined
  private input = 0
  private cacheRead = 0
  private cacheCreation = 0
  private output = 0

  constructor(private readonly head: MessageHead) {}

  /** Whether a terminal event (message_stop or error) has been emitted. */
  get done(): boolean {
    return this.finished
  }

  /** message_start; called implicitly by the first event. */
  start(): Uint8Array {
    if (this.started || this.finished) return EMPTY
    return bytes(this.startText())
  }

  push(event: StreamEvent): Uint8Array {
    if (this.finished) return EMPTY
    let out = this.startText()
    switch (event._tag) {
      case "Delta":
        if (event.text !== "") out += this.text(event.text, event.reasoning === true ? "thinking" : "text")
        break
      case "ToolCallDelta":
        out += this.toolCall(event.index, event.id, event.name, event.arguments ?? "")
        break
      case "Usage": {
        const u = event.usage
        this.input = Math.max(this.input, u.promptTokens - u.cachedTokens - (u.cacheCreationTokens ?? 0))
        this.cacheRead = Math.max(this.cacheRead, u.cachedTokens)
        this.cacheCreation = Math.max(this.cacheCreation, u.cacheCreationTokens ?? 0)
        this.output = Math.max(this.output, u.completionTokens)
        break
      }
      case "Finish":
        this.finish = event.reason
        break
    }
    return out === "" ? EMPTY : bytes(out)
  }

  /** message_delta and message_stop: the stream ended normally. */
  end(): Uint8Array {
    if (this.finished) return EMPTY
    let out = this.startText() + this.close()
    const reason = stopReason(this.finish, this.tools.size > 0, undefined)
    out += namedEvent("message_delta", {
      type: "message_delta",
      delta: { stop_reason: reason, stop_sequence: null },
      usage: this.usage()
    })
    out += namedEvent("message_stop", { type: "message_stop" })
    this.finished = true
    return bytes(out)
  }

  /** The `event: error` that ends a stream after a failure. */
  fail(error: WireError): Uint8Array {
    if (this.finished) return EMPTY
    const out = this.close() + errorEvent(error)
    this.finished = true
    return bytes(out)
  }

  private usage() {
    return {
      input_tokens: this.input,
      cache_creation_input_tokens: this.cacheCreation,
      cache_read_input_tokens: this.cacheRead,
      output_tokens: this.output
    }
  }

  private startText(): string {
    if (this.started) return ""
    this.started = true
    return namedEvent("message_start", {
      type: "message_start",
      message: {
        id: this.head.id,
        type: "message",
        role: "assistant",
        model: this.head.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: this.usage()
      }
    })
  }

  private openBlock(open: Open, block: Readonly<Record<string, unknown>>): string {
    this.open = open
    this.nextIndex++
    let out = namedEvent("content_block_start", { type: "content_block_start", index: open.index, content_block: block })
    if (!this.pinged) {
      this.pinged = true
      out += namedEvent("ping", { type: "ping" })
    }
    return out
  }

  private close(): string {
    if (this.open === undefined) return ""
    const index = this.open.index
    this.open = undefined
    return namedEvent("content_block_stop", { type: "content_block_stop", index })
  }

  private text(text: string, kind: "text" | "thinking"): string {
    let out = ""
    let index = this.open?.kind === kind ? this.open.index : undefined
    if (index === undefined) {
      index = this.nextIndex
      out += this.close()
      out += this.openBlock(
        { kind, index },
        kind === "text" ? { type: "text", text: "" } : { type: "thinking", thinking: "", signature: "" }
      )
    }
    const delta = kind === "text" ? { type: "text_delta", text } : { type: "thinking_delta", thinking: text }
    return out + namedEvent("content_block_delta", { type: "content_block_delta", index, delta })
  }

  private toolCall(tool: number, id: string | undefined, name: string | undefined, args: string): string {
    let out = ""
    const current = this.open
    let index = current !== undefined && current.kind === "tool" && current.tool === tool ? current.index : undefined
    if (index === undefined) {
      if (this.tools.has(tool)) return this.interleaved()
      this.tools.add(tool)
      index = this.nextIndex
      out += this.close()
      out += this.openBlock({ kind: "tool", index, tool }, {
        type: "tool_use",
        id: id ?? `toolu_${this.head.id}_${tool}`,
        name: name ?? "",
        input: {}
      })
    }
    if (args === "") return out
    return out + namedEvent("content_block_delta", {
      type: "content_block_delta",
      index,
      delta: { type: "input_json_delta", partial_json: args }
    })
  }

  private interleaved(): string {
    const out = this.close() + errorEvent({
      status: 502,
      type: "server_error",
      code: "interleaved_tool_calls",
      message: "the backend interleaved the fragments of parallel tool calls, which an Anthropic stream cannot carry",
      param: null,
      retryAfterMs: undefined
    })
    this.finished = true
    return out
  }
}
