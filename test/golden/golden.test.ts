/**
 * Golden files for every dialect translation (OpenAI client ⇄ Anthropic, OpenAI client ⇄ Ollama).
 *
 * Layout: test/golden/<dialect>/
 *   <case>.request.input.json   OpenAI request body        → <case>.request.expected.json  (backend body)
 *   <case>.sse | <case>.ndjson  backend stream bytes        → <case>.stream.expected.json   (OpenAI chunks + token events)
 *   <case>.response.input.json  backend unary answer        → <case>.response.expected.json (OpenAI body)
 *
 * Regenerate after an intended change with:   UPDATE_GOLDEN=1 npx vitest run test/golden
 * then review the diff of the *.expected.json files: they are the specification.
 *
 * Expected files hold the OpenAI SSE events parsed (one entry per `data:` event, "[DONE]" as a
 * string) so a diff reads well; the exact byte framing (`data: <json>\n\n`) is asserted here.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { upstreamCall } from "../support/Calls.ts"
import type { CallKind, Frame, TokenEvent, UpstreamCall } from "../../src/backends/Contract.ts"
import * as AnthropicStream from "../../src/backends/dialects/anthropic/Stream.ts"
import * as AnthropicTranslate from "../../src/backends/dialects/anthropic/openai_anthropic.ts"
import * as OllamaStream from "../../src/backends/dialects/ollama/Stream.ts"
import * as OllamaTranslate from "../../src/backends/dialects/ollama/openai_ollama.ts"

const root = dirname(fileURLToPath(import.meta.url))
const UPDATE = process.env["UPDATE_GOLDEN"] === "1"
const CREATED = 1_700_000_000

const read = (file: string): string => readFileSync(join(root, file), "utf8")
const readJson = (file: string): Record<string, unknown> => JSON.parse(read(file)) as Record<string, unknown>

/** Compares `actual` with the golden file, or rewrites it under UPDATE_GOLDEN=1. */
const golden = (file: string, actual: unknown) => {
  const path = join(root, file)
  const text = `${JSON.stringify(actual, null, 2)}\n`
  if (UPDATE) {
    writeFileSync(path, text)
    return
  }
  if (!existsSync(path)) throw new Error(`missing golden file ${file}: run with UPDATE_GOLDEN=1 and review it`)
  expect(text).toBe(readFileSync(path, "utf8"))
}

const callOf = (kind: CallKind, body: { readonly [key: string]: unknown }, upstreamModel: string): UpstreamCall =>
  upstreamCall(kind, body, { upstreamModel, requestId: "req-golden" })

const eventJson = (e: TokenEvent): unknown =>
  e._tag === "Error" ? { _tag: "Error", failure: { _tag: e.failure._tag, message: e.failure.message, code: "code" in e.failure ? e.failure.code : undefined } } : e

/** Frames → the golden shape, checking the SSE framing on the way. */
const streamJson = (frames: ReadonlyArray<Frame>) => {
  const text = frames.map((f) => (f.bytes === undefined ? "" : new TextDecoder().decode(f.bytes))).join("")
  const events = text === "" ? [] : text.slice(0, -2).split("\n\n")
  const sse = events.map((e) => {
    expect(e.startsWith("data: ")).toBe(true)
    const data = e.slice(6)
    if (data === "[DONE]") return data
    expect(data).toBe(JSON.stringify(JSON.parse(data)))
    return JSON.parse(data) as unknown
  })
  if (text !== "") expect(text.endsWith("\n\n")).toBe(true)
  return { sse, events: frames.flatMap((f) => f.events.map(eventJson)) }
}

const bytesOf = (file: string): Array<Uint8Array> => [new Uint8Array(readFileSync(join(root, file)))]

describe("golden: OpenAI → Anthropic requests", () => {
  for (const name of ["system-prompt", "multi-turn-tools", "forced-tool", "defaults"]) {
    it(name, () => {
      const body = readJson(`anthropic/${name}.request.input.json`)
      const out = JSON.parse(AnthropicTranslate.requestBody(callOf("chat", body, "claude-sonnet-4-5"))) as unknown
      golden(`anthropic/${name}.request.expected.json`, out)
    })
  }
})

describe("golden: Anthropic SSE → OpenAI chunks", () => {
  const cases: ReadonlyArray<readonly [string, boolean]> = [
    ["text-cache", true],
    ["tool-use", true],
    ["thinking-no-usage", false],
    ["overloaded-midstream", true]
  ]
  for (const [name, clientWantsUsage] of cases) {
    it(name, () => {
      const frames = AnthropicStream.translateAll(bytesOf(`anthropic/${name}.sse`), {
        model: "claude",
        created: CREATED,
        clientWantsUsage
      })
      golden(`anthropic/${name}.stream.expected.json`, streamJson(frames))
    })
  }
})

describe("golden: Anthropic message → OpenAI chat.completion", () => {
  for (const name of ["text-cache", "tool-use", "refusal"]) {
    it(name, () => {
      const out = AnthropicTranslate.completionOf(readJson(`anthropic/${name}.response.input.json`), "claude", CREATED)
      golden(`anthropic/${name}.response.expected.json`, { body: out.body, finish: out.finish, usage: out.usage })
    })
  }
})

describe("golden: OpenAI → Ollama requests", () => {
  const cases: ReadonlyArray<readonly [string, CallKind]> = [
    ["chat", "chat"],
    ["tools-none", "chat"],
    ["generate", "completion"],
    ["embed", "embedding"]
  ]
  for (const [name, kind] of cases) {
    it(name, () => {
      const body = readJson(`ollama/${name}.request.input.json`)
      const out = JSON.parse(OllamaTranslate.requestBody(callOf(kind, body, "llama3.2"))) as unknown
      golden(`ollama/${name}.request.expected.json`, { path: OllamaTranslate.path(kind), body: out })
    })
  }
})

describe("golden: Ollama NDJSON → OpenAI chunks", () => {
  const cases: ReadonlyArray<readonly [string, "chat" | "completion", boolean]> = [
    ["chat-text", "chat", true],
    ["chat-tools", "chat", false],
    ["generate-length", "completion", true],
    ["midstream-error", "chat", true]
  ]
  for (const [name, kind, clientWantsUsage] of cases) {
    it(name, () => {
      const frames = OllamaStream.translateAll(bytesOf(`ollama/${name}.ndjson`), {
        kind,
        model: "llama",
        created: CREATED,
        requestId: "req-golden",
        clientWantsUsage
      })
      golden(`ollama/${name}.stream.expected.json`, streamJson(frames))
    })
  }
})

describe("golden: Ollama answers → OpenAI bodies", () => {
  const head = (id: string) => ({ id, created: CREATED, model: "llama" })
  it("chat-text", () => {
    const out = OllamaTranslate.chatCompletionOf(readJson("ollama/chat-text.response.input.json"), head("chatcmpl-req-golden"), "req-golden")
    golden("ollama/chat-text.response.expected.json", out)
  })
  it("chat-tools", () => {
    const out = OllamaTranslate.chatCompletionOf(readJson("ollama/chat-tools.response.input.json"), head("chatcmpl-req-golden"), "req-golden")
    golden("ollama/chat-tools.response.expected.json", out)
  })
  it("generate", () => {
    const out = OllamaTranslate.textCompletionOf(readJson("ollama/generate.response.input.json"), head("cmpl-req-golden"))
    golden("ollama/generate.response.expected.json", out)
  })
  it("embed", () => {
    golden("ollama/embed.response.expected.json", OllamaTranslate.embeddingsOf(readJson("ollama/embed.response.input.json"), "nomic", false))
  })
  it("embed-base64", () => {
    const out = OllamaTranslate.embeddingsOf(readJson("ollama/embed-base64.response.input.json"), "nomic", true)
    golden("ollama/embed-base64.response.expected.json", out)
    const first = out.body.data[0]!.embedding
    expect(typeof first).toBe("string")
    const buf = Buffer.from(first as string, "base64")
    expect(Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4))).toEqual([0.5, -1, 2])
  })
})
