/**
 * Golden files of the inbound Anthropic Messages translation (test/golden/inbound/anthropic/):
 *   <case>.request.input.json   Messages request body      → <case>.request.expected.json (chat call, or the refusal)
 *   <case>.count.input.json     count_tokens body          → <case>.count.expected.json
 *   <case>.response.input.json  chat completion + usage    → <case>.message.expected.json (Anthropic message)
 *   <case>.events.json          token events, end or fail  → <case>.stream.expected.json (SSE events, parsed)
 *   errors.expected.json        every canonical error       (status, headers, body; and the stream error event)
 *
 * Regenerate after an intended change with   UPDATE_GOLDEN=1 npx vitest run test/golden/inbound
 * and review the diff: the expected files are the specification.
 */
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { Result } from "effect"
import { describe, it } from "vitest"
import { errorAnswer, errorEvent } from "../../../src/api/anthropic/Errors.ts"
import { message } from "../../../src/api/anthropic/Message.ts"
import { decode, decodeCountTokens } from "../../../src/api/anthropic/messages_openai.ts"
import { MessageStreamEncoder } from "../../../src/api/anthropic/Stream.ts"
import type { ChatCall, Refused } from "../../../src/api/Inbound.ts"
import { CANONICAL_ERRORS, golden, readJson, root, run, steps, unaryFixture } from "./support.ts"

const cases = (suffix: string) =>
  readdirSync(join(root, "anthropic")).filter((f) => f.endsWith(suffix)).map((f) => f.slice(0, -suffix.length)).sort()

const decoded = (result: Result.Result<ChatCall, Refused>) =>
  Result.isSuccess(result)
    ? { call: result.success }
    : { refused: { message: result.failure.message, param: result.failure.param } }

const HEAD = { id: "msg_req-golden", model: "claude-sonnet" }

describe("golden: Anthropic Messages request → chat call", () => {
  for (const name of cases(".request.input.json")) {
    it(name, () => golden(`anthropic/${name}.request.expected.json`, decoded(decode(readJson(`anthropic/${name}.request.input.json`)))))
  }
  for (const name of cases(".count.input.json")) {
    it(`count_tokens: ${name}`, () =>
      golden(`anthropic/${name}.count.expected.json`, decoded(decodeCountTokens(readJson(`anthropic/${name}.count.input.json`)))))
  }
})

describe("golden: chat completion → Anthropic message", () => {
  for (const name of cases(".response.input.json")) {
    it(name, () => {
      const { body, usage, finish } = unaryFixture(`anthropic/${name}.response.input.json`)
      golden(`anthropic/${name}.message.expected.json`, message(body, usage, finish, HEAD))
    })
  }
})

describe("golden: token events → Anthropic SSE", () => {
  for (const name of cases(".events.json")) {
    it(name, () => {
      const { events } = run(new MessageStreamEncoder(HEAD), steps(`anthropic/${name}.events.json`))
      golden(`anthropic/${name}.stream.expected.json`, events)
    })
  }
})

describe("golden: canonical errors → Anthropic error answers", () => {
  it("every status", () => {
    golden(
      "anthropic/errors.expected.json",
      CANONICAL_ERRORS.map((error) => ({
        canonical: { status: error.status, type: error.type, code: error.code },
        answer: { ...errorAnswer(error, "req-golden"), body: JSON.parse(errorAnswer(error, "req-golden").body) as unknown },
        streamEvent: errorEvent(error)
      }))
    )
  })
})
