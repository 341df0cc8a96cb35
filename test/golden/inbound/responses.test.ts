/**
 * Golden files of the inbound OpenAI Responses translation (test/golden/inbound/responses/):
 *   <case>.request.input.json   {body, previous?}          → <case>.request.expected.json (chat call, echo, items; or the refusal)
 *   <case>.response.input.json  chat completion + usage    → <case>.unary.expected.json (`response` object)
 *   <case>.events.json          token events, end or fail  → <case>.stream.expected.json (SSE events, parsed)
 *   errors.expected.json        every canonical error       (status, headers, body)
 *
 * Regenerate after an intended change with   UPDATE_GOLDEN=1 npx vitest run test/golden/inbound
 * and review the diff: the expected files are the specification.
 */
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { Result } from "effect"
import { describe, expect, it } from "vitest"
import { itemsToStore } from "../../../src/api/responses/Conversation.ts"
import { errorAnswer } from "../../../src/api/responses/Errors.ts"
import { response } from "../../../src/api/responses/Response.ts"
import { decode } from "../../../src/api/responses/responses_openai.ts"
import { ResponseStreamEncoder } from "../../../src/api/responses/Stream.ts"
import { CANONICAL_ERRORS, golden, readJson, root, run, steps, unaryFixture } from "./support.ts"

const cases = (suffix: string) =>
  readdirSync(join(root, "responses")).filter((f) => f.endsWith(suffix)).map((f) => f.slice(0, -suffix.length)).sort()

const CREATED = 1_700_000_000
const ECHO = {
  instructions: null,
  max_output_tokens: null,
  metadata: {},
  parallel_tool_calls: true,
  previous_response_id: null,
  reasoning: null,
  store: true,
  temperature: null,
  text: { format: { type: "text" } },
  tool_choice: "auto",
  tools: [],
  top_p: null,
  truncation: "disabled",
  user: null
}
const HEAD = { id: "resp_req-golden", createdAt: CREATED, model: "gpt-x", echo: ECHO }

const fixture = (file: string): { readonly body: unknown; readonly previous: ReadonlyArray<unknown> | undefined } => {
  const raw = readJson(file)
  if (typeof raw !== "object" || raw === null || !("body" in raw)) throw new Error(`${file}: expected {body, previous?}`)
  const previous = "previous" in raw && Array.isArray(raw.previous) ? raw.previous : undefined
  return { body: raw.body, previous }
}

describe("golden: Responses request → chat call", () => {
  for (const name of cases(".request.input.json")) {
    it(name, () => {
      const { body, previous } = fixture(`responses/${name}.request.input.json`)
      const result = decode(body, previous)
      golden(
        `responses/${name}.request.expected.json`,
        Result.isSuccess(result)
          ? { call: result.success.call, echo: result.success.echo, items: result.success.items }
          : { refused: { message: result.failure.message, param: result.failure.param } }
      )
    })
  }
})

describe("golden: chat completion → Responses response", () => {
  for (const name of cases(".response.input.json")) {
    it(name, () => {
      const { body, usage, finish } = unaryFixture(`responses/${name}.response.input.json`)
      golden(`responses/${name}.unary.expected.json`, response(body, usage, finish, HEAD, CREATED + 2))
    })
  }
})

describe("golden: token events → Responses SSE", () => {
  for (const name of cases(".events.json")) {
    it(name, () => {
      const encoder = new ResponseStreamEncoder(HEAD)
      const { events } = run({ push: (e) => encoder.push(e), end: () => encoder.end(CREATED + 2), fail: (e) => encoder.fail(e) }, steps(`responses/${name}.events.json`))
      golden(`responses/${name}.stream.expected.json`, events)
    })
  }
})

describe("golden: canonical errors → Responses error answers", () => {
  it("every status", () => {
    golden(
      "responses/errors.expected.json",
      CANONICAL_ERRORS.map((error) => {
        const answer = errorAnswer(error)
        return { canonical: { status: error.status, type: error.type, code: error.code }, answer: { ...answer, body: JSON.parse(answer.body) as unknown } }
      })
    )
  })
})

describe("the previous_response_id hook", () => {
  it("a stored conversation continues: stored items, then the new input, decode to the whole message list", () => {
    const first = decode({ model: "gpt-x", input: "Weather in Paris?", tools: [{ type: "function", name: "w", parameters: {} }] }, undefined)
    if (!Result.isSuccess(first)) throw new Error("first turn refused")
    const answered = response(
      { choices: [{ message: { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "w", arguments: "{}" } }] } }] },
      { promptTokens: 10, completionTokens: 5, cachedTokens: 0 },
      "tool_calls",
      { ...HEAD, id: "resp_1" },
      CREATED
    )
    const stored = itemsToStore(first.success.items, answered.output)
    const second = decode({ model: "gpt-x", previous_response_id: "resp_1", input: [{ type: "function_call_output", call_id: "call_1", output: "18°C" }] }, stored)
    if (!Result.isSuccess(second)) throw new Error(`second turn refused: ${second.failure.message}`)
    expect(second.success.call.body.messages).toEqual([
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "w", arguments: "{}" } }] },
      { role: "tool", tool_call_id: "call_1", content: "18°C" }
    ])
  })
})
