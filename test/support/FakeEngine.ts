/**
 * An in-test fake OpenAI-compatible engine on a real socket. Each request's behaviour is
 * chosen by the test through `script` (by model name), so one engine can answer, stall,
 * fail before the first token, fail mid-stream or stream slowly. It records what it saw
 * (request bodies and headers, sockets opened and closed) so tests can assert that the
 * gateway forwarded bytes and closed the upstream socket when the client left.
 *
 * Holding (`holdHeaders`, `holdAfter`) waits for the gateway to close the response, never
 * for a timer: a test that wants "the client left before the first token" gets exactly
 * that, however slow the machine is.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http"
import type { AddressInfo, Socket } from "node:net"

export interface Script {
  /** HTTP status before any token (default 200). */
  readonly status?: number
  readonly errorBody?: string
  readonly headers?: Record<string, string>
  /** Text tokens to stream (default ["Hello", " world"]). */
  readonly tokens?: ReadonlyArray<string>
  /** Delay before the first token and between tokens, ms. */
  readonly firstDelayMs?: number
  readonly gapMs?: number
  /** After this many tokens, send a vLLM-style error event (status stays 200). */
  readonly errorAfter?: number
  /** After this many tokens, go silent forever. */
  readonly stallAfter?: number
  /** After this many tokens, destroy the socket. */
  readonly resetAfter?: number
  /** Send a malformed chunk after this many tokens. */
  readonly malformedAfter?: number
  /**
   * Hold before sending the response headers until the gateway closes the request (stream
   * and unary).
   */
  readonly holdHeaders?: boolean
  /**
   * After this many tokens, hold until the gateway closes the request: 0 holds the first
   * token (stream) or the whole answer after its headers (unary).
   */
  readonly holdAfter?: number
  /** Waits for this before the first token (stream) or before answering (unary). */
  readonly until?: Promise<unknown>
  /** After this many tokens, waits for `until` before going on (e.g. until the client saw them). */
  readonly pauseAfter?: { readonly tokens: number; readonly until: Promise<unknown> }
  /** The completion id of every chunk (default `chatcmpl-<n>`). */
  readonly id?: string
  readonly finishReason?: string
  /** Reported usage; `null` sends none at all (an engine without usage reporting). */
  readonly usage?: { readonly prompt_tokens: number; readonly completion_tokens: number; readonly cached_tokens?: number } | null
  readonly toolCall?: { readonly name: string; readonly arguments: ReadonlyArray<string> }
  /** A non-streaming answer: this raw body (after `firstDelayMs`) with status 200, instead of a completion. */
  readonly unaryBody?: string
}

export interface Seen {
  readonly path: string
  readonly headers: IncomingMessage["headers"]
  readonly body: Record<string, unknown>
}

export interface FakeEngine {
  readonly url: string
  readonly seen: Array<Seen>
  /** Sockets currently open to this engine. */
  readonly openSockets: () => number
  /** Upstream requests whose response was closed before it ended (the gateway aborted). */
  readonly aborted: () => number
  /** Resolves with the time (performance.now) of the next response close. */
  readonly nextClose: () => Promise<number>
  /** Responses not closed yet (requests the engine is still working on). */
  readonly active: () => number
  script: (model: string, body: Record<string, unknown>, headers: IncomingMessage["headers"]) => Script
  readonly close: () => Promise<void>
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const chunk = (id: string, model: string, delta: Record<string, unknown>, finish: string | null = null, usage: unknown = null) =>
  `data: ${JSON.stringify({
    id,
    object: "chat.completion.chunk",
    created: 1,
    model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    usage
  })}\n\n`

export const start = async (script: FakeEngine["script"] = () => ({})): Promise<FakeEngine> => {
  const seen: Array<Seen> = []
  const sockets = new Set<Socket>()
  let aborted = 0
  let active = 0
  let closeWaiters: Array<(t: number) => void> = []
  const engine: FakeEngine = {
    url: "",
    seen,
    openSockets: () => sockets.size,
    aborted: () => aborted,
    nextClose: () => new Promise((resolve) => closeWaiters.push(resolve)),
    active: () => active,
    script,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const parts: Array<Buffer> = []
    for await (const c of req) parts.push(c as Buffer)
    const text = Buffer.concat(parts).toString("utf8")
    const url = req.url ?? "/"
    if (req.method === "GET" && url.endsWith("/models")) {
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify({ object: "list", data: [{ id: "fake-model", object: "model" }] }))
      return
    }
    const body = text === "" ? {} : JSON.parse(text) as Record<string, unknown>
    seen.push({ path: url, headers: req.headers, body })
    const model = String(body["model"] ?? "")
    const s = engine.script(model, body, req.headers)
    let ended = false
    active++
    let onClosed: () => void = () => {}
    const closed = new Promise<void>((r) => {
      onClosed = r
    })
    res.on("close", () => {
      if (!res.writableEnded) aborted++
      ended = true
      active--
      onClosed()
      const t = performance.now()
      const w = closeWaiters
      closeWaiters = []
      for (const f of w) f(t)
    })
    if (s.holdHeaders) return closed
    if ((s.status ?? 200) !== 200) {
      if (s.firstDelayMs) await sleep(s.firstDelayMs)
      res.writeHead(s.status!, { "content-type": "application/json", ...s.headers })
      res.end(s.errorBody ?? JSON.stringify({ error: { message: `fake failure ${s.status}`, type: "server_error", param: null, code: null } }))
      return
    }
    const tokens = s.tokens ?? ["Hello", " world"]
    const usage = s.usage === undefined ? { prompt_tokens: 11, completion_tokens: tokens.length } : s.usage
    const usageJson = usage === null ? null : {
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      total_tokens: usage.prompt_tokens + usage.completion_tokens,
      prompt_tokens_details: { cached_tokens: usage.cached_tokens ?? 0 }
    }
    const id = s.id ?? `chatcmpl-${seen.length}`
    if (url.endsWith("/rerank")) {
      const docs = Array.isArray(body["documents"]) ? body["documents"] : []
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify({
        id: `rerank-${seen.length}`,
        model,
        usage: { total_tokens: 7 * docs.length },
        results: docs.map((_, index) => ({ index, relevance_score: 1 / (index + 1) }))
      }))
      return
    }
    if (url.endsWith("/embeddings")) {
      const inputs = Array.isArray(body["input"]) ? body["input"] : [body["input"]]
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify({
        object: "list",
        data: inputs.map((_, index) => ({ object: "embedding", index, embedding: [0.1, 0.2, 0.3] })),
        model,
        usage: { prompt_tokens: 5 * inputs.length, total_tokens: 5 * inputs.length }
      }))
      return
    }
    if (body["stream"] !== true) {
      if (s.firstDelayMs) await sleep(s.firstDelayMs)
      if (s.until) await s.until
      if (ended) return
      if (s.unaryBody !== undefined) {
        res.writeHead(200, { "content-type": "application/json" })
        res.end(s.unaryBody)
        return
      }
      if (s.holdAfter !== undefined) {
        res.writeHead(200, { "content-type": "application/json" })
        res.flushHeaders()
        return closed
      }
      const message: Record<string, unknown> = { role: "assistant", content: tokens.join("") }
      if (s.toolCall) {
        message["content"] = null
        message["tool_calls"] = [{ id: "call_1", type: "function", function: { name: s.toolCall.name, arguments: s.toolCall.arguments.join("") } }]
      }
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify(
        url.endsWith("/completions") && !url.endsWith("/chat/completions")
          ? { id, object: "text_completion", created: 1, model, choices: [{ index: 0, text: tokens.join(""), finish_reason: s.finishReason ?? "stop" }], ...(usageJson === null ? {} : { usage: usageJson }) }
          : { id, object: "chat.completion", created: 1, model, choices: [{ index: 0, message, finish_reason: s.toolCall ? "tool_calls" : s.finishReason ?? "stop" }], ...(usageJson === null ? {} : { usage: usageJson }) }
      ))
      return
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
    res.flushHeaders()
    if (s.firstDelayMs) await sleep(s.firstDelayMs)
    if (s.until) await s.until
    const legacy = url.endsWith("/completions") && !url.endsWith("/chat/completions")
    const write = (data: string) => {
      if (!ended) res.write(data)
    }
    if (s.toolCall) {
      write(chunk(id, model, { role: "assistant", content: null, tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: s.toolCall.name, arguments: "" } }] }))
      for (const a of s.toolCall.arguments) {
        if (s.gapMs) await sleep(s.gapMs)
        write(chunk(id, model, { tool_calls: [{ index: 0, function: { arguments: a } }] }))
      }
      write(chunk(id, model, {}, "tool_calls"))
    } else {
      for (let i = 0; i < tokens.length; i++) {
        if (ended) return
        if (i > 0 && s.gapMs) await sleep(s.gapMs)
        if (s.pauseAfter?.tokens === i) {
          await s.pauseAfter.until
          if (ended) return
        }
        if (s.errorAfter === i) {
          write(`data: ${JSON.stringify({ error: { message: "engine died mid-stream", type: "InternalServerError", code: 500 } })}\n\n`)
          res.end()
          return
        }
        if (s.stallAfter === i) return
        if (s.holdAfter === i) return closed
        if (s.resetAfter === i) {
          res.socket?.destroy()
          return
        }
        if (s.malformedAfter === i) write("data: {not json\n\n")
        write(legacy
          ? `data: ${JSON.stringify({ id, object: "text_completion", created: 1, model, choices: [{ index: 0, text: tokens[i], finish_reason: null }] })}\n\n`
          : chunk(id, model, i === 0 ? { role: "assistant", content: tokens[i] } : { content: tokens[i] }))
      }
      if (s.stallAfter === tokens.length) return
      if (s.holdAfter === tokens.length) return closed
      write(legacy
        ? `data: ${JSON.stringify({ id, object: "text_completion", created: 1, model, choices: [{ index: 0, text: "", finish_reason: s.finishReason ?? "stop" }] })}\n\n`
        : chunk(id, model, {}, s.finishReason ?? "stop"))
    }
    const so = body["stream_options"] as { include_usage?: boolean } | undefined
    if (so?.include_usage && usageJson !== null) {
      write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 1, model, choices: [], usage: usageJson })}\n\n`)
    }
    write("data: [DONE]\n\n")
    if (!ended) res.end()
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy())
  })
  server.on("connection", (socket: Socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()))
  const port = (server.address() as AddressInfo).port
  ;(engine as { url: string }).url = `http://127.0.0.1:${port}/v1`
  return engine
}
