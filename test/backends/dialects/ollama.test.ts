/**
 * Ollama dialect: the NDJSON scanner and translator under arbitrary chunk boundaries
 * (property, including splits inside multi-byte characters and CRLF), the scanner's bound,
 * the stream's end rules, request rejections, and HTTP error mapping.
 */
import fc from "fast-check"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { NdjsonScanner } from "../../../src/backends/dialects/ollama/NdjsonScanner.ts"
import * as OllamaErrors from "../../../src/backends/dialects/ollama/Errors.ts"
import * as Translate from "../../../src/backends/dialects/ollama/openai_ollama.ts"
import * as OllamaStream from "../../../src/backends/dialects/ollama/Stream.ts"
import { Untranslatable } from "../../../src/backends/dialects/openai/Wire.ts"
import { bodyOf, callOf, drain, flatten, splitAt } from "./support.ts"

const fixtures = join(import.meta.dirname, "../../golden/ollama")
const fixture = (name: string) => new Uint8Array(readFileSync(join(fixtures, `${name}.ndjson`)))
const optionsFor = (kind: "chat" | "completion") => ({
  kind,
  model: "llama",
  created: 1_700_000_000,
  requestId: "req-1",
  clientWantsUsage: true
})

describe("NdjsonScanner", () => {
  it("any chunking yields the same lines", () => {
    const text = "{\"a\":\"é☀️\"}\r\n\n  \n{\"b\":2}\n{\"c\":3}"
    const bytes = new TextEncoder().encode(text)
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 30 }), (cuts) => {
        const scanner = new NdjsonScanner()
        const lines = splitAt(bytes, cuts).flatMap((c) => scanner.feed(c))
        const last = scanner.flush()
        expect(last === undefined ? lines : [...lines, last]).toEqual(["{\"a\":\"é☀️\"}", "{\"b\":2}", "{\"c\":3}"])
      }),
      { numRuns: 200 }
    )
  })

  it("bounds the carry-over of an unfinished line", () => {
    const scanner = new NdjsonScanner(16)
    expect(scanner.feed(new TextEncoder().encode("{\"a\":1}\n{\"b\":"))).toEqual(["{\"a\":1}"])
    expect(scanner.buffered).toBe(5)
    expect(() => scanner.feed(new TextEncoder().encode("x".repeat(20)))).toThrow(/exceeded 16 bytes/)
  })
})

describe("ollama stream", () => {
  const cases: ReadonlyArray<readonly [string, "chat" | "completion"]> = [
    ["chat-text", "chat"],
    ["chat-tools", "chat"],
    ["generate-length", "completion"],
    ["midstream-error", "chat"]
  ]
  for (const [name, kind] of cases) {
    it(`${name}: any chunking gives the same bytes and events`, async () => {
      const bytes = fixture(name)
      const reference = flatten(OllamaStream.translateAll([bytes], optionsFor(kind)))
      await fc.assert(
        fc.asyncProperty(fc.array(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 40 }), async (cuts) => {
          const chunks = splitAt(bytes, cuts)
          expect(flatten(OllamaStream.translateAll(chunks, optionsFor(kind)))).toEqual(reference)
          const { frames } = await drain(OllamaStream.frames(200, bodyOf(chunks), { ...optionsFor(kind), maxLineBytes: 1 << 20 }))
          expect(flatten(frames)).toEqual(reference)
        }),
        { numRuns: 60 }
      )
    })
  }

  it("a stream without done: true is a MidStreamError", async () => {
    const bytes = fixture("chat-text")
    const cut = Buffer.from(bytes).indexOf("\"done\":true")
    const lineStart = Buffer.from(bytes).lastIndexOf("\n", cut) + 1
    const { failure } = await drain(OllamaStream.frames(200, bodyOf([bytes.subarray(0, lineStart)]), {
      ...optionsFor("chat"),
      maxLineBytes: 1 << 20
    }))
    expect(failure?._tag).toBe("MidStreamError")
  })

  it("a line that is not JSON is a MalformedChunk", () => {
    const frames = OllamaStream.translateAll([new TextEncoder().encode("{\"message\":\n")], optionsFor("chat"))
    expect(frames[0]?.events[0]?._tag === "Error" && frames[0].events[0].failure._tag).toBe("MalformedChunk")
  })
})

describe("ollama request translation", () => {
  const reject = (kind: "chat" | "completion" | "embedding", body: Record<string, unknown>) => () =>
    Translate.requestBody(callOf(kind, { model: "m", ...body }))

  it("rejects what Ollama cannot express", () => {
    expect(reject("chat", { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://x/y.png" } }] }] }))
      .toThrow(/data: URLs/)
    expect(reject("chat", { messages: [{ role: "user", content: "hi" }], n: 3 })).toThrow(Untranslatable)
    expect(reject("completion", { prompt: ["a", "b"] })).toThrow(/one text prompt/)
    expect(reject("completion", { prompt: [1, 2, 3] })).toThrow(Untranslatable)
    expect(reject("completion", { prompt: "a", echo: true })).toThrow(/echo/)
    expect(reject("embedding", { input: [[1, 2]] })).toThrow(/text only/)
  })

  it("always states stream explicitly", () => {
    const out = JSON.parse(Translate.requestBody(callOf("chat", { model: "m", messages: [{ role: "user", content: "hi" }] })))
    expect(out.stream).toBe(false)
  })
})

describe("ollama HTTP errors", () => {
  const map = (status: number, message: string) => OllamaErrors.fromResponse(status, undefined, JSON.stringify({ error: message }), 0)

  it.each([
    [404, "model \"llama9\" not found, try pulling it first", "InvalidRequest"],
    [400, "invalid options", "InvalidRequest"],
    [503, "server busy, please try again.  maximum pending requests exceeded", "Overloaded"],
    [503, "loading model", "Unavailable"],
    [429, "too many", "Overloaded"],
    [500, "llama runner process has terminated", "UpstreamError"],
    [500, "CUDA error: out of memory", "OutOfMemory"]
  ])("%i %s → %s", (status, message, tag) => {
    const failure = map(status, message)
    expect(failure._tag).toBe(tag)
    if (failure._tag === "InvalidRequest") expect(failure.status).toBe(status)
  })
})
