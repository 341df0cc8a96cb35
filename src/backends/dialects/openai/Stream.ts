/**
 * OpenAI-compatible SSE → frames. Same dialect as the client, so each event's original
 * bytes are forwarded untouched; the JSON is read on the side for token events.
 *
 * Owns the end-of-stream rules: `[DONE]` or a finish reason ends a stream cleanly; a
 * stream that stops without either is a `MidStreamError`; an event with a top-level
 * `error` key is a `MidStreamError` even after HTTP 200 (vLLM does this); bad JSON or an
 * event past the size bound is a `MalformedChunk`.
 */
import * as Usage from "../../../domain/Usage.ts"
import { type Frame, finishReason, type FrameSource, type TokenEvent } from "../../Contract.ts"
import { type FailureReason, MalformedChunk, MidStreamError } from "../../Failure.ts"
import { scanned, type StreamBody } from "../../ScannedSource.ts"
import { EventTooLarge, type SseEvent, SseScanner } from "../../SseScanner.ts"

const asString = (v: unknown): string | undefined => typeof v === "string" ? v : undefined

/** Reads the token events of one parsed chunk (chat or legacy completion). */
export const chunkEvents = (chunk: Record<string, unknown>): Array<TokenEvent> => {
  const events: Array<TokenEvent> = []
  const choices = chunk["choices"]
  if (Array.isArray(choices)) {
    for (const choice of choices) {
      if (typeof choice !== "object" || choice === null) continue
      const c = choice as Record<string, unknown>
      const delta = c["delta"]
      if (typeof delta === "object" && delta !== null) {
        const d = delta as Record<string, unknown>
        const text = asString(d["content"]) ?? ""
        const reasoning = asString(d["reasoning_content"]) ?? asString(d["reasoning"]) ?? ""
        if (text !== "" || reasoning !== "") events.push({ _tag: "Delta", text: reasoning + text })
        const calls = d["tool_calls"]
        if (Array.isArray(calls)) {
          for (const call of calls) {
            if (typeof call !== "object" || call === null) continue
            const tc = call as Record<string, unknown>
            const fn = (typeof tc["function"] === "object" && tc["function"] !== null
              ? tc["function"]
              : {}) as Record<string, unknown>
            events.push({
              _tag: "ToolCallDelta",
              index: typeof tc["index"] === "number" ? tc["index"] : 0,
              id: asString(tc["id"]),
              name: asString(fn["name"]),
              arguments: asString(fn["arguments"])
            })
          }
        }
      } else {
        const text = asString(c["text"])
        if (text !== undefined && text !== "") events.push({ _tag: "Delta", text })
      }
      const finish = finishReason(c["finish_reason"])
      if (finish !== undefined) events.push({ _tag: "Finish", reason: finish })
    }
  }
  const usage = Usage.fromOpenAI(chunk["usage"])
  if (usage !== undefined) events.push({ _tag: "Usage", usage })
  return events
}

/** `code` is the sibling `error_type` of TGI's `{"error": "text", "error_type": ...}`. */
const errorEvent = (err: unknown, code?: string): FailureReason => {
  if (typeof err === "object" && err !== null) {
    const e = err as Record<string, unknown>
    return new MidStreamError({
      message: asString(e["message"]) ?? JSON.stringify(err).slice(0, 300),
      code: asString(e["code"]) ?? asString(e["type"])
    })
  }
  return new MidStreamError({ message: String(err), code })
}

/** Interprets one SSE event. `done` is set for `[DONE]`. */
export const toFrame = (
  ev: SseEvent,
  clientWantsUsage: boolean
): { readonly frame: Frame; readonly done: boolean } => {
  if (ev.data === "[DONE]") return { frame: { bytes: ev.raw, events: [] }, done: true }
  if (ev.event === "error") {
    let parsed: unknown = ev.data
    try {
      parsed = JSON.parse(ev.data)
    } catch {
      // keep the text
    }
    const inner = typeof parsed === "object" && parsed !== null && "error" in parsed
      ? (parsed as { error: unknown }).error
      : parsed
    return { frame: { bytes: undefined, events: [{ _tag: "Error", failure: errorEvent(inner) }] }, done: false }
  }
  let json: unknown
  try {
    json = JSON.parse(ev.data)
  } catch {
    return {
      frame: {
        bytes: undefined,
        events: [{ _tag: "Error", failure: new MalformedChunk({ message: `invalid JSON in SSE data: ${ev.data.slice(0, 120)}` }) }]
      },
      done: false
    }
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return {
      frame: { bytes: undefined, events: [{ _tag: "Error", failure: new MalformedChunk({ message: "SSE data is not a JSON object" }) }] },
      done: false
    }
  }
  const chunk = json as Record<string, unknown>
  if (chunk["error"] !== undefined && chunk["error"] !== null) {
    const failure = errorEvent(chunk["error"], asString(chunk["error_type"]))
    return { frame: { bytes: undefined, events: [{ _tag: "Error", failure }] }, done: false }
  }
  const events = chunkEvents(chunk)
  // The usage-only chunk (choices: []) exists because the gateway asked for it: hide it
  // from a client that did not.
  const usageOnly = !clientWantsUsage && Array.isArray(chunk["choices"]) && chunk["choices"].length === 0 &&
    events.length > 0 && events.every((e) => e._tag === "Usage")
  return { frame: { bytes: usageOnly ? undefined : ev.raw, events }, done: false }
}

/** Wraps an upstream SSE body as a frame source. */
export const frames = (
  status: number,
  body: StreamBody,
  options: { readonly clientWantsUsage: boolean; readonly maxEventBytes: number }
): FrameSource => {
  let done = false
  let finished = false
  const convert = (events: ReadonlyArray<SseEvent>): Array<Frame> => {
    const out: Array<Frame> = []
    for (const ev of events) {
      if (done) break
      const r = toFrame(ev, options.clientWantsUsage)
      if (r.done) done = true
      for (const e of r.frame.events) if (e._tag === "Finish") finished = true
      out.push(r.frame)
    }
    return out
  }
  return scanned({
    status,
    body,
    scanner: new SseScanner(options.maxEventBytes),
    convert,
    done: () => done,
    complete: () => done || finished,
    endMarker: "[DONE]",
    malformed: (e) => e instanceof EventTooLarge ? e.message : `unreadable SSE: ${String(e)}`
  })
}
