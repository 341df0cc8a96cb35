/**
 * Ollama NDJSON (`/api/chat`, `/api/generate`) → frames of OpenAI chunk bytes (§2.5).
 *
 * Owns the per-stream translation state: whether the role was sent, the tool-call
 * counter (Ollama sends each call whole, arguments as an object: it becomes one
 * `tool_calls` delta with the full JSON string), and the end. The `done: true` line
 * becomes the finish chunk, then the usage chunk (only when the client asked) and
 * `data: [DONE]`; the `Usage` token event is always emitted. A line `{"error": ...}` is a
 * `MidStreamError`; a line that is not a JSON object is a `MalformedChunk`; a stream that
 * ends without `done: true` is a `MidStreamError`. Plain TypeScript: it runs once per line.
 */
import type { Frame, FrameSource, TokenEvent } from "../../Contract.ts"
import { type FailureReason, MalformedChunk, MidStreamError } from "../../Failure.ts"
import { scanned, type StreamBody } from "../../ScannedSource.ts"
import {
  bytes,
  chatChunk,
  type ChunkHead,
  completionChunk,
  DONE,
  isRecord,
  parseObject,
  sse,
  str,
  usageChunk
} from "../openai/Wire.ts"
import { LineTooLong, NdjsonScanner } from "./NdjsonScanner.ts"
import { finishOf, toolCallId, toolCallsOf, usageOf } from "./openai_ollama.ts"

export interface TranslateOptions {
  readonly kind: "chat" | "completion"
  /** The model name the client asked for (chunks carry it). */
  readonly model: string
  /** Unix seconds for `created`. */
  readonly created: number
  /** The gateway's request id: the response id and the tool-call ids derive from it. */
  readonly requestId: string
  readonly clientWantsUsage: boolean
}

const errorFrame = (failure: FailureReason): Frame => ({ bytes: undefined, events: [{ _tag: "Error", failure }] })

export class Translator {
  private readonly head: ChunkHead
  private sentRole = false
  private tools = 0
  /** Set once the `done: true` line was translated. */
  done = false

  constructor(private readonly options: TranslateOptions) {
    this.head = {
      id: options.kind === "chat" ? `chatcmpl-${options.requestId}` : `cmpl-${options.requestId}`,
      created: options.created,
      model: options.model
    }
  }

  /** Translates one NDJSON line into zero, one or two frames. */
  line(text: string): Array<Frame> {
    if (this.done) return []
    const json = parseObject(text)
    if (json === undefined) return [errorFrame(new MalformedChunk({ message: `invalid NDJSON line: ${text.slice(0, 120)}` }))]
    const error = json["error"]
    if (error !== undefined && error !== null) {
      const message = str(error) ?? (isRecord(error) ? str(error["message"]) : undefined) ?? JSON.stringify(error)
      return [errorFrame(new MidStreamError({ message, code: isRecord(error) ? str(error["type"]) : undefined }))]
    }
    const out: Array<Frame> = []
    const content = this.options.kind === "chat" ? this.chatContent(json) : this.completionContent(json)
    if (content !== undefined) out.push(content)
    if (json["done"] === true) out.push(this.end(json))
    return out
  }

  private chatContent(json: Record<string, unknown>): Frame | undefined {
    const message = isRecord(json["message"]) ? json["message"] : {}
    const delta: Record<string, unknown> = {}
    const events: Array<TokenEvent> = []
    if (!this.sentRole) delta["role"] = "assistant"
    const thinking = str(message["thinking"]) ?? ""
    if (thinking !== "") {
      delta["reasoning_content"] = thinking
      events.push({ _tag: "Delta", text: thinking })
    }
    const text = str(message["content"]) ?? ""
    if (text !== "" || !this.sentRole) delta["content"] = text
    if (text !== "") events.push({ _tag: "Delta", text })
    const calls = toolCallsOf(message, toolCallId(this.options.requestId), this.tools)
    if (calls.length > 0) {
      delta["tool_calls"] = calls.map((c) => {
        const index = this.tools++
        events.push({ _tag: "ToolCallDelta", index, id: c.id, name: c.name, arguments: c.arguments })
        return { index, id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } }
      })
    }
    // The final line usually carries an empty message: nothing to say then.
    if (events.length === 0 && (this.sentRole || json["done"] === true)) return undefined
    this.sentRole = true
    return { bytes: bytes(sse(chatChunk(this.head, delta, null))), events }
  }

  private completionContent(json: Record<string, unknown>): Frame | undefined {
    const text = str(json["response"]) ?? ""
    if (text === "") return undefined
    return { bytes: bytes(sse(completionChunk(this.head, text, null))), events: [{ _tag: "Delta", text }] }
  }

  private end(json: Record<string, unknown>): Frame {
    this.done = true
    const finish = finishOf(json["done_reason"], this.tools > 0)
    const events: Array<TokenEvent> = [{ _tag: "Finish", reason: finish }]
    const chat = this.options.kind === "chat"
    let text = sse(chat ? chatChunk(this.head, {}, finish) : completionChunk(this.head, "", finish))
    const usage = usageOf(json)
    if (usage !== undefined) {
      events.push({ _tag: "Usage", usage })
      if (this.options.clientWantsUsage) {
        text += sse(usageChunk(this.head, chat ? "chat.completion.chunk" : "text_completion", usage))
      }
    }
    return { bytes: bytes(text + DONE), events }
  }
}

/** Translates a whole NDJSON byte sequence (golden tests, and the property tests' reference). */
export const translateAll = (chunks: ReadonlyArray<Uint8Array>, options: TranslateOptions): Array<Frame> => {
  const scanner = new NdjsonScanner()
  const t = new Translator(options)
  const out: Array<Frame> = []
  for (const c of chunks) for (const line of scanner.feed(c)) out.push(...t.line(line))
  const last = scanner.flush()
  if (last !== undefined) out.push(...t.line(last))
  return out
}

/** Wraps an upstream Ollama NDJSON body as a frame source of OpenAI chunks. */
export const frames = (
  status: number,
  body: StreamBody,
  options: TranslateOptions & { readonly maxLineBytes: number }
): FrameSource => {
  const translator = new Translator(options)
  return scanned({
    status,
    body,
    scanner: new NdjsonScanner(options.maxLineBytes),
    convert: (lines) => lines.flatMap((line) => translator.line(line)),
    done: () => translator.done,
    complete: () => translator.done,
    endMarker: "done: true",
    malformed: (e) => e instanceof LineTooLong ? e.message : `unreadable NDJSON: ${String(e)}`
  })
}
