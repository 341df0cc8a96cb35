/**
 * The load generator's client: streams chat completions through the gateway and records,
 * per request, what a user would see: time to first token, the gap before every later
 * token, output tokens, the engine-reported cached prompt tokens, and how it ended.
 *
 * Open loop: a request's clock starts at its scheduled send time, not when the socket got
 * to it (no coordinated omission). Plain node:http with a keep-alive agent; SSE is scanned
 * with string searches (one JSON.parse per request for the usage chunk, and per token only
 * when the workload needs the answer's text). Must never: retry, or hide a failure.
 */
import { Agent, request as httpRequest } from "node:http"
import type { Request } from "./workloads.ts"

export interface Outcome {
  readonly req: Request
  /** Wall ms (performance.now) of the scheduled send. */
  readonly sentAt: number
  /** Wall ms to the first token, undefined when none arrived. */
  readonly ttftMs: number | undefined
  /** Wall ms between consecutive tokens. */
  readonly gaps: Array<number>
  /** Wall ms (performance.now) of each token (for throughput windows). */
  readonly tokenTimes: Array<number>
  readonly outputTokens: number
  readonly cachedTokens: number
  readonly promptTokens: number
  readonly status: "ok" | "failed" | "unfinished"
  readonly error: string | undefined
  readonly backend: string | undefined
  readonly text: string
}

const agent = new Agent({ keepAlive: true, maxSockets: Infinity })

const CONTENT = "\"content\":\""

/** Sends `req` now (its clock started at `sentAt`); resolves when the stream ends or `abort` fires. */
export const stream = (
  base: string,
  req: Request,
  sentAt: number,
  collectText: boolean,
  abort: AbortSignal
): Promise<Outcome> =>
  new Promise((resolve) => {
    const body = JSON.stringify({
      model: req.model,
      messages: req.messages,
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: req.maxTokens,
      sim_output_tokens: req.outputTokens,
      ...(req.user === undefined ? {} : { user: req.user })
    })
    const gaps: Array<number> = []
    const tokenTimes: Array<number> = []
    let first: number | undefined
    let last = 0
    let tokens = 0
    let cached = 0
    let prompt = 0
    let error: string | undefined
    let text = ""
    let backend: string | undefined
    let buffer = ""
    let settled = false
    const finish = (status: Outcome["status"]) => {
      if (settled) return
      settled = true
      resolve({
        req,
        sentAt,
        ttftMs: first === undefined ? undefined : first - sentAt,
        gaps,
        tokenTimes,
        outputTokens: tokens,
        cachedTokens: cached,
        promptTokens: prompt,
        status: error !== undefined ? "failed" : status,
        error,
        backend,
        text
      })
    }
    /** Tokens that arrived in the current socket read (their gap is shared out evenly, see below). */
    let readTokens = 0
    /** Tokens that came in the same read as the first one: their gaps are shared out with the next read's. */
    let carried = 0
    const onEvent = (data: string, now: number) => {
      if (data === "[DONE]") return
      if (data.startsWith("{\"error\"") || data.includes("\"error\":{")) {
        error = data.slice(0, 200)
        return
      }
      const c = data.indexOf(CONTENT)
      if (c >= 0 && data.charCodeAt(c + CONTENT.length) !== 34 /* empty "" */) {
        tokens++
        readTokens++
        tokenTimes.push(now)
        if (first === undefined) first = now
        if (collectText) {
          const parsed = JSON.parse(data) as { choices: Array<{ delta: { content?: string } }> }
          text += parsed.choices[0]?.delta.content ?? ""
        }
        return
      }
      if (data.includes("\"usage\":{")) {
        const u = (JSON.parse(data) as { usage: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens?: number } } }).usage
        prompt = u.prompt_tokens
        cached = u.prompt_tokens_details?.cached_tokens ?? 0
      }
    }
    const r = httpRequest(`${base}/v1/chat/completions`, {
      method: "POST",
      agent,
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) }
    }, (res) => {
      backend = typeof res.headers["x-sluice-backend"] === "string" ? res.headers["x-sluice-backend"] : undefined
      if (res.statusCode !== 200) {
        let errBody = ""
        res.setEncoding("utf8")
        res.on("data", (d: string) => (errBody += d))
        res.on("end", () => {
          error = `HTTP ${res.statusCode}: ${errBody.slice(0, 200)}`
          finish("failed")
        })
        return
      }
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        const now = performance.now()
        const hadFirst = first !== undefined
        buffer += chunk
        readTokens = 0
        let end: number
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          if (event.startsWith("data: ")) onEvent(event.slice(6), now)
        }
        // Several tokens in one read were produced by several engine steps and coalesced on the
        // way (socket buffers, a busy event loop): share the time since the previous token evenly
        // between them, so the inter-token figures describe the token cadence, not read batching.
        if (!hadFirst) {
          if (readTokens > 0) {
            carried = readTokens - 1
            last = now
          }
        } else if (readTokens > 0) {
          const n = readTokens + carried
          carried = 0
          const gap = (now - last) / n
          for (let i = 0; i < n; i++) gaps.push(gap)
          last = now
        }
      })
      res.on("end", () => finish("ok"))
      res.on("error", (e) => {
        error ??= `stream: ${e.message}`
        finish("failed")
      })
    })
    r.on("error", (e) => {
      if (abort.aborted) return finish("unfinished")
      error ??= `request: ${e.message}`
      finish("failed")
    })
    abort.addEventListener("abort", () => {
      if (settled) return
      r.destroy()
      finish("unfinished")
    }, { once: true })
    r.end(body)
  })
