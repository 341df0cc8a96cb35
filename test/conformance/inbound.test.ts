/**
 * Inbound conformance: every inbound API × every backend dialect (the table below, the README's
 * "Inbound APIs" table), streaming and not, with tools, through the official SDKs; and a client
 * that leaves mid-stream makes the engine drop the request with nothing left held. Each
 * dialect's peer is the engine simulator speaking that protocol, as in conformance.test.ts.
 * The OpenAI chat API's own conformance is conformance.test.ts.
 */
import Anthropic from "@anthropic-ai/sdk"
import { Effect, Exit, Scope } from "effect"
import OpenAI from "openai"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { AccountingRecord } from "../../src/accounting/Accounting.ts"
import * as Simulator from "../../src/simulator/Simulator.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

type Api = "messages" | "responses"

interface DialectCase {
  readonly dialect: "vllm" | "sglang" | "anthropic" | "ollama"
  readonly peer: "openai" | "anthropic" | "ollama" | "sglang"
  readonly basePath: string
}

/** Every inbound API works against every dialect (none refuses): the README's table says so. */
export const INBOUND: ReadonlyArray<Api> = ["messages", "responses"]

const DIALECTS: ReadonlyArray<DialectCase> = [
  { dialect: "vllm", peer: "openai", basePath: "/v1" },
  { dialect: "sglang", peer: "sglang", basePath: "/v1" },
  { dialect: "anthropic", peer: "anthropic", basePath: "/v1" },
  { dialect: "ollama", peer: "ollama", basePath: "" }
]

const MODEL = "conf-model"

const startPeer = async (dialect: DialectCase["peer"]) => {
  const scope = Effect.runSync(Scope.make())
  const sim = await Effect.runPromise(
    Simulator.start({ profile: "llama-3.1-8b-fp8-h100", model: "sim-model", dialect, timeScale: 4, seed: 7, jitter: 0 }).pipe(
      Scope.provide(scope)
    )
  )
  return {
    url: sim.url,
    stats: () => Effect.runPromise(sim.stats),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const recordOf = async (gw: TestGateway, requestId: string | null): Promise<AccountingRecord | undefined> => {
  const snapshot = await eventually(() => gw.run(gw.sink.snapshot), (s) => s.recent.some((r) => r.requestId === requestId))
  return snapshot.recent.find((r) => r.requestId === requestId)
}

const isIdle = (h: typeof idle) => (Object.keys(idle) as Array<keyof typeof idle>).every((k) => h[k] === idle[k])

const weather = {
  name: "get_weather",
  description: "Current weather for a city",
  input_schema: { type: "object" as const, properties: { city: { type: "string" } }, required: ["city"] }
}

const question = "Tell me about the weather in Paris in spring."

for (const c of DIALECTS) {
  describe(`inbound conformance: ${c.dialect}`, () => {
    let peer: Awaited<ReturnType<typeof startPeer>>
    let gw: TestGateway
    let anthropic: Anthropic
    let openai: OpenAI
    beforeAll(async () => {
      peer = await startPeer(c.peer)
      gw = await startGateway(`
backends:
  - id: peer
    dialect: ${c.dialect}
    url: ${peer.url}${c.basePath}
    models:
      - name: ${MODEL}
        upstream: sim-model
breakers:
  min_requests: 1000
timeouts:
  first_token: 10s
  drain: 1s
`)
      anthropic = new Anthropic({ baseURL: gw.url, apiKey: "test", maxRetries: 0 })
      openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "test", maxRetries: 0 })
    })
    afterAll(async () => {
      await gw?.close()
      await peer?.close()
    })

    it("messages: unary", async () => {
      const { data, response } = await anthropic.messages.create({ model: MODEL, max_tokens: 12, messages: [{ role: "user", content: question }] })
        .withResponse()
      expect(data.type).toBe("message")
      const text = data.content.flatMap((b) => b.type === "text" ? [b.text] : []).join("")
      expect(text.length).toBeGreaterThan(0)
      expect(["end_turn", "max_tokens"]).toContain(data.stop_reason)
      expect(data.usage.output_tokens).toBeGreaterThan(0)
      const record = await recordOf(gw, response.headers.get("request-id"))
      expect(record?.outcome).toBe("completed")
      expect(record?.reported).toBe(true)
    })

    it("messages: streaming, Anthropic's event order, settled on the reported usage", async () => {
      const stream = anthropic.messages.stream({ model: MODEL, max_tokens: 12, messages: [{ role: "user", content: question }] })
      const types: Array<string> = []
      for await (const event of stream) types.push(event.type)
      const final = await stream.finalMessage()
      expect(types[0]).toBe("message_start")
      expect(types.at(-2)).toBe("message_delta")
      expect(types.at(-1)).toBe("message_stop")
      expect(types).toContain("content_block_delta")
      expect(final.usage.output_tokens).toBeGreaterThan(0)
      const requestId = (await stream.withResponse()).response.headers.get("request-id")
      const record = await recordOf(gw, requestId)
      expect(record?.outcome).toBe("completed")
      expect(record?.charged.completionTokens).toBe(final.usage.output_tokens)
    })

    it("messages: tools, streaming and not", async () => {
      const request = {
        model: MODEL,
        max_tokens: 64,
        tools: [weather],
        tool_choice: { type: "any" as const },
        messages: [{ role: "user" as const, content: "What is the weather in Paris?" }]
      }
      for (const final of [await anthropic.messages.stream(request).finalMessage(), await anthropic.messages.create(request)]) {
        expect(final.stop_reason).toBe("tool_use")
        const use = final.content.find((b) => b.type === "tool_use")
        expect(use?.type === "tool_use" && use.name).toBe("get_weather")
        expect(use?.type === "tool_use" && typeof use.input === "object" && use.input !== null).toBe(true)
      }
    })

    it("responses: unary", async () => {
      const { data, response } = await openai.responses.create({ model: MODEL, input: question, max_output_tokens: 12 }).withResponse()
      expect(data.object).toBe("response")
      expect(data.output_text.length).toBeGreaterThan(0)
      expect(data.usage!.output_tokens).toBeGreaterThan(0)
      const record = await recordOf(gw, response.headers.get("x-request-id"))
      expect(record?.outcome).toBe("completed")
    })

    it("responses: streaming with typed events", async () => {
      const { data: stream, response } = await openai.responses.create({ model: MODEL, input: question, max_output_tokens: 12, stream: true })
        .withResponse()
      const types: Array<string> = []
      let text = ""
      let done: OpenAI.Responses.Response | undefined
      for await (const event of stream) {
        types.push(event.type)
        if (event.type === "response.output_text.delta") text += event.delta
        if (event.type === "response.completed" || event.type === "response.incomplete") done = event.response
      }
      expect(types[0]).toBe("response.created")
      expect(text.length).toBeGreaterThan(0)
      expect(done?.usage?.output_tokens).toBeGreaterThan(0)
      const record = await recordOf(gw, response.headers.get("x-request-id"))
      expect(record?.charged.completionTokens).toBe(done?.usage?.output_tokens)
    })

    it("responses: function calls, streaming and not", async () => {
      const tools: Array<OpenAI.Responses.FunctionTool> = [{ type: "function", name: "get_weather", parameters: weather.input_schema, strict: false }]
      const request = { model: MODEL, input: "What is the weather in Paris?", tools, tool_choice: "required" as const, max_output_tokens: 64 }
      const stream = await openai.responses.create({ ...request, stream: true })
      let args = ""
      let streamed: OpenAI.Responses.Response | undefined
      for await (const event of stream) {
        if (event.type === "response.function_call_arguments.delta") args += event.delta
        if (event.type === "response.completed") streamed = event.response
      }
      const whole = await openai.responses.create(request)
      for (const res of [streamed!, whole]) {
        const call = res.output.find((o) => o.type === "function_call")
        expect(call?.type === "function_call" && call.name).toBe("get_weather")
        expect(call?.type === "function_call" && typeof JSON.parse(call.arguments)).toBe("object")
      }
      expect(typeof JSON.parse(args)).toBe("object")
    })

    for (const api of INBOUND) {
      it(`${api}: a client that leaves mid-stream makes the engine drop the request, nothing stays held`, async () => {
        const before = await peer.stats()
        let requestId: string | null = null
        if (api === "messages") {
          const stream = anthropic.messages.stream({ model: MODEL, max_tokens: 4000, messages: [{ role: "user", content: question }] })
          for await (const event of stream) if (event.type === "content_block_delta") break
          requestId = (await stream.withResponse()).response.headers.get("request-id")
        } else {
          const { data: stream, response } = await openai.responses.create({ model: MODEL, input: question, max_output_tokens: 4000, stream: true })
            .withResponse()
          requestId = response.headers.get("x-request-id")
          for await (const event of stream) if (event.type === "response.output_text.delta") break
        }
        expect(await eventually(() => gw.held(), isIdle)).toMatchObject(idle)
        const after = await eventually(() => peer.stats(), (s) => s.aborted > before.aborted && s.running === 0)
        expect(after.aborted).toBe(before.aborted + 1)
        expect((await recordOf(gw, requestId))?.outcome).toBe("client_aborted")
      })
    }
  })
}
