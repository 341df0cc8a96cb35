/**
 * The gateway computes a prompt's token ids exactly as the simulated engine does (the precise prefix index
 * only matches if both sides hash the same ids), and bounds that work on hostile input. Also the NDJSON
 * line feeder of the KV-event subscription.
 */
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import type { InferenceCall } from "../../src/api/openai/Calls.ts"
import * as KvTokens from "../../src/admission/KvTokens.ts"
import { KvBlockIndex } from "../../src/backends/KvBlockIndex.ts"
import { LineFeeder, MAX_LINE } from "../../src/backends/KvEvents.ts"
import { chatPromptTokens, completionPromptTokens } from "../../src/simulator/tokens.ts"

const ids = (call: InferenceCall, max = 100_000) => Effect.runPromise(KvTokens.promptTokenIds(call, max))
const chat = (body: Record<string, unknown>): InferenceCall => ({ kind: "chat", body: { model: "m", ...body } } as never)

describe("KvTokens: prompt token ids as the engine sees them", () => {
  it("chat with string content, content parts, tool calls and tools: the simulator's ids", async () => {
    const image = { type: "image_url", image_url: { url: "http://x/y.png" } }
    const toolCalls = [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }]
    const messages = [
      { role: "system", content: "You are terse." },
      { role: "user", content: [{ type: "text", text: "Look: " }, image] },
      { role: "assistant", content: null, tool_calls: toolCalls },
      { role: "tool", content: "42", tool_call_id: "c1" }
    ]
    const tools = [{ type: "function", function: { name: "f", parameters: { type: "object" } } }]
    const got = await ids(chat({ messages, tools }))
    const sim = chatPromptTokens(
      [
        { role: "system", content: "You are terse." },
        { role: "user", content: "Look: " + JSON.stringify(image) },
        { role: "assistant", content: JSON.stringify(toolCalls) },
        { role: "tool", content: "42" }
      ],
      JSON.stringify(tools)
    )
    expect([...got!]).toEqual([...sim])
  })

  it("completions: text and token-id prompts", async () => {
    const text = await ids({ kind: "completion", body: { model: "m", prompt: "Once upon a time" } } as never)
    expect([...text!]).toEqual([...completionPromptTokens("Once upon a time")])
    const tokens = await ids({ kind: "completion", body: { model: "m", prompt: [[1, 2, 3]] } } as never)
    expect([...tokens!]).toEqual([...completionPromptTokens([1, 2, 3])])
  })

  it("is bounded: at most maxTokens ids (a prefix of the full ids); none for a long run BPE would be slow on", async () => {
    const long = "word ".repeat(5000)
    const full = chatPromptTokens([{ role: "user", content: long }])
    const capped = await ids(chat({ messages: [{ role: "user", content: long }] }), 256)
    expect(capped!.length).toBe(256)
    expect([...capped!]).toEqual([...full.subarray(0, 256)])
    const hostile = await ids(chat({ messages: [{ role: "user", content: "x".repeat(200_000) }] }), 256)
    expect(hostile).toBeUndefined()
    expect(await ids({ kind: "embedding", body: { model: "m", input: "hi" } } as never)).toBeUndefined()
  })

  it("keeps long texts encoded (a shared system prompt is tokenized once), within its bound", async () => {
    const system = "A long shared system prompt about rivers and engines. ".repeat(40)
    const first = await ids(chat({ messages: [{ role: "system", content: system }, { role: "user", content: "one" }] }))
    const texts = KvTokens.cacheSize().texts
    const second = await ids(chat({ messages: [{ role: "system", content: system }, { role: "user", content: "two" }] }))
    expect(KvTokens.cacheSize().texts).toBe(texts)
    expect([...second!]).toEqual([...chatPromptTokens([{ role: "system", content: system }, { role: "user", content: "two" }])])
    expect(first!.length).toBe(second!.length)
    expect(KvTokens.cacheSize().tokens).toBeLessThanOrEqual(KvTokens.CACHE_TOKENS)
  })
})

describe("LineFeeder", () => {
  const batch = (seq: number, hash: number) =>
    JSON.stringify({ seq, ts: 1, events: [{ type: "BlockStored", block_hashes: [hash], parent_block_hash: null, token_ids: [], block_size: 16, lora_id: null }] }) + "\n"

  it("joins lines split across chunks, skips and counts undecodable ones, refuses an over-long line", () => {
    const index = new KvBlockIndex(100)
    index.connected("e")
    const feeder = new LineFeeder(index)
    const text = batch(0, 11) + "not json\n" + batch(1, 12)
    const bytes = Buffer.from(text)
    for (let i = 0; i < bytes.length; i += 7) expect(feeder.push(bytes.subarray(i, i + 7))).toBe(true)
    expect(index.match([11])).toBe(1)
    expect(index.match([12])).toBe(1)
    expect(feeder.rejected).toBe(1)
    expect(index.batches).toBe(2)
    const huge = Buffer.alloc(MAX_LINE + 10, 0x61)
    expect(feeder.push(huge)).toBe(false)
  })
})
