/**
 * Properties of the inbound encoders and translators (fast-check), for any sequence of token
 * events, ended normally, by a failure, or not at all:
 *
 * Anthropic stream: message_start first and once; content-block indexes 0, 1, 2, … in order;
 * one block open at a time, every started block stopped exactly once, deltas only into the
 * open block; at most one ping; exactly one terminal event (message_stop or error), last;
 * message_delta's usage never below message_start's; the text and tool arguments that went
 * in come out, in order.
 *
 * Responses stream: sequence_number 0, 1, 2, … ; output indexes in order; every item added is
 * done exactly once, deltas only into the open item; exactly one terminal event
 * (completed / incomplete / failed), last; the same text and arguments come out.
 *
 * Round trips: an answer encoded for a client and sent back as history decodes to the same
 * chat assistant message (Anthropic message → assistant turn; Responses output → stored items
 * → previous_response_id).
 */
import { Result } from "effect"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { message } from "../../src/api/anthropic/Message.ts"
import { decode as decodeMessages } from "../../src/api/anthropic/messages_openai.ts"
import { MessageStreamEncoder } from "../../src/api/anthropic/Stream.ts"
import type { FinishReason, StreamEvent } from "../../src/api/Events.ts"
import { itemsToStore } from "../../src/api/responses/Conversation.ts"
import { response } from "../../src/api/responses/Response.ts"
import { decode as decodeResponses } from "../../src/api/responses/responses_openai.ts"
import { ResponseStreamEncoder } from "../../src/api/responses/Stream.ts"
import type { WireError } from "../../src/api/WireError.ts"
import { parseSse, type SseEvent } from "../golden/inbound/support.ts"

const finish = fc.constantFrom<FinishReason>("stop", "length", "tool_calls", "content_filter", "function_call", "error", "other")
const counts = fc.record({
  promptTokens: fc.nat({ max: 5000 }),
  completionTokens: fc.nat({ max: 5000 }),
  cachedTokens: fc.nat({ max: 5000 }),
  cacheCreationTokens: fc.nat({ max: 500 }),
  reasoningTokens: fc.nat({ max: 500 })
})

const event: fc.Arbitrary<StreamEvent> = fc.oneof(
  fc.record({ _tag: fc.constant("Delta" as const), text: fc.string({ maxLength: 6 }) }),
  fc.record({ _tag: fc.constant("Delta" as const), text: fc.string({ maxLength: 6 }), reasoning: fc.constant(true as const) }),
  fc.record({
    _tag: fc.constant("ToolCallDelta" as const),
    index: fc.nat({ max: 3 }),
    id: fc.option(fc.constantFrom("call_a", "call_b"), { nil: undefined }),
    name: fc.option(fc.constantFrom("f", "g"), { nil: undefined }),
    arguments: fc.option(fc.string({ maxLength: 5 }), { nil: undefined })
  }),
  fc.record({ _tag: fc.constant("Usage" as const), usage: counts }),
  fc.record({ _tag: fc.constant("Finish" as const), reason: finish })
)

const wireError: fc.Arbitrary<WireError> = fc.record({
  status: fc.constantFrom(400, 429, 500, 502, 503, 504),
  type: fc.constantFrom("invalid_request_error" as const, "rate_limit_error" as const, "server_error" as const, "overloaded_error" as const),
  code: fc.constant(null),
  message: fc.string({ maxLength: 20 }),
  param: fc.constant(null),
  retryAfterMs: fc.option(fc.nat({ max: 10_000 }), { nil: undefined })
})

type Ending = { readonly kind: "end" } | { readonly kind: "fail"; readonly error: WireError } | { readonly kind: "none" }
const ending: fc.Arbitrary<Ending> = fc.oneof(
  fc.constant({ kind: "end" as const }),
  wireError.map((error) => ({ kind: "fail" as const, error })),
  fc.constant({ kind: "none" as const })
)

const stream = fc.record({ events: fc.array(event, { maxLength: 30 }), ending, extra: fc.array(event, { maxLength: 3 }) })

/** The answer text and per-call arguments the events carry (up to the first interleaved call). */
const expected = (events: ReadonlyArray<StreamEvent>) => {
  let text = ""
  let reasoning = ""
  const args: Array<string> = []
  const order: Array<number> = []
  let current: number | undefined
  for (const e of events) {
    if (e._tag === "Delta" && e.text !== "") {
      if (e.reasoning === true) reasoning += e.text
      else text += e.text
      current = undefined
    } else if (e._tag === "ToolCallDelta") {
      if (current !== e.index) {
        if (order.includes(e.index)) return { text, reasoning, args, interleaved: true }
        order.push(e.index)
        args.push("")
        current = e.index
      }
      args[args.length - 1] += e.arguments ?? ""
    }
  }
  return { text, reasoning, args, interleaved: false }
}

const num = (v: unknown): number => (typeof v === "number" ? v : Number.NaN)
const rec = (v: unknown): Record<string, unknown> => (typeof v === "object" && v !== null ? { ...v } : {})

describe("Anthropic stream encoder: well-formed for any event sequence", () => {
  it("holds the event-order invariants", () => {
    fc.assert(
      fc.property(stream, ({ events, ending, extra }) => {
        const enc = new MessageStreamEncoder({ id: "msg_p", model: "m" })
        const out: Array<SseEvent> = []
        for (const e of events) out.push(...parseSse(enc.push(e)))
        if (ending.kind === "end") out.push(...parseSse(enc.end()))
        if (ending.kind === "fail") out.push(...parseSse(enc.fail(ending.error)))
        const terminated = ending.kind !== "none" || enc.done
        // Nothing after the terminal event, whatever is called next.
        if (terminated) {
          for (const e of extra) expect(enc.push(e).length).toBe(0)
          expect(enc.end().length).toBe(0)
        }
        const terminals = out.filter((e) => e.event === "message_stop" || e.event === "error")
        expect(terminals.length).toBe(terminated ? 1 : 0)
        if (terminated) expect(out[out.length - 1]).toBe(terminals[0])

        const starts = out.filter((e) => e.event === "message_start")
        if (out.length > 0 && out[0]!.event !== "error") {
          expect(out[0]!.event).toBe("message_start")
          expect(starts.length).toBe(1)
        }
        expect(out.filter((e) => e.event === "ping").length).toBeLessThanOrEqual(1)

        let open: number | undefined
        let next = 0
        const stopped = new Set<number>()
        const texts = new Map<number, string>()
        const kinds = new Map<number, string>()
        for (const e of out) {
          const index = num(e.data["index"])
          if (e.event === "content_block_start") {
            expect(open).toBeUndefined()
            expect(index).toBe(next++)
            open = index
            kinds.set(index, String(rec(e.data["content_block"])["type"]))
            texts.set(index, "")
          } else if (e.event === "content_block_delta") {
            expect(index).toBe(open)
            const d = rec(e.data["delta"])
            texts.set(index, (texts.get(index) ?? "") + String(d["text"] ?? d["thinking"] ?? d["partial_json"]))
          } else if (e.event === "content_block_stop") {
            expect(index).toBe(open)
            expect(stopped.has(index)).toBe(false)
            stopped.add(index)
            open = undefined
          }
        }
        if (terminated) expect(open).toBeUndefined()

        const want = expected(events)
        const joined = (kind: string) => [...texts].filter(([i]) => kinds.get(i) === kind).map(([, t]) => t)
        if (!want.interleaved) {
          expect(joined("text").join("")).toBe(want.text)
          expect(joined("thinking").join("")).toBe(want.reasoning)
          expect(joined("tool_use")).toEqual(want.args)
        }

        const startUsage = rec(rec(starts[0]?.data["message"])["usage"])
        const delta = out.find((e) => e.event === "message_delta")
        if (delta !== undefined) {
          const usage = rec(delta.data["usage"])
          for (const key of ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"]) {
            expect(num(usage[key])).toBeGreaterThanOrEqual(num(startUsage[key]))
          }
          expect(out[out.length - 1]!.event).toBe("message_stop")
          expect(out[out.length - 2]).toBe(delta)
        }
      }),
      { numRuns: 300 }
    )
  })
})

describe("Responses stream encoder: well-formed for any event sequence", () => {
  const head = { id: "resp_p", createdAt: 1, model: "m", echo: {} }
  it("holds the event-order invariants", () => {
    fc.assert(
      fc.property(stream, ({ events, ending, extra }) => {
        const enc = new ResponseStreamEncoder(head)
        const out: Array<SseEvent> = []
        for (const e of events) out.push(...parseSse(enc.push(e)))
        if (ending.kind === "end") out.push(...parseSse(enc.end(2)))
        if (ending.kind === "fail") out.push(...parseSse(enc.fail(ending.error)))
        const terminated = ending.kind !== "none" || enc.done
        if (terminated) {
          for (const e of extra) expect(enc.push(e).length).toBe(0)
          expect(enc.end(3).length).toBe(0)
        }
        out.forEach((e, i) => expect(e.data["sequence_number"]).toBe(i))
        const terminalTypes = new Set(["response.completed", "response.incomplete", "response.failed"])
        const terminals = out.filter((e) => terminalTypes.has(e.event))
        expect(terminals.length).toBe(terminated ? 1 : 0)
        if (terminated) expect(out[out.length - 1]).toBe(terminals[0])
        if (out.length > 0) expect(out.slice(0, 2).map((e) => e.event)).toEqual(["response.created", "response.in_progress"])

        let open: { index: number; id: string; type: string } | undefined
        let next = 0
        const done = new Set<number>()
        const texts = new Map<number, { type: string; text: string }>()
        for (const e of out) {
          const index = num(e.data["output_index"])
          if (e.event === "response.output_item.added") {
            expect(open).toBeUndefined()
            expect(index).toBe(next++)
            const item = rec(e.data["item"])
            open = { index, id: String(item["id"]), type: String(item["type"]) }
            texts.set(index, { type: open.type, text: "" })
          } else if (e.event === "response.output_item.done") {
            expect(open?.index).toBe(index)
            expect(rec(e.data["item"])["id"]).toBe(open?.id)
            expect(done.has(index)).toBe(false)
            done.add(index)
            open = undefined
          } else if (e.event.endsWith(".delta")) {
            expect(open?.index).toBe(index)
            expect(e.data["item_id"]).toBe(open?.id)
            const t = texts.get(index)
            if (t !== undefined) t.text += String(e.data["delta"])
          }
        }
        if (terminated) expect(open).toBeUndefined()
        const want = expected(events)
        if (!want.interleaved) {
          const of = (type: string) => [...texts.values()].filter((t) => t.type === type).map((t) => t.text)
          expect(of("message").join("")).toBe(want.text)
          expect(of("reasoning").join("")).toBe(want.reasoning)
          expect(of("function_call")).toEqual(want.args)
        }
        const terminal = terminals[0]
        if (terminal !== undefined) {
          const output = rec(terminal.data["response"])["output"]
          expect(Array.isArray(output) ? output.length : -1).toBe(done.size)
        }
      }),
      { numRuns: 300 }
    )
  })
})

const args = fc.dictionary(fc.string({ minLength: 1, maxLength: 4 }), fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.boolean()), { maxKeys: 3 })
const answer = fc.record({
  text: fc.string({ maxLength: 20 }),
  calls: fc.uniqueArray(fc.record({ id: fc.string({ minLength: 1, maxLength: 6 }), name: fc.string({ minLength: 1, maxLength: 6 }), args }), {
    maxLength: 3,
    selector: (c) => c.id
  })
})

const chatBody = (a: { text: string; calls: ReadonlyArray<{ id: string; name: string; args: Record<string, unknown> }> }) => ({
  choices: [{
    index: 0,
    finish_reason: a.calls.length > 0 ? "tool_calls" : "stop",
    message: {
      role: "assistant",
      content: a.text === "" ? null : a.text,
      tool_calls: a.calls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: JSON.stringify(c.args) } }))
    }
  }]
})

/** The chat assistant message an answer should decode back to. */
const assistant = (a: { text: string; calls: ReadonlyArray<{ id: string; name: string; args: Record<string, unknown> }> }) => ({
  text: a.text,
  calls: a.calls.map((c) => ({ id: c.id, name: c.name, args: c.args }))
})

const fromChat = (m: unknown) => {
  const msg = rec(m)
  const calls = Array.isArray(msg["tool_calls"]) ? msg["tool_calls"] : []
  return {
    text: typeof msg["content"] === "string" ? msg["content"] : "",
    calls: calls.map((c) => {
      const fn = rec(rec(c)["function"])
      return { id: rec(c)["id"], name: fn["name"], args: JSON.parse(String(fn["arguments"])) as unknown }
    })
  }
}

describe("round trips: an encoded answer sent back as history decodes to the same assistant message", () => {
  it("Anthropic: chat answer → message → assistant turn → chat", () => {
    fc.assert(
      fc.property(answer, (a) => {
        const msg = message(chatBody(a), { promptTokens: 1, completionTokens: 1, cachedTokens: 0 }, a.calls.length > 0 ? "tool_calls" : "stop", { id: "msg_r", model: "m" })
        const back = decodeMessages({ model: "m", max_tokens: 10, messages: [{ role: "user", content: "q" }, { role: "assistant", content: msg.content }] })
        if (!Result.isSuccess(back)) throw new Error(back.failure.message)
        const messages = back.success.body.messages
        const turn = messages[messages.length - 1]
        if (a.text === "" && a.calls.length === 0) expect(turn).toEqual({ role: "assistant", content: "" })
        else expect(fromChat(turn)).toEqual(assistant(a))
      }),
      { numRuns: 200 }
    )
  })

  it("Responses: chat answer → response output → stored items → previous_response_id → chat", () => {
    fc.assert(
      fc.property(answer, (a) => {
        const first = decodeResponses({ model: "m", input: "q" }, undefined)
        if (!Result.isSuccess(first)) throw new Error(first.failure.message)
        const res = response(chatBody(a), undefined, a.calls.length > 0 ? "tool_calls" : "stop", { id: "resp_r", createdAt: 1, model: "m", echo: {} }, 2)
        const next = decodeResponses({ model: "m", previous_response_id: "resp_r", input: "more" }, itemsToStore(first.success.items, res.output))
        if (!Result.isSuccess(next)) throw new Error(next.failure.message)
        const messages = next.success.call.body.messages
        expect(messages[0]).toEqual({ role: "user", content: "q" })
        expect(messages[messages.length - 1]).toEqual({ role: "user", content: "more" })
        const middle = messages.slice(1, -1)
        if (a.text === "" && a.calls.length === 0) expect(middle).toEqual([])
        else {
          expect(middle.length).toBe(1)
          expect(fromChat(middle[0])).toEqual(assistant(a))
        }
      }),
      { numRuns: 200 }
    )
  })
})
