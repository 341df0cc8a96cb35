/**
 * Anthropic Messages SSE → frames of OpenAI `chat.completion.chunk` bytes (backends.md §2.4).
 *
 * Owns the per-stream translation state: the message id, the map from Anthropic content
 * block index to OpenAI tool-call index (text blocks interleave, so the gateway keeps its
 * own tool counter), and the cumulative usage (message_start's input and cache counts,
 * message_delta's output count). Emits: a role chunk at message_start, one chunk per text,
 * thinking (as `reasoning_content`) or tool-argument delta, a finish chunk at the
 * message_delta that carries the stop reason, then at message_stop the usage chunk (only
 * when the client asked for it) and `data: [DONE]`; the `Usage` token event is always
 * emitted so the gateway can settle. `ping` and unknown events are skipped; `event: error`
 * is a `MidStreamError` keeping the Anthropic error type as its code; a stream that ends
 * before message_stop is a `MidStreamError`. Native mode (the client speaks Anthropic too):
 * every event's own bytes go out as the frame's bytes, ping and block stops included, with
 * the same typed events read from them. Plain TypeScript: it runs once per event.
 */
import type * as Usage from "../../../domain/Usage.ts"
import type { FinishReason, Frame, FrameSource, TokenEvent } from "../../Contract.ts"
import { type FailureReason, MalformedChunk, MidStreamError } from "../../Failure.ts"
import { scanned, type StreamBody } from "../../ScannedSource.ts"
import { EventTooLarge, type SseEvent, SseScanner } from "../../SseScanner.ts"
import { bytes, chatChunk, type ChunkHead, DONE, isRecord, num, sse, str, usageChunk } from "../openai/Wire.ts"
import { finishOf } from "./openai_anthropic.ts"

export interface TranslateOptions {
  /** The model name the client asked for (chunks carry it). */
  readonly model: string
  /** Unix seconds for `created`. */
  readonly created: number
  readonly clientWantsUsage: boolean
}

const skip: Frame = { bytes: undefined, events: [] }

const errorFrame = (failure: FailureReason): Frame => ({ bytes: undefined, events: [{ _tag: "Error", failure }] })

/** The translation state of one Anthropic stream. */
export class Translator {
  private head: ChunkHead
  private readonly toolIndex = new Map<number, number>()
  private tools = 0
  private input = 0
  private cacheRead = 0
  private cacheCreation = 0
  private output = 0
  private finished = false
  /** Set once message_stop was translated. */
  done = false

  constructor(private readonly options: TranslateOptions) {
    this.head = { id: "", created: options.created, model: options.model }
  }

  private usage(): Usage.Usage {
    return {
      promptTokens: this.input + this.cacheRead + this.cacheCreation,
      completionTokens: this.output,
      cachedTokens: this.cacheRead
    }
  }

  /** Cumulative counts: a field present in a later event replaces the earlier value. */
  private readUsage(raw: unknown) {
    if (!isRecord(raw)) return
    this.input = num(raw["input_tokens"]) ?? this.input
    this.cacheRead = num(raw["cache_read_input_tokens"]) ?? this.cacheRead
    this.cacheCreation = num(raw["cache_creation_input_tokens"]) ?? this.cacheCreation
    this.output = num(raw["output_tokens"]) ?? this.output
  }

  private chunk(delta: Record<string, unknown>, events: Array<TokenEvent>, finish: FinishReason | null = null): Frame {
    return { bytes: bytes(sse(chatChunk(this.head, delta, finish))), events }
  }

  /** Translates one SSE event into at most one frame. */
  event(ev: SseEvent): Frame {
    if (this.done) return skip
    let json: unknown
    try {
      json = JSON.parse(ev.data)
    } catch {
      if (ev.event === "error") return errorFrame(new MidStreamError({ message: ev.data.slice(0, 300), code: undefined }))
      return errorFrame(new MalformedChunk({ message: `invalid JSON in Anthropic event: ${ev.data.slice(0, 120)}` }))
    }
    if (!isRecord(json)) return errorFrame(new MalformedChunk({ message: "Anthropic event data is not a JSON object" }))
    const type = str(json["type"]) ?? ev.event
    switch (type) {
      case "message_start": {
        const message = isRecord(json["message"]) ? json["message"] : {}
        this.head = { ...this.head, id: str(message["id"]) ?? this.head.id }
        this.readUsage(message["usage"])
        return this.chunk({ role: "assistant", content: "" }, [])
      }
      case "content_block_start":
        return this.blockStart(json)
      case "content_block_delta":
        return this.blockDelta(json)
      case "message_delta": {
        this.readUsage(json["usage"])
        const delta = isRecord(json["delta"]) ? json["delta"] : {}
        const finish = finishOf(delta["stop_reason"])
        if (finish === undefined || this.finished) return skip
        this.finished = true
        return this.chunk({}, [{ _tag: "Finish", reason: finish }], finish)
      }
      case "message_stop": {
        this.done = true
        const usage = this.usage()
        const text = this.options.clientWantsUsage ? sse(usageChunk(this.head, "chat.completion.chunk", usage)) + DONE : DONE
        return { bytes: bytes(text), events: [{ _tag: "Usage", usage }] }
      }
      case "error": {
        const err = isRecord(json["error"]) ? json["error"] : {}
        return errorFrame(new MidStreamError({
          message: str(err["message"]) ?? "the backend reported an error mid-stream",
          code: str(err["type"])
        }))
      }
      default:
        // ping, content_block_stop and event types added after this was written.
        return skip
    }
  }

  private blockStart(json: Record<string, unknown>): Frame {
    const index = num(json["index"]) ?? 0
    const block = isRecord(json["content_block"]) ? json["content_block"] : {}
    switch (block["type"]) {
      case "text": {
        const text = str(block["text"]) ?? ""
        return text === "" ? skip : this.chunk({ content: text }, [{ _tag: "Delta", text }])
      }
      case "tool_use": {
        const tool = this.tools++
        this.toolIndex.set(index, tool)
        const id = str(block["id"]) ?? ""
        const name = str(block["name"]) ?? ""
        // The input arrives as input_json_delta fragments; a non-empty start input is sent whole.
        const input = block["input"]
        const args = isRecord(input) && Object.keys(input).length > 0 ? JSON.stringify(input) : ""
        return this.chunk(
          { tool_calls: [{ index: tool, id, type: "function", function: { name, arguments: args } }] },
          [{ _tag: "ToolCallDelta", index: tool, id, name, arguments: args }]
        )
      }
      default:
        // thinking (its text arrives as deltas), redacted_thinking, server tools: nothing to say yet.
        return skip
    }
  }

  private blockDelta(json: Record<string, unknown>): Frame {
    const delta = isRecord(json["delta"]) ? json["delta"] : {}
    switch (delta["type"]) {
      case "text_delta": {
        const text = str(delta["text"]) ?? ""
        return text === "" ? skip : this.chunk({ content: text }, [{ _tag: "Delta", text }])
      }
      case "thinking_delta": {
        const text = str(delta["thinking"]) ?? ""
        return text === "" ? skip : this.chunk({ reasoning_content: text }, [{ _tag: "Delta", text }])
      }
      case "input_json_delta": {
        const tool = this.toolIndex.get(num(json["index"]) ?? -1)
        const fragment = str(delta["partial_json"]) ?? ""
        if (tool === undefined || fragment === "") return skip
        return this.chunk(
          { tool_calls: [{ index: tool, function: { arguments: fragment } }] },
          [{ _tag: "ToolCallDelta", index: tool, id: undefined, name: undefined, arguments: fragment }]
        )
      }
      default:
        // signature_delta, citations_delta and later delta types carry nothing OpenAI shows.
        return skip
    }
  }
}

/** Translates a whole SSE byte sequence (golden tests, and the property tests' reference). */
export const translateAll = (chunks: ReadonlyArray<Uint8Array>, options: TranslateOptions): Array<Frame> => {
  const scanner = new SseScanner()
  const t = new Translator(options)
  const out: Array<Frame> = []
  for (const c of chunks) for (const ev of scanner.feed(c)) out.push(t.event(ev))
  const last = scanner.flush()
  if (last !== undefined) out.push(t.event(last))
  return out
}

/** Wraps an upstream Anthropic SSE body as a frame source of OpenAI chunks. */
export const frames = (
  status: number,
  body: StreamBody,
  options: TranslateOptions & { readonly maxEventBytes: number; readonly native?: boolean }
): FrameSource => {
  const translator = new Translator(options)
  const convert = (events: ReadonlyArray<SseEvent>): Array<Frame> => {
    const out: Array<Frame> = []
    for (const ev of events) {
      const frame = translator.event(ev)
      if (options.native === true) {
        // An error event is the gateway's to render (its failure reason ends the stream).
        const own = frame.events.some((e) => e._tag === "Error") ? undefined : ev.raw
        out.push({ bytes: own, events: frame.events })
      } else if (frame.bytes !== undefined || frame.events.length > 0) out.push(frame)
    }
    return out
  }
  return scanned({
    status,
    body,
    scanner: new SseScanner(options.maxEventBytes),
    convert,
    done: () => translator.done,
    complete: () => translator.done,
    endMarker: "message_stop",
    malformed: (e) => e instanceof EventTooLarge ? e.message : `unreadable SSE: ${String(e)}`
  })
}
