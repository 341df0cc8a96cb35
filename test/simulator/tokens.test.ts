/**
 * Tokens and output planning: exact pseudo-text token counts, the chat-template approximation, max_tokens /
 * sim_output_tokens rules, deterministic tool arguments.
 */
import { describe, expect, it } from "vitest"
import { DEFAULT_MAX_TOKENS, NATURAL_MAX, NATURAL_MIN, naturalLength, planOutput } from "../../src/simulator/outputs.ts"
import { chatPromptTokens, completionPromptTokens, encodeText, pseudoText, repetitionLoop } from "../../src/simulator/tokens.ts"

describe("pseudo-text", () => {
  it("re-tokenizes to exactly the planned ids, for many lengths and seeds", () => {
    for (let s = 0; s < 120; s++) {
      const n = 1 + ((s * 37) % 700)
      const t = pseudoText(n, s)
      expect(t.pieces.length).toBe(n)
      expect(encodeText(t.pieces.join(""))).toEqual(Array.from(t.ids))
    }
  })

  it("is deterministic under the seed", () => {
    expect(pseudoText(50, 3).pieces).toEqual(pseudoText(50, 3).pieces)
    expect(pseudoText(50, 3).pieces).not.toEqual(pseudoText(50, 4).pieces)
  })

  it("repetition loops are exact too", () => {
    const t = repetitionLoop(40)
    expect(encodeText(t.pieces.join(""))).toEqual(Array.from(t.ids))
    expect(t.pieces.join("")).toMatch(/^(The answer is the same answer\. ?)+/)
  })
})

describe("chat template approximation", () => {
  it("counts 1 + Σ(content + 5) + 4 tokens (single-token roles)", () => {
    const messages = [
      { role: "system", content: "You are terse." },
      { role: "user", content: "Hello there, how are you?" }
    ]
    const expected = 1 + messages.reduce((n, m) => n + encodeText(m.content).length + 5, 0) + 4
    expect(chatPromptTokens(messages).length).toBe(expected)
  })

  it("makes a conversation's prompt a token prefix of the next turn's prompt", () => {
    const turn1 = [{ role: "user", content: "Tell me about rivers." }]
    const p1 = chatPromptTokens(turn1)
    const p2 = chatPromptTokens([...turn1, { role: "assistant", content: "Rivers flow." }, { role: "user", content: "More." }])
    expect(Array.from(p2.subarray(0, p1.length - 4))).toEqual(Array.from(p1.subarray(0, p1.length - 4)))
  })

  it("adds a BOS token to completion prompts and accepts token ids", () => {
    expect(completionPromptTokens("hello world").length).toBe(3)
    expect(Array.from(completionPromptTokens([5, 6, 7]))).toEqual([128000, 5, 6, 7])
  })
})

describe("output planning", () => {
  const prompt = chatPromptTokens([{ role: "user", content: "hi" }])
  const base = { prompt, seed: 1, degenerate: false, tool: undefined, requestSeed: undefined, forcedTokens: undefined }

  it("natural length is log-uniform within bounds and deterministic", () => {
    for (let h = 0; h < 2 ** 32; h += 2 ** 26) {
      const n = naturalLength(h)
      expect(n).toBeGreaterThanOrEqual(NATURAL_MIN)
      expect(n).toBeLessThanOrEqual(NATURAL_MAX)
    }
    expect(planOutput({ ...base, maxTokens: 1000 }).ids).toEqual(planOutput({ ...base, maxTokens: 1000 }).ids)
  })

  it("sim_output_tokens forces the length; max_tokens caps it with finish length", () => {
    const forced = planOutput({ ...base, maxTokens: 1000, forcedTokens: 77 })
    expect(forced.ids.length).toBe(77)
    expect(forced.finish).toBe("stop")
    const capped = planOutput({ ...base, maxTokens: 10, forcedTokens: 77 })
    expect(capped.ids.length).toBe(10)
    expect(capped.finish).toBe("length")
    expect(DEFAULT_MAX_TOKENS).toBe(256)
  })

  it("degenerate output loops until max_tokens", () => {
    const d = planOutput({ ...base, maxTokens: 30, degenerate: true })
    expect(d.ids.length).toBe(30)
    expect(d.finish).toBe("length")
  })

  it("tool calls get deterministic JSON arguments that follow the schema", () => {
    const tool = {
      name: "get_weather",
      parameters: {
        type: "object",
        properties: {
          city: { type: "string" },
          unit: { type: "string", enum: ["celsius", "fahrenheit"] },
          days: { type: "integer" },
          tags: { type: "array", items: { type: "string" } }
        }
      }
    }
    const plan = planOutput({ ...base, maxTokens: 500, tool })
    const args = JSON.parse(plan.pieces.join("")) as Record<string, unknown>
    expect(typeof args["city"]).toBe("string")
    expect(["celsius", "fahrenheit"]).toContain(args["unit"])
    expect(Number.isInteger(args["days"])).toBe(true)
    expect(Array.isArray(args["tags"])).toBe(true)
    expect(plan.tool?.argumentsJson).toBe(plan.pieces.join(""))
    expect(planOutput({ ...base, maxTokens: 500, tool }).pieces).toEqual(plan.pieces)
    const cut = planOutput({ ...base, maxTokens: 3, tool })
    expect(cut.finish).toBe("length")
    expect(cut.ids.length).toBe(3)
  })
})
