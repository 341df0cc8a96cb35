/**
 * Test harness shared by the examples' tests, written the way an embedder would: the gateway
 * is started through the public API (`Gateway.embedded`, a Layer) on a free port, and the
 * engine behind it is a small OpenAI-compatible fake on a real socket (node:http), scripted
 * per request and recording what it received.
 *
 * Owns the fake engine's sockets and the gateway's runtime. Must never: import anything of
 * Sluice but the public API (`sluice`).
 */
import { ManagedRuntime } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo, Socket } from "node:net"
import { Gateway } from "sluice"

/** The gateway, embedded in this process, listening on a free loopback port. */
export const startGateway = async (yaml: string, extensions?: Gateway.EmbedOptions["extensions"]) => {
  const runtime = ManagedRuntime.make(Gateway.embedded({
    config: { yaml, source: "example.yaml" },
    host: "127.0.0.1",
    port: 0,
    logLevel: "none",
    extensions
  }))
  const url = await runtime.runPromise(Gateway.address)
  return {
    url,
    chat: (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body)
      }),
    metrics: () => fetch(`${url}/metrics`).then((r) => r.text()),
    close: () => runtime.dispose()
  }
}

/** What a fake engine does for one request. */
export interface Script {
  /** Text chunks, one SSE event each (streamed) or joined (unary). */
  readonly tokens: ReadonlyArray<string>
  /** Milliseconds between two chunks. */
  readonly gapMs?: number
  /** After this many chunks, send nothing more until the gateway closes the stream. */
  readonly holdAfter?: number
}

export interface Received {
  readonly path: string
  readonly body: { readonly [key: string]: unknown }
}

/** Reads a request body as JSON (an object, else empty). */
export const readJson = async (req: IncomingMessage): Promise<{ readonly [key: string]: unknown }> => {
  const parts: Array<Buffer> = []
  for await (const c of req) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)))
  const text = Buffer.concat(parts).toString("utf8")
  const parsed: unknown = text === "" ? {} : JSON.parse(text)
  return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? { ...parsed } : {}
}

/** A node:http server on a free loopback port, with the sockets it has open. */
export const listen = async (handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>) => {
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy())
  })
  server.on("connection", (socket: Socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? (address satisfies AddressInfo).port : 0
  return {
    origin: `http://127.0.0.1:${port}`,
    openSockets: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      })
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A fake OpenAI-compatible engine (chat completions, streamed or not, with usage). */
export const fakeOpenAI = async (script: (body: Received["body"]) => Script = () => ({ tokens: ["Hello", " world"] })) => {
  const received: Array<Received> = []
  let aborted = 0
  const server = await listen(async (req, res) => {
    const path = req.url ?? "/"
    if (req.method === "GET") {
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify({ object: "list", data: [] }))
      return
    }
    const body = await readJson(req)
    received.push({ path, body })
    const s = script(body)
    const model = String(body["model"] ?? "")
    const usage = { prompt_tokens: 10, completion_tokens: s.tokens.length, total_tokens: 10 + s.tokens.length }
    if (body["stream"] !== true) {
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify({
        id: "chatcmpl-1",
        object: "chat.completion",
        created: 1,
        model,
        choices: [{ index: 0, message: { role: "assistant", content: s.tokens.join("") }, finish_reason: "stop" }],
        usage
      }))
      return
    }
    let closed = false
    let onClosed = () => {}
    const gone = new Promise<void>((resolve) => (onClosed = resolve))
    res.on("close", () => {
      if (!res.writableEnded) aborted++
      closed = true
      onClosed()
    })
    res.writeHead(200, { "content-type": "text/event-stream" })
    const event = (delta: { readonly [key: string]: unknown }, finish: string | null, u: unknown = null) =>
      `data: ${JSON.stringify({ id: "chatcmpl-1", object: "chat.completion.chunk", created: 1, model, choices: [{ index: 0, delta, finish_reason: finish }], usage: u })}\n\n`
    for (let i = 0; i < s.tokens.length && !closed; i++) {
      if (i === s.holdAfter) return gone
      if (i > 0 && s.gapMs !== undefined) await sleep(s.gapMs)
      res.write(event(i === 0 ? { role: "assistant", content: s.tokens[i] } : { content: s.tokens[i] }, null))
    }
    if (closed) return
    res.write(event({}, "stop"))
    res.write(`data: ${JSON.stringify({ id: "chatcmpl-1", object: "chat.completion.chunk", created: 1, model, choices: [], usage })}\n\n`)
    res.end("data: [DONE]\n\n")
  })
  return {
    url: `${server.origin}/v1`,
    received,
    /** Streams the gateway closed before their end (it stopped reading). */
    aborted: () => aborted,
    openSockets: server.openSockets,
    close: server.close
  }
}

/** An SSE response read to its end: the text of its deltas, and its error events. */
export const readStream = async (res: Response) => {
  const text = await res.text()
  let content = ""
  const errors: Array<{ readonly code?: unknown; readonly message?: unknown }> = []
  for (const line of text.split("\n")) {
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue
    const event: unknown = JSON.parse(line.slice(6))
    if (typeof event !== "object" || event === null) continue
    if ("error" in event && typeof event.error === "object" && event.error !== null) errors.push({ ...event.error })
    if ("choices" in event && Array.isArray(event.choices)) {
      for (const choice of event.choices) {
        const delta: unknown = choice?.delta
        if (typeof delta === "object" && delta !== null && "content" in delta && typeof delta.content === "string") {
          content += delta.content
        }
      }
    }
  }
  return { content, errors, raw: text }
}

/** Polls until `check` holds or `ms` pass; returns the last value. */
export const eventually = async <A>(f: () => Promise<A>, check: (a: A) => boolean, ms = 3000): Promise<A> => {
  const start = performance.now()
  let last = await f()
  while (!check(last) && performance.now() - start < ms) {
    await sleep(10)
    last = await f()
  }
  return last
}

/** The value of a Prometheus sample whose line starts with `name{` and contains every label given. */
export const sample = (text: string, name: string, labels: Record<string, string> = {}): number | undefined => {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue
    const value = Number(line.slice(line.lastIndexOf(" ") + 1))
    if (Number.isFinite(value)) return value
  }
  return undefined
}
