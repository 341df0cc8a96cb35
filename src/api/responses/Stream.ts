/**
 * Typed token events → OpenAI Responses API SSE (`event: <type>` + `data: <json>`), each
 * event with a `sequence_number` one above the last, in the documented order:
 *
 *   response.created → response.in_progress → per output item:
 *     message:       output_item.added → content_part.added → output_text.delta… →
 *                    output_text.done → content_part.done → output_item.done
 *     reasoning:     output_item.added → content_part.added (reasoning_text) →
 *                    reasoning_text.delta… → reasoning_text.done → content_part.done → output_item.done
 *     function call: output_item.added → function_call_arguments.delta… →
 *                    function_call_arguments.done → output_item.done
 *   → response.completed, or response.incomplete (length or content-filter finish), or
 *     response.failed (a failure: the open item is closed as incomplete first).
 *
 * One item is open at a time (answer text, reasoning text, each tool-call index), so text
 * after a tool call opens a new message item. Usage counts are the largest seen. A fragment
 * for a tool call whose item was already closed (an engine interleaving parallel calls) ends
 * the response as failed rather than corrupting or dropping the call. Nothing is emitted
 * after the terminal event. No `[DONE]`: the Responses API does not send one.
 *
 * A plain stateful object on the hot path (one call per token event); no I/O, and no clock
 * reads: `end` and `fail` take the completion time.
 */
import type { Usage } from "../../domain/Usage.ts"
import type { FinishReason, StreamEvent } from "../Events.ts"
import { bytes, namedEvent } from "../Inbound.ts"
import type { WireError } from "../WireError.ts"
import {
  envelope,
  functionCallItem,
  type Item,
  itemId,
  messageItem,
  reasoningItem,
  type ResponseHead,
  statusOf,
  textPart,
  usageJson
} from "./Response.ts"

type Open =
  | { readonly kind: "message" | "reasoning"; readonly index: number; readonly id: string; text: string }
  | {
    readonly kind: "call"
    readonly index: number
    readonly id: string
    readonly tool: number
    readonly callId: string
    readonly name: string
    args: string
  }

type ItemStatus = "completed" | "incomplete"

const EMPTY = new Uint8Array(0)

export class ResponseStreamEncoder {
  private sequence = 0
  private started = false
  private finished = false
  private open: Open | undefined
  private readonly output: Array<Item> = []
  private readonly tools = new Set<number>()
  private finish: FinishReason | undefined
  private usage: Usage = { promptTokens: 0, completionTokens: 0, cachedTokens: 0, reasoningTokens: 0 }

  constructor(private readonly head: ResponseHead) {}

  /** Whether the terminal event has been emitted. */
  get done(): boolean {
    return this.finished
  }

  /** response.created and response.in_progress; called implicitly by the first event. */
  start(): Uint8Array {
    if (this.started || this.finished) return EMPTY
    return bytes(this.startText())
  }

  push(event: StreamEvent): Uint8Array {
    if (this.finished) return EMPTY
    let out = this.startText()
    switch (event._tag) {
      case "Delta":
        if (event.text !== "") out += this.text(event.text, event.reasoning === true ? "reasoning" : "message")
        break
      case "ToolCallDelta":
        out += this.toolCall(event.index, event.id, event.name, event.arguments ?? "")
        break
      case "Usage": {
        const u = event.usage
        this.usage = {
          promptTokens: Math.max(this.usage.promptTokens, u.promptTokens),
          completionTokens: Math.max(this.usage.completionTokens, u.completionTokens),
          cachedTokens: Math.max(this.usage.cachedTokens, u.cachedTokens),
          reasoningTokens: Math.max(this.usage.reasoningTokens ?? 0, u.reasoningTokens ?? 0)
        }
        break
      }
      case "Finish":
        this.finish = event.reason
        break
    }
    return out === "" ? EMPTY : bytes(out)
  }

  /** The terminal response.completed / response.incomplete; `now` is unix seconds. */
  end(now: number): Uint8Array {
    if (this.finished) return EMPTY
    const { status, incomplete } = statusOf(this.finish)
    let out = this.startText() + this.close(status === "completed" ? "completed" : "incomplete")
    const response = envelope(this.head, status, this.output, {
      usage: usageJson(this.usage),
      incomplete,
      completedAt: status === "completed" ? now : null
    })
    out += this.event(status === "completed" ? "response.completed" : "response.incomplete", { response })
    this.finished = true
    return bytes(out)
  }

  /** response.failed after a failure (the open item closed as incomplete). */
  fail(error: WireError): Uint8Array {
    if (this.finished) return EMPTY
    const out = this.startText() + this.failText(error)
    return bytes(out)
  }

  private failText(error: WireError): string {
    let out = this.close("incomplete")
    const response = envelope(this.head, "failed", this.output, {
      usage: usageJson(this.usage),
      error: { code: error.status === 429 ? "rate_limit_exceeded" : "server_error", message: error.message }
    })
    out += this.event("response.failed", { response })
    this.finished = true
    return out
  }

  private event(type: string, fields: Readonly<Record<string, unknown>>): string {
    return namedEvent(type, { type, sequence_number: this.sequence++, ...fields })
  }

  private startText(): string {
    if (this.started) return ""
    this.started = true
    const response = envelope(this.head, "in_progress", [])
    return this.event("response.created", { response }) + this.event("response.in_progress", { response })
  }

  private text(text: string, kind: "message" | "reasoning"): string {
    let out = ""
    let open = this.open
    if (open === undefined || open.kind !== kind) {
      out += this.close("completed")
      const index = this.output.length
      const id = itemId(kind === "message" ? "msg" : "rs", this.head, index)
      open = { kind, index, id, text: "" }
      this.open = open
      const item = kind === "message" ? messageItem(id, [], "in_progress") : reasoningItem(id, "", "in_progress")
      out += this.event("response.output_item.added", { output_index: index, item })
      out += this.event("response.content_part.added", {
        item_id: id,
        output_index: index,
        content_index: 0,
        part: kind === "message" ? textPart("") : { type: "reasoning_text", text: "" }
      })
    }
    open.text += text
    const at = { item_id: open.id, output_index: open.index, content_index: 0 }
    return out + (kind === "message"
      ? this.event("response.output_text.delta", { ...at, delta: text, logprobs: [] })
      : this.event("response.reasoning_text.delta", { ...at, delta: text }))
  }

  private toolCall(tool: number, id: string | undefined, name: string | undefined, args: string): string {
    let out = ""
    let open = this.open
    if (open === undefined || open.kind !== "call" || open.tool !== tool) {
      if (this.tools.has(tool)) {
        return this.failText({
          status: 502,
          type: "server_error",
          code: "interleaved_tool_calls",
          message: "the backend interleaved the fragments of parallel tool calls",
          param: null,
          retryAfterMs: undefined
        })
      }
      this.tools.add(tool)
      out += this.close("completed")
      const index = this.output.length
      const itemKey = itemId("fc", this.head, index)
      open = { kind: "call", index, id: itemKey, tool, callId: id ?? `call_${itemKey}`, name: name ?? "", args: "" }
      this.open = open
      out += this.event("response.output_item.added", {
        output_index: index,
        item: functionCallItem(itemKey, { callId: open.callId, name: open.name, arguments: "" }, "in_progress")
      })
    }
    if (args === "") return out
    open.args += args
    return out + this.event("response.function_call_arguments.delta", { item_id: open.id, output_index: open.index, delta: args })
  }

  /** Closes the open item, appending its final form to the output. */
  private close(status: ItemStatus): string {
    const open = this.open
    if (open === undefined) return ""
    this.open = undefined
    const at = { item_id: open.id, output_index: open.index }
    let out = ""
    let item: Item
    switch (open.kind) {
      case "message": {
        const part = textPart(open.text)
        out += this.event("response.output_text.done", { ...at, content_index: 0, text: open.text, logprobs: [] })
        out += this.event("response.content_part.done", { ...at, content_index: 0, part })
        item = messageItem(open.id, [part], status)
        break
      }
      case "reasoning":
        out += this.event("response.reasoning_text.done", { ...at, content_index: 0, text: open.text })
        out += this.event("response.content_part.done", { ...at, content_index: 0, part: { type: "reasoning_text", text: open.text } })
        item = reasoningItem(open.id, open.text, status)
        break
      case "call":
        out += this.event("response.function_call_arguments.done", { ...at, name: open.name, arguments: open.args })
        item = functionCallItem(open.id, { callId: open.callId, name: open.name, arguments: open.args }, status)
        break
    }
    this.output.push(item)
    return out + this.event("response.output_item.done", { output_index: open.index, item })
  }
}
