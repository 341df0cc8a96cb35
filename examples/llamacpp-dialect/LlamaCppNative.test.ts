/**
 * The llama.cpp native dialect example end to end: a fake llama-server speaking `POST
 * /completion` (SSE lines `data: {"content":...,"stop":false}`) behind the embedded gateway.
 * The client talks OpenAI `/v1/completions`; the fake sees the native request; a client that
 * disconnects mid-stream closes the fake's connection.
 */
import { type IncomingMessage, request, type ServerResponse } from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, listen, readJson, startGateway } from "../support/harness.ts"
import * as LlamaCpp from "./LlamaCppNative.ts"

interface Seen {
  readonly path: string
  readonly body: { readonly [key: string]: unknown }
  /** The response was closed before the server ended it. */
  cut: boolean
  /** The request's socket closed. */
  socketClosed: boolean
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A fake llama-server: `tokens` then a stop line, or `hold` after the first token until the connection closes. */
const fakeLlamaServer = async () => {
  const seen: Array<Seen> = []
  let hold = false
  const tokens = ["Hel", "lo", " world"]
  const server = await listen(async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readJson(req)
    const entry: Seen = { path: req.url ?? "", body, cut: false, socketClosed: false }
    seen.push(entry)
    res.on("close", () => {
      if (!res.writableEnded) entry.cut = true
    })
    req.socket.once("close", () => {
      entry.socketClosed = true
    })
    const last = { content: "", stop: true, stop_type: "limit", tokens_predicted: 3, tokens_evaluated: 5, tokens_cached: 2, truncated: false }
    if (body["stream"] !== true) {
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify({ ...last, content: tokens.join(""), stop_type: "eos" }))
      return
    }
    res.writeHead(200, { "content-type": "text/event-stream" })
    for (const [i, content] of tokens.entries()) {
      res.write(`data: ${JSON.stringify({ content, stop: false, tokens: [i] })}\n\n`)
      if (hold) return // until the gateway closes the connection
      await sleep(5)
    }
    res.end(`data: ${JSON.stringify(last)}\n\n`)
  })
  return { ...server, seen, holdNext: (on: boolean) => (hold = on) }
}

const textsOf = (sse: string) => {
  let text = ""
  const finishes: Array<unknown> = []
  let usage: unknown
  for (const line of sse.split("\n")) {
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue
    const event = JSON.parse(line.slice(6))
    for (const c of event.choices ?? []) {
      text += c.text
      if (c.finish_reason !== null) finishes.push(c.finish_reason)
    }
    if (event.usage) usage = event.usage
  }
  return { text, finishes, usage, done: sse.trimEnd().endsWith("data: [DONE]") }
}

describe("examples/llamacpp-dialect", () => {
  let llama: Awaited<ReturnType<typeof fakeLlamaServer>>
  let gateway: Awaited<ReturnType<typeof startGateway>>
  const complete = (body: Record<string, unknown>) =>
    fetch(`${gateway.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", ...body })
    })

  beforeAll(async () => {
    llama = await fakeLlamaServer()
    gateway = await startGateway(
      `
models: [{ name: tiny, tokenizer: chars }]
backends:
  - { id: llama, dialect: ${LlamaCpp.NAME}, url: "${llama.origin}", models: [tiny], metrics: none }
health: { probe_interval: 0 }
`,
      LlamaCpp.layer
    )
  })
  afterAll(async () => {
    await gateway?.close()
    await llama?.close()
  })

  it("streams a native /completion as OpenAI completion chunks, with the engine's usage", async () => {
    const res = await complete({ prompt: "Say hi", max_tokens: 16, temperature: 0.5, stop: "\n", stream: true, stream_options: { include_usage: true } })
    expect(res.status).toBe(200)
    const out = textsOf(await res.text())
    expect(out).toEqual({
      text: "Hello world",
      finishes: ["length"],
      usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
      done: true
    })
    const sent = llama.seen.at(-1)!
    expect(sent.path).toBe("/completion")
    expect(sent.body).toEqual({ prompt: "Say hi", n_predict: 16, stream: true, cache_prompt: true, temperature: 0.5, stop: ["\n"] })
  })

  it("answers a unary completion", async () => {
    const res = await complete({ prompt: "Say hi", max_tokens: 8 })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({
      object: "text_completion",
      model: "tiny",
      choices: [{ index: 0, text: "Hello world", finish_reason: "stop" }],
      usage: { prompt_tokens: 5, completion_tokens: 3 }
    })
    expect(llama.seen.at(-1)!.body).toMatchObject({ prompt: "Say hi", n_predict: 8, stream: false })
  })

  it("refuses what the native API cannot say with a 400", async () => {
    const before = llama.seen.length
    const res = await complete({ prompt: ["one", "two"], max_tokens: 8 })
    expect(res.status).toBe(400)
    expect(llama.seen.length).toBe(before)
  })

  it("closes the engine's connection when the client disconnects mid-stream", async () => {
    llama.holdNext(true)
    // A client that goes away: its socket is destroyed after the first chunk.
    const first = await new Promise<string>((resolve, reject) => {
      const req = request(`${gateway.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
        expect(res.statusCode).toBe(200)
        res.once("data", (chunk: Buffer) => {
          req.destroy()
          resolve(chunk.toString("utf8"))
        })
      })
      req.on("error", reject)
      req.end(JSON.stringify({ model: "tiny", prompt: "Say hi", max_tokens: 16, stream: true }))
    })
    expect(first).toContain("Hel")
    const held = llama.seen.at(-1)!
    const closed = await eventually(async () => held.socketClosed && held.cut, (c) => c, 5000)
    expect(closed).toBe(true)
    llama.holdNext(false)
  })
})
