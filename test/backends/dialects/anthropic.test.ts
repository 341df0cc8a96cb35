/**
 * Anthropic dialect: the SSE translator under arbitrary chunk boundaries (property), the
 * stream's end and malformed-input rules, the request rejections, and HTTP error mapping.
 */
import fc from "fast-check"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import * as AnthropicErrors from "../../../src/backends/dialects/anthropic/Errors.ts"
import * as Translate from "../../../src/backends/dialects/anthropic/openai_anthropic.ts"
import * as AnthropicStream from "../../../src/backends/dialects/anthropic/Stream.ts"
import { Untranslatable } from "../../../src/backends/dialects/openai/Wire.ts"
import { bodyOf, callOf, drain, flatten, splitAt } from "./support.ts"

const fixtures = join(import.meta.dirname, "../../golden/anthropic")
const fixture = (name: string) => new Uint8Array(readFileSync(join(fixtures, `${name}.sse`)))
const options = { model: "claude", created: 1_700_000_000, clientWantsUsage: true }

const sourceOf = (chunks: ReadonlyArray<Uint8Array>, maxEventBytes = 1024 * 1024) =>
  AnthropicStream.frames(200, bodyOf(chunks), { ...options, maxEventBytes })

describe("anthropic stream", () => {
  for (const name of ["text-cache", "tool-use", "thinking-no-usage", "overloaded-midstream"]) {
    it(`${name}: any chunking gives the same bytes and events`, async () => {
      const bytes = fixture(name)
      const reference = flatten(AnthropicStream.translateAll([bytes], options))
      await fc.assert(
        fc.asyncProperty(fc.array(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 40 }), async (cuts) => {
          const chunks = splitAt(bytes, cuts)
          expect(flatten(AnthropicStream.translateAll(chunks, options))).toEqual(reference)
          const { frames } = await drain(sourceOf(chunks))
          expect(flatten(frames)).toEqual(reference)
        }),
        { numRuns: 60 }
      )
    })
  }

  it("ends cleanly after message_stop", async () => {
    const { frames, failure } = await drain(sourceOf([fixture("text-cache")]))
    expect(failure).toBeUndefined()
    expect(flatten(frames).text.endsWith("data: [DONE]\n\n")).toBe(true)
  })

  it("a stream cut before message_stop is a MidStreamError", async () => {
    const bytes = fixture("text-cache")
    const cut = Buffer.from(bytes).indexOf("event: message_delta")
    const { failure } = await drain(sourceOf([bytes.subarray(0, cut)]))
    expect(failure?._tag).toBe("MidStreamError")
  })

  it("an error event keeps Anthropic's error type as the code", () => {
    const frames = AnthropicStream.translateAll([fixture("overloaded-midstream")], options)
    const error = frames.flatMap((f) => f.events).find((e) => e._tag === "Error")
    expect(error?._tag === "Error" && error.failure._tag === "MidStreamError" && error.failure.code).toBe("overloaded_error")
  })

  it("bad JSON is a MalformedChunk; an oversized event fails the read", async () => {
    const bad = new TextEncoder().encode("event: content_block_delta\ndata: {\"type\":\n\n")
    const frames = AnthropicStream.translateAll([bad], options)
    expect(frames[0]?.events[0]?._tag === "Error" && frames[0].events[0].failure._tag).toBe("MalformedChunk")
    const huge = new TextEncoder().encode(`event: ping\ndata: ${"x".repeat(5000)}`)
    const { failure } = await drain(sourceOf([huge], 1024))
    expect(failure?._tag).toBe("MalformedChunk")
  })

  it("hides the usage chunk from a client that did not ask, but always emits the Usage event", () => {
    const frames = AnthropicStream.translateAll([fixture("text-cache")], { ...options, clientWantsUsage: false })
    const { text, events } = flatten(frames)
    expect(text).not.toContain("\"usage\"")
    expect(events).toContainEqual({ _tag: "Usage", usage: { promptTokens: 2173, completionTokens: 15, cachedTokens: 2048 } })
  })
})

describe("anthropic request translation", () => {
  const reject = (body: Record<string, unknown>) => () => Translate.requestBody(callOf("chat", { model: "m", ...body }))
  const user = [{ role: "user", content: "hi" }]

  it("rejects what Anthropic cannot express", () => {
    expect(reject({ messages: user, n: 2 })).toThrow(Untranslatable)
    expect(reject({ messages: user, response_format: { type: "json_object" } })).toThrow(Untranslatable)
    expect(reject({ messages: [{ role: "function", name: "f", content: "x" }] })).toThrow(Untranslatable)
    expect(reject({ messages: [{ role: "tool", content: "x" }] })).toThrow(/tool_call_id/)
    expect(reject({
      messages: [{ role: "assistant", tool_calls: [{ id: "a", type: "function", function: { name: "f", arguments: "{bad" } }] }]
    })).toThrow(/not valid JSON/)
    expect(reject({ messages: [{ role: "user", content: [{ type: "input_audio", input_audio: {} }] }] })).toThrow(/input_audio/)
  })

  it("sends the reserved output cap as max_tokens when the client gave none, and the upstream model", () => {
    const out = JSON.parse(Translate.requestBody(callOf("chat", { model: "c", messages: user }, { upstreamModel: "claude-x" })))
    expect(out).toMatchObject({ model: "claude-x", max_tokens: 4096 })
    expect(out.stream).toBeUndefined()
    const capped = JSON.parse(Translate.requestBody({ ...callOf("chat", { model: "c", messages: user }), maxOutputTokens: 300 }))
    expect(capped.max_tokens).toBe(300)
    const own = JSON.parse(Translate.requestBody({ ...callOf("chat", { model: "c", messages: user, max_tokens: 77 }), maxOutputTokens: 300 }))
    expect(own.max_tokens).toBe(77)
  })
})

describe("anthropic HTTP errors", () => {
  const body = (type: string, message: string) => JSON.stringify({ type: "error", error: { type, message }, request_id: "req_1" })
  const map = (status: number, type: string, message = "m", retryAfter?: string) =>
    AnthropicErrors.fromResponse(status, retryAfter, body(type, message), 0)

  it.each([
    [400, "invalid_request_error", "InvalidRequest"],
    [401, "authentication_error", "Unauthorized"],
    [402, "billing_error", "Unauthorized"],
    [403, "permission_error", "Unauthorized"],
    [404, "not_found_error", "InvalidRequest"],
    [413, "request_too_large", "InvalidRequest"],
    [429, "rate_limit_error", "Overloaded"],
    [500, "api_error", "UpstreamError"],
    [504, "timeout_error", "Unavailable"],
    [529, "overloaded_error", "Overloaded"]
  ])("%i %s → %s", (status, type, tag) => {
    const failure = map(status, type)
    expect(failure._tag).toBe(tag)
    if (failure._tag === "InvalidRequest") {
      expect(failure.status).toBe(status)
      expect(failure.code).toBe(type)
      expect(failure.isRetryable).toBe(false)
      expect(failure.tripsBreaker).toBe(false)
    }
  })

  it("429 keeps retry-after; a prompt too long is a context-length error", () => {
    const limited = map(429, "rate_limit_error", "slow down", "7")
    expect(limited._tag === "Overloaded" && limited.retryAfterMs).toBe(7000)
    expect(map(400, "invalid_request_error", "prompt is too long: 210000 tokens > 199999 maximum")._tag).toBe(
      "ContextLengthExceeded"
    )
  })
})
