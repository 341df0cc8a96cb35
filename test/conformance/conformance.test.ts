/**
 * The dialect conformance suite: ONE set of checks that every backend dialect passes, or opts
 * out of explicitly, per capability, in the TABLE below (ARCHITECTURE.md §8, STYLE.md habit 14).
 *
 * Each dialect runs the real gateway (test/support/Gateway.ts) in front of a peer speaking that
 * dialect, and talks to the gateway as a client would: the `openai` SDK for streams, plain fetch
 * for status codes, envelopes and aborts. The peer is a parameter (`startPeer`): by default the
 * engine simulator (src/simulator/Simulator.ts) with fault injection; anything that returns a
 * base URL, a fault setter and engine stats can stand in.
 *
 * Checks: non-streaming chat; streaming chat with include_usage (the usage chunk's content and the
 * accounting record); tool-call streaming; an error before the first token (status and OpenAI
 * envelope); an error event mid-stream (the client sees an OpenAI error event, the record says
 * partial); abort (the client leaves mid-stream, the engine drops the request, everything the
 * gateway held returns to zero); embeddings.
 */
import { Effect, Exit, Scope } from "effect"
import OpenAI from "openai"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { AccountingRecord } from "../../src/accounting/Accounting.ts"
import * as Simulator from "../../src/simulator/Simulator.ts"
import { eventually, idle, startGateway, type TestGateway } from "../support/Gateway.ts"

// ---- the table ----

/** `true`: the check runs. `skip`: the peer cannot show it (reason). `refuses`: the gateway must answer 400. */
/** A dialect supports a capability, or refuses it explicitly (the test then asserts the refusal). */
type Support = true | { readonly refuses: string }

interface Capabilities {
  readonly chat: Support
  readonly stream: Support
  readonly tools: Support
  readonly usage: Support
  readonly embeddings: Support
  readonly midStreamError: Support
  readonly abort: Support
}

type PeerDialect = "openai" | "anthropic" | "ollama" | "sglang"

interface DialectCase {
  /** The gateway's dialect name for the backend. */
  readonly dialect: "vllm" | "sglang" | "anthropic" | "ollama"
  /** The wire the peer speaks. */
  readonly peer: PeerDialect
  /** Path appended to the peer's origin to form the backend's base URL. */
  readonly basePath: string
  readonly supports: Capabilities
}

const all: Capabilities = {
  chat: true,
  stream: true,
  tools: true,
  usage: true,
  embeddings: true,
  midStreamError: true,
  abort: true
}

export const TABLE: ReadonlyArray<DialectCase> = [
  { dialect: "vllm", peer: "openai", basePath: "/v1", supports: all },
  { dialect: "sglang", peer: "sglang", basePath: "/v1", supports: all },
  {
    dialect: "anthropic",
    peer: "anthropic",
    basePath: "/v1",
    supports: { ...all, embeddings: { refuses: "Anthropic has no embeddings API" } }
  },
  {
    dialect: "ollama",
    peer: "ollama",
    basePath: "",
    supports: all
  }
]

// ---- the peer ----

export interface Peer {
  /** Origin, no path. */
  readonly url: string
  /** The model name the peer serves. */
  readonly model: string
  readonly setFaults: (faults: Partial<Simulator.Faults>) => Promise<void>
  readonly stats: () => Promise<Simulator.EngineStats>
  readonly close: () => Promise<void>
}

export type StartPeer = (dialect: PeerDialect) => Promise<Peer>

const NO_FAULTS: Partial<Simulator.Faults> = { errorRate: 0, midStreamErrorRate: 0 }

/** The engine simulator as a peer: ~4× real time, seeded. */
export const simulatorPeer: StartPeer = async (dialect) => {
  const scope = Effect.runSync(Scope.make())
  const model = "sim-model"
  const sim = await Effect.runPromise(
    Simulator.start({ profile: "llama-3.1-8b-fp8-h100", model, dialect, timeScale: 4, seed: 7, jitter: 0 }).pipe(
      Scope.provide(scope)
    )
  )
  return {
    url: sim.url,
    model,
    setFaults: (faults) => Effect.runPromise(sim.setFaults(faults)),
    stats: () => Effect.runPromise(sim.stats),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

// ---- helpers ----

const MODEL = "conf-model"

const yamlFor = (c: DialectCase, peer: Peer) => `
backends:
  - id: peer
    dialect: ${c.dialect}
    url: ${peer.url}${c.basePath}
    models:
      - name: ${MODEL}
        upstream: ${peer.model}
routing:
  policy: ordered
breakers:
  min_requests: 1000
timeouts:
  first_token: 10s
  # Shutdown is not under test here; see the report on keep-alive connections and drain.
  drain: 1s
`

const post = (gw: TestGateway, path: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${gw.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    ...(signal === undefined ? {} : { signal })
  })

const recordOf = async (gw: TestGateway, requestId: string | null): Promise<AccountingRecord | undefined> => {
  const snapshot = await eventually(
    () => gw.run(gw.sink.snapshot),
    (s) => s.recent.some((r) => r.requestId === requestId)
  )
  return snapshot.recent.find((r) => r.requestId === requestId)
}

/** Parses an SSE body into its `data:` payloads. */
const sseData = (text: string): Array<string> =>
  text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6))

const user = [{ role: "user", content: "Tell me about the weather in Paris in spring." }]

const weatherTool = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Current weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }
  }
}

// ---- the suite ----

const runFor = (c: DialectCase, startPeer: StartPeer) =>
  describe(`conformance: ${c.dialect}`, () => {
    let peer: Peer
    let gw: TestGateway
    let client: OpenAI
    beforeAll(async () => {
      peer = await startPeer(c.peer)
      gw = await startGateway(yamlFor(c, peer))
      client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "test", maxRetries: 0 })
    })
    afterAll(async () => {
      await gw?.close()
      await peer?.close()
    })

    /** Runs `check` when the capability is supported, else opts out in the test's name. */
    const check = (name: keyof Capabilities, title: string, body: () => Promise<void>, refused?: () => Promise<void>) => {
      const s = c.supports[name]
      if (s === true) it(title, body)
      else it(`${title} — refused with 400: ${s.refuses}`, refused ?? body)
    }

    check("chat", "non-streaming chat", async () => {
      const res = await post(gw, "/v1/chat/completions", { model: MODEL, messages: user, max_tokens: 8 })
      expect(res.status).toBe(200)
      const body = await res.json() as OpenAI.ChatCompletion
      expect(body.object).toBe("chat.completion")
      expect(body.model.length).toBeGreaterThan(0)
      const choice = body.choices[0]!
      expect(typeof choice.message.content).toBe("string")
      expect(choice.message.content!.length).toBeGreaterThan(0)
      expect(["stop", "length"]).toContain(choice.finish_reason)
      expect(body.usage!.prompt_tokens).toBeGreaterThan(0)
      expect(body.usage!.completion_tokens).toBeGreaterThan(0)
      const record = await recordOf(gw, res.headers.get("x-request-id"))
      expect(record?.outcome).toBe("completed")
      expect(record?.reported).toBe(true)
    })

    check("usage", "streaming chat with include_usage", async () => {
      const { data: stream, response } = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: "Say something." }],
        max_tokens: 12,
        stream: true,
        stream_options: { include_usage: true }
      }).withResponse()
      const chunks: Array<OpenAI.ChatCompletionChunk> = []
      for await (const chunk of stream) chunks.push(chunk)
      const text = chunks.flatMap((ch) => ch.choices.map((x) => x.delta.content ?? "")).join("")
      expect(text.length).toBeGreaterThan(0)
      const finishes = chunks.flatMap((ch) => ch.choices.flatMap((x) => (x.finish_reason === null ? [] : [x.finish_reason])))
      expect(finishes).toHaveLength(1)
      const last = chunks.at(-1)!
      expect(last.choices).toEqual([])
      const usage = last.usage!
      expect(usage.prompt_tokens).toBeGreaterThan(0)
      expect(usage.completion_tokens).toBeGreaterThan(0)
      expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens)
      const cached = usage.prompt_tokens_details?.cached_tokens ?? 0
      expect(cached).toBeGreaterThanOrEqual(0)
      expect(cached).toBeLessThanOrEqual(usage.prompt_tokens)
      expect(chunks.slice(0, -1).every((ch) => ch.usage === undefined || ch.usage === null)).toBe(true)
      const record = await recordOf(gw, response.headers.get("x-request-id"))
      expect(record?.outcome).toBe("completed")
      expect(record?.reported).toBe(true)
      expect(record?.charged.promptTokens).toBe(usage.prompt_tokens)
      expect(record?.charged.completionTokens).toBe(usage.completion_tokens)
    })

    check("stream", "streaming chat without include_usage hides the usage chunk", async () => {
      const res = await post(gw, "/v1/chat/completions", { model: MODEL, messages: user, max_tokens: 6, stream: true })
      expect(res.status).toBe(200)
      expect(res.headers.get("content-type")).toContain("text/event-stream")
      const data = sseData(await res.text())
      expect(data.at(-1)).toBe("[DONE]")
      const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as OpenAI.ChatCompletionChunk)
      expect(chunks.every((ch) => ch.object === "chat.completion.chunk" && ch.choices.length === 1)).toBe(true)
      expect(chunks.some((ch) => ch.usage !== undefined && ch.usage !== null)).toBe(false)
      // The gateway still settles on the usage the backend reported.
      const record = await recordOf(gw, res.headers.get("x-request-id"))
      expect(record?.reported).toBe(true)
    })

    check("tools", "tool-call streaming", async () => {
      const stream = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: "What is the weather in Paris?" }],
        tools: [weatherTool],
        tool_choice: "required",
        max_tokens: 64,
        stream: true
      })
      const calls = new Map<
        number,
        { id: string | undefined; type: string | undefined; name: string | undefined; args: string; deltas: number }
      >()
      const finishes: Array<string> = []
      for await (const chunk of stream) {
        for (const choice of chunk.choices) {
          if (choice.finish_reason !== null) finishes.push(choice.finish_reason)
          for (const tc of choice.delta.tool_calls ?? []) {
            const entry = calls.get(tc.index) ?? { id: undefined, type: undefined, name: undefined, args: "", deltas: 0 }
            if (entry.deltas === 0) {
              entry.id = tc.id
              entry.type = tc.type
              entry.name = tc.function?.name
            } else {
              expect(tc.id).toBeUndefined()
            }
            entry.args += tc.function?.arguments ?? ""
            entry.deltas++
            calls.set(tc.index, entry)
          }
        }
      }
      expect([...calls.keys()]).toEqual([0])
      const call = calls.get(0)!
      expect(call.id).toMatch(/.+/)
      expect(call.type).toBe("function")
      expect(call.name).toBe("get_weather")
      const args: unknown = JSON.parse(call.args)
      expect(typeof args === "object" && args !== null && !Array.isArray(args)).toBe(true)
      expect(finishes).toEqual(["tool_calls"])
    })

    check("chat", "an error before the first token: status and OpenAI envelope", async () => {
      await peer.setFaults({ errorRate: 1, errorStatus: 429, retryAfterSeconds: 0 })
      try {
        for (const stream of [true, false]) {
          const res = await post(gw, "/v1/chat/completions", { model: MODEL, messages: user, max_tokens: 8, stream })
          expect(res.status).toBe(503)
          expect(res.headers.get("content-type")).toContain("application/json")
          const body = await res.json() as { error: { message: string; type: string; code: string; param: unknown } }
          expect(body.error.type).toBe("overloaded_error")
          expect(body.error.code).toBe("backends_overloaded")
          expect(body.error.message).toContain("Overloaded")
          const record = await recordOf(gw, res.headers.get("x-request-id"))
          expect(record?.outcome).toBe("failed")
          expect(record?.attempts.map((a) => a.reason)).toEqual(["Overloaded"])
        }
      } finally {
        await peer.setFaults(NO_FAULTS)
      }
    })

    check("midStreamError", "an error event mid-stream ends the stream with an OpenAI error event", async () => {
      await peer.setFaults({ midStreamErrorRate: 1, midStreamAfterTokens: 3 })
      try {
        const res = await post(gw, "/v1/chat/completions", { model: MODEL, messages: user, max_tokens: 32, stream: true })
        expect(res.status).toBe(200)
        const data = sseData(await res.text())
        expect(data).not.toContain("[DONE]")
        const last = JSON.parse(data.at(-1)!) as { error?: { type: string; code: string; message: string } }
        expect(last.error?.type).toBe("server_error")
        expect(last.error?.code).toBe("backend_error")
        const tokens = data.slice(0, -1).map((d) => JSON.parse(d) as OpenAI.ChatCompletionChunk)
          .flatMap((ch) => ch.choices.map((x) => x.delta.content ?? "")).filter((t) => t !== "")
        expect(tokens.length).toBeGreaterThan(0)
        const record = await recordOf(gw, res.headers.get("x-request-id"))
        expect(record?.outcome).toBe("partial")
      } finally {
        await peer.setFaults(NO_FAULTS)
      }
    })

    check("abort", "abort: the client leaves mid-stream, the engine drops the request, nothing stays held", async () => {
      const before = await peer.stats()
      const controller = new AbortController()
      const res = await post(gw, "/v1/chat/completions", {
        model: MODEL,
        messages: user,
        max_tokens: 4000,
        stream: true
      }, controller.signal)
      expect(res.status).toBe(200)
      const reader = res.body!.getReader()
      const first = await reader.read()
      expect(first.done).toBe(false)
      controller.abort()
      const isIdle = (h: typeof idle) => (Object.keys(idle) as Array<keyof typeof idle>).every((k) => h[k] === idle[k])
      const held = await eventually(() => gw.held(), isIdle)
      expect(held).toMatchObject(idle)
      const after = await eventually(() => peer.stats(), (s) => s.aborted > before.aborted && s.running === 0)
      expect(after.aborted).toBe(before.aborted + 1)
      expect(after.running).toBe(0)
      const record = await recordOf(gw, res.headers.get("x-request-id"))
      expect(record?.outcome).toBe("client_aborted")
    })

    check("embeddings", "embeddings", async () => {
      const res = await post(gw, "/v1/embeddings", { model: MODEL, input: ["hello", "world"] })
      expect(res.status).toBe(200)
      const body = await res.json() as OpenAI.CreateEmbeddingResponse
      expect(body.object).toBe("list")
      expect(body.data.map((d) => d.index)).toEqual([0, 1])
      expect(body.data.every((d) => Array.isArray(d.embedding) && d.embedding.length > 0)).toBe(true)
      expect(body.usage.prompt_tokens).toBeGreaterThan(0)
    }, async () => {
      const res = await post(gw, "/v1/embeddings", { model: MODEL, input: ["hello"] })
      expect(res.status).toBe(400)
      const body = await res.json() as { error: { message: string; type: string } }
      expect(body.error.type).toBe("invalid_request_error")
      expect(body.error.message).toContain("does not support")
    })
  })

for (const c of TABLE) runFor(c, simulatorPeer)
