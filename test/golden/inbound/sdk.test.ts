/**
 * The inbound encoders' bytes read back by the official SDKs' own parsers: the Anthropic SDK's
 * `MessageStream` accumulation and error classes, and the openai SDK's Responses stream
 * (`responses.stream().finalResponse()`, its strict event accumulator) and errors. Each SDK is
 * given a `fetch` that answers with the encoder's bytes, so this checks event shapes and order
 * as the clients read them (a golden file alone would freeze a shape mistake in).
 *
 * For every stream fixture that ends normally, what the SDK reconstructs must equal what the
 * unary encoder makes of the same answer: the stream and unary paths agree.
 */
import Anthropic from "@anthropic-ai/sdk"
import OpenAI from "openai"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { errorAnswer as anthropicErrorAnswer } from "../../../src/api/anthropic/Errors.ts"
import { message } from "../../../src/api/anthropic/Message.ts"
import { MessageStreamEncoder } from "../../../src/api/anthropic/Stream.ts"
import type { FinishReason, StreamEvent } from "../../../src/api/Events.ts"
import { errorAnswer as responsesErrorAnswer } from "../../../src/api/responses/Errors.ts"
import { response } from "../../../src/api/responses/Response.ts"
import { ResponseStreamEncoder } from "../../../src/api/responses/Stream.ts"
import type { Usage } from "../../../src/domain/Usage.ts"
import { CANONICAL_ERRORS, root, run, type Step, steps } from "./support.ts"

const fixtures = readdirSync(join(root, "anthropic")).filter((f) => f.endsWith(".events.json")).map((f) => f.slice(0, -12)).sort()

const answering = (body: string, status = 200, headers: Record<string, string> = { "content-type": "text/event-stream" }) =>
  (): Promise<Response> => Promise.resolve(new Response(body, { status, headers }))

const anthropic = (body: string, status?: number, headers?: Record<string, string>) =>
  new Anthropic({ apiKey: "test", baseURL: "http://sdk.invalid", maxRetries: 0, fetch: answering(body, status, headers) })

const openai = (body: string, status?: number, headers?: Record<string, string>) =>
  new OpenAI({ apiKey: "test", baseURL: "http://sdk.invalid/v1", maxRetries: 0, fetch: answering(body, status, headers) })

/** The chat completion a backend would have answered unary for the same events. */
const unaryOf = (fixture: ReadonlyArray<Step>) => {
  let text = ""
  let reasoning = ""
  const calls: Array<{ id: string; type: "function"; function: { name: string; arguments: string } }> = []
  const byIndex = new Map<number, number>()
  let usage: Usage | undefined
  let finish: FinishReason | undefined
  for (const step of fixture) {
    if (!("event" in step)) continue
    const e: StreamEvent = step.event
    if (e._tag === "Delta") {
      if (e.reasoning === true) reasoning += e.text
      else text += e.text
    } else if (e._tag === "ToolCallDelta") {
      let at = byIndex.get(e.index)
      if (at === undefined) {
        at = calls.length
        byIndex.set(e.index, at)
        calls.push({ id: e.id ?? "", type: "function", function: { name: e.name ?? "", arguments: "" } })
      }
      calls[at]!.function.arguments += e.arguments ?? ""
    } else if (e._tag === "Usage") usage = e.usage
    else finish = e.reason
  }
  const msg: Record<string, unknown> = { role: "assistant", content: text === "" ? null : text }
  if (reasoning !== "") msg["reasoning_content"] = reasoning
  if (calls.length > 0) msg["tool_calls"] = calls
  return { body: { choices: [{ index: 0, message: msg, finish_reason: finish ?? null }] }, usage, finish }
}

/**
 * A stream keeps the order of text and tool calls; a unary body has one text and a list of
 * calls. Where text follows a tool call, the two are compared by content: all text joined,
 * the calls in order.
 */
const ORDER_ONLY = new Set(["text-then-tool"])
const byContent = (blocks: ReadonlyArray<unknown>) => {
  let text = ""
  const calls: Array<unknown> = []
  for (const b of blocks) {
    if (typeof b !== "object" || b === null) continue
    const block: Record<string, unknown> = { ...b }
    if (block["type"] === "text") text += String(block["text"])
    else if (block["type"] === "message" && Array.isArray(block["content"])) {
      for (const p of block["content"]) if (typeof p === "object" && p !== null && "text" in p) text += String(p.text)
    } else {
      delete block["id"]
      delete block["parsed_arguments"]
      calls.push(block)
    }
  }
  return { text, calls }
}

const endsNormally = (fixture: ReadonlyArray<Step>) => fixture.some((s) => "end" in s)
const failure = (fixture: ReadonlyArray<Step>) => fixture.flatMap((s) => ("fail" in s ? [s.fail] : []))[0]

describe("Anthropic SDK reads the Messages stream encoder's bytes", () => {
  const HEAD = { id: "msg_sdk", model: "claude-sonnet" }
  for (const name of fixtures) {
    const fixture = steps(`anthropic/${name}.events.json`)
    it(name, async () => {
      const { text } = run(new MessageStreamEncoder(HEAD), fixture)
      const stream = anthropic(text).messages.stream({ model: "claude-sonnet", max_tokens: 100, messages: [{ role: "user", content: "hi" }] })
      const fail = failure(fixture)
      if (fail !== undefined || name === "interleaved-tools") {
        const error = await stream.finalMessage().then(() => undefined, (e: unknown) => e)
        expect(error).toBeInstanceOf(Anthropic.APIError)
        return
      }
      expect(endsNormally(fixture)).toBe(true)
      const final = await stream.finalMessage()
      const { body, usage, finish } = unaryOf(fixture)
      const { parsed_output: _parsed, ...reconstructed } = final
      const unary = message(body, usage, finish, HEAD)
      if (ORDER_ONLY.has(name)) {
        expect(byContent(reconstructed.content)).toEqual(byContent(unary.content))
        expect({ ...reconstructed, content: [] }).toEqual({ ...unary, content: [] })
      } else {
        expect(reconstructed).toEqual(unary)
      }
    })
  }

  it("a unary message is read as the SDK's Message", async () => {
    const HEAD2 = { id: "msg_unary", model: "claude-sonnet" }
    const body = message(
      { choices: [{ message: { role: "assistant", content: "Hi.", tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{\"a\":1}" } }] }, finish_reason: "tool_calls" }] },
      { promptTokens: 10, completionTokens: 4, cachedTokens: 2 },
      "tool_calls",
      HEAD2
    )
    const got = await anthropic(JSON.stringify(body), 200, { "content-type": "application/json" }).messages.create({
      model: "claude-sonnet",
      max_tokens: 10,
      messages: [{ role: "user", content: "hi" }]
    })
    expect(got.content).toEqual([{ type: "text", text: "Hi." }, { type: "tool_use", id: "c1", name: "f", input: { a: 1 } }])
    expect(got.stop_reason).toBe("tool_use")
    expect(got.usage.cache_read_input_tokens).toBe(2)
  })

  for (const error of CANONICAL_ERRORS) {
    it(`error ${error.status} ${error.type} → the SDK's error class with the Anthropic type`, async () => {
      const answer = anthropicErrorAnswer(error, "req-sdk")
      const thrown = await anthropic(answer.body, answer.status, { ...answer.headers })
        .messages.create({ model: "claude-sonnet", max_tokens: 10, messages: [{ role: "user", content: "hi" }] })
        .then(() => undefined, (e: unknown) => e)
      expect(thrown).toBeInstanceOf(Anthropic.APIError)
      if (!(thrown instanceof Anthropic.APIError)) return
      expect(thrown.status).toBe(answer.status)
      expect(thrown.type).toBe(JSON.parse(answer.body).error.type)
      if (error.type === "overloaded_error") expect(thrown).toBeInstanceOf(Anthropic.InternalServerError)
      if (answer.status === 529) expect(thrown.constructor.name).toBe("OverloadedError")
    })
  }
})

describe("openai SDK reads the Responses stream encoder's bytes", () => {
  const HEAD = {
    id: "resp_sdk",
    createdAt: 1_700_000_000,
    model: "gpt-x",
    echo: { instructions: null, metadata: {}, parallel_tool_calls: true, temperature: null, tool_choice: "auto", tools: [], top_p: null }
  }
  for (const name of fixtures) {
    const fixture = steps(`responses/${name}.events.json`)
    it(name, async () => {
      const encoder = new ResponseStreamEncoder(HEAD)
      const { text } = run({ push: (e) => encoder.push(e), end: () => encoder.end(1_700_000_002), fail: (e) => encoder.fail(e) }, fixture)
      const stream = openai(text).responses.stream({ model: "gpt-x", input: "hi" })
      const final = await stream.finalResponse()
      const fail = failure(fixture)
      if (fail !== undefined || name === "interleaved-tools") {
        expect(final.status).toBe("failed")
        expect(final.error?.message).toBe(fail?.message ?? "the backend interleaved the fragments of parallel tool calls")
        return
      }
      const { body, usage, finish } = unaryOf(fixture)
      const unary = response(body, usage, finish, HEAD, 1_700_000_002)
      expect(final.status).toBe(unary.status)
      expect(final.usage).toEqual(unary.usage)
      expect(final.incomplete_details).toEqual(unary.incomplete_details)
      // The SDK adds parsed fields to the items it hands out; the wire items are what is compared.
      const strip = (items: ReadonlyArray<unknown>) => JSON.parse(JSON.stringify(items, (k, v: unknown) => (k === "parsed" || k === "parsed_arguments" ? undefined : v))) as unknown
      if (ORDER_ONLY.has(name)) expect(byContent(final.output)).toEqual(byContent(unary.output))
      else expect(strip(final.output)).toEqual(strip(unary.output))
    })
  }

  it("a unary response is read as the SDK's Response, with output_text", async () => {
    const body = response(
      { choices: [{ message: { role: "assistant", content: "Hello." }, finish_reason: "stop" }] },
      { promptTokens: 5, completionTokens: 2, cachedTokens: 1, reasoningTokens: 0 },
      "stop",
      HEAD,
      1_700_000_001
    )
    const got = await openai(JSON.stringify(body), 200, { "content-type": "application/json" }).responses.create({ model: "gpt-x", input: "hi" })
    expect(got.output_text).toBe("Hello.")
    expect(got.usage?.input_tokens_details.cached_tokens).toBe(1)
  })

  for (const error of CANONICAL_ERRORS) {
    it(`error ${error.status} ${error.type} → the SDK's APIError with the envelope`, async () => {
      const answer = responsesErrorAnswer(error)
      const thrown = await openai(answer.body, answer.status, { ...answer.headers })
        .responses.create({ model: "gpt-x", input: "hi" })
        .then(() => undefined, (e: unknown) => e)
      expect(thrown).toBeInstanceOf(OpenAI.APIError)
      if (!(thrown instanceof OpenAI.APIError)) return
      expect(thrown.status).toBe(error.status)
      expect(thrown.type).toBe(error.type)
      expect(thrown.code).toBe(error.code)
      expect(thrown.param).toBe(error.param)
    })
  }
})
