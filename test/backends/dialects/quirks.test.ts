/**
 * Quirks of engines that use the OpenAI adapter (dialects "tgi" and "llamacpp"): their error
 * bodies and their stream endings, as the OpenAI Errors/Stream files read them.
 *
 * TGI and `stream_options`: TGI's chat route ignores unknown fields (serde default) and
 * only recent versions honour `include_usage` (huggingface/text-generation-inference#2531),
 * so the gateway keeps asking for it; without the usage chunk the request settles on the
 * gateway's estimate, as for any stream that reports no usage.
 */
import { describe, expect, it } from "vitest"
import * as Errors from "../../../src/backends/dialects/openai/Errors.ts"
import * as OpenAIStream from "../../../src/backends/dialects/openai/Stream.ts"
import type { SseEvent } from "../../../src/backends/SseScanner.ts"

const event = (data: unknown): SseEvent => {
  const text = typeof data === "string" ? data : JSON.stringify(data)
  return { raw: Buffer.from(`data: ${text}\n\n`), event: undefined, data: text }
}

describe("TGI", () => {
  it.each([
    [429, { error: "Model is overloaded", error_type: "overloaded" }, "Overloaded"],
    [422, { error: "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`", error_type: "validation" }, "ContextLengthExceeded"],
    [422, { error: "Input validation error: `temperature` must be strictly positive", error_type: "validation" }, "InvalidRequest"],
    [424, { error: "Request failed during generation: Server error: CUDA out of memory", error_type: "generation" }, "UpstreamError"],
    [500, { error: "Incomplete generation", error_type: "incomplete_generation" }, "UpstreamError"]
  ])("HTTP %i %j → %s", (status, body, tag) => {
    const failure = Errors.fromResponse(status, undefined, JSON.stringify(body), 0)
    expect(failure._tag).toBe(tag)
    if (failure._tag === "InvalidRequest") expect(failure.code).toBe("validation")
  })

  it("a mid-stream {error, error_type} event is a MidStreamError keeping the type", () => {
    const { frame } = OpenAIStream.toFrame(event({ error: "Request failed during generation", error_type: "generation" }), true)
    const e = frame.events[0]
    expect(frame.bytes).toBeUndefined()
    expect(e?._tag === "Error" && e.failure._tag === "MidStreamError" && e.failure.code).toBe("generation")
  })
})

describe("llama.cpp", () => {
  it("a loading model (503 unavailable_error) is Unavailable; a full context is ContextLengthExceeded", () => {
    const loading = { error: { code: 503, message: "Loading model", type: "unavailable_error" } }
    expect(Errors.fromResponse(503, undefined, JSON.stringify(loading), 0)._tag).toBe("Unavailable")
    const full = {
      error: {
        code: 400,
        message: "the request exceeds the available context size, try increasing it",
        type: "exceed_context_size_error",
        n_prompt_tokens: 5000,
        n_ctx: 4096
      }
    }
    expect(Errors.fromResponse(400, undefined, JSON.stringify(full), 0)._tag).toBe("ContextLengthExceeded")
  })

  it("the final chunk with timings (stop_type limit → finish_reason length) yields Finish length and usage", () => {
    const last = {
      choices: [{ finish_reason: "length", index: 0, delta: {} }],
      created: 1_700_000_000,
      id: "chatcmpl-abc",
      model: "gpt-3.5-turbo",
      system_fingerprint: "b5000-abc",
      object: "chat.completion.chunk",
      usage: { completion_tokens: 16, prompt_tokens: 8, total_tokens: 24 },
      timings: { prompt_n: 8, prompt_ms: 12.5, predicted_n: 16, predicted_ms: 210.3, predicted_per_second: 76.1 }
    }
    const { frame } = OpenAIStream.toFrame(event(last), false)
    expect(frame.events).toEqual([
      { _tag: "Finish", reason: "length" },
      { _tag: "Usage", usage: { promptTokens: 8, completionTokens: 16, cachedTokens: 0 } }
    ])
    // Not a usage-only chunk (it has a choice): forwarded to the client as it came.
    expect(frame.bytes).toBeDefined()
  })
})
