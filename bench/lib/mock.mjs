/**
 * The mock upstream: a raw `node:http` OpenAI-compatible engine that answers instantly
 * from pre-built bytes, so it is never the bottleneck. It runs inside the harness
 * process, next to the load generator, so one clock (`performance.now()`) times both
 * ends of an abort.
 *
 *   GET  /v1/models                    the one model, `bench-model`
 *   GET  /metrics                      vLLM-named load gauges (running = open streams)
 *   POST /v1/traces                    OTLP sink (answers {} and counts)
 *   POST /v1/chat/completions          non-streaming: a fixed small JSON with usage
 *                                      streaming: SSE per `mock.mode` (see setMode)
 *   POST /v1/completions, /v1/embeddings  fixed small JSON (not used by the figures)
 *
 * Streaming modes (the harness switches them between phases; requests keep the mode
 * they started with):
 *   finite  `chunks` content events `intervalMs` apart (the first at once), then
 *           finish + usage (only when the request asked for it) + [DONE] in one write
 *   endless a content event every `intervalMs` until the client goes away
 *   hold    one content event at once, then one every `holdIntervalMs` until the client goes away
 *
 * Content event i carries `"content":"t<i>"` so the client can tell events apart and
 * detect coalescing. With `track` on, every streaming request is recorded by its
 * `x-request-id` with the time the engine could first tell the client was gone (its
 * socket saw EOF, a reset or a close) and whether the response had finished.
 * It owns its server and timers; it never measures latency itself.
 */
import http from "node:http"
import { performance } from "node:perf_hooks"

export const MODEL = "bench-model"
const CREATED = 1700000000

const chatJson = Buffer.from(JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  created: CREATED,
  model: MODEL,
  choices: [{ index: 0, message: { role: "assistant", content: "Hello! This is a small fixed answer." }, finish_reason: "stop" }],
  usage: { prompt_tokens: 24, completion_tokens: 9, total_tokens: 33 }
}))
const completionJson = Buffer.from(JSON.stringify({
  id: "cmpl-bench",
  object: "text_completion",
  created: CREATED,
  model: MODEL,
  choices: [{ index: 0, text: "Hello! This is a small fixed answer.", finish_reason: "stop" }],
  usage: { prompt_tokens: 8, completion_tokens: 9, total_tokens: 17 }
}))
const embeddingJson = Buffer.from(JSON.stringify({
  object: "list",
  data: [{ object: "embedding", index: 0, embedding: [0.1, 0.2, 0.3, 0.4] }],
  model: MODEL,
  usage: { prompt_tokens: 8, total_tokens: 8 }
}))
const modelsJson = Buffer.from(JSON.stringify({
  object: "list",
  data: [{ id: MODEL, object: "model", created: CREATED, owned_by: "bench" }]
}))

const PREFIX = `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":${CREATED},"model":"${MODEL}","choices":[{"index":0,"delta":{`
const contentEvent = (i) =>
  i === 0
    ? `${PREFIX}"role":"assistant","content":"t0"},"finish_reason":null}]}\n\n`
    : `${PREFIX}"content":"t${i}"},"finish_reason":null}]}\n\n`
const finishEvent = `${PREFIX}},"finish_reason":"stop"}]}\n\n`
const usageEvent = (n) =>
  `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":${CREATED},"model":"${MODEL}","choices":[],"usage":{"prompt_tokens":24,"completion_tokens":${n},"total_tokens":${24 + n}}}\n\n`
const doneEvent = "data: [DONE]\n\n"
const contentCache = Array.from({ length: 64 }, (_, i) => Buffer.from(contentEvent(i)))
const content = (i) => (i < contentCache.length ? contentCache[i] : contentEvent(i))

const STREAM_RE = /"stream"\s*:\s*true/
const USAGE_RE = /"include_usage"\s*:\s*true/

const jsonHeaders = (body) => ({ "content-type": "application/json", "content-length": body.length })

export const startMock = (host = "127.0.0.1") =>
  new Promise((resolve, reject) => {
    const mock = {
      mode: { kind: "finite", chunks: 10, intervalMs: 20, holdIntervalMs: 5000 },
      track: false,
      /** x-request-id → { openAt, closeAt, completed } (only while `track`). */
      streams: new Map(),
      /** The streaming responses currently open (always tracked). */
      live: new Set(),
      get openStreams() {
        return this.live.size
      },
      counts: { unary: 0, streams: 0, usageAsked: 0, scrapes: 0, traces: 0 },
      server: undefined,
      url: undefined,
      port: undefined,
      setMode(mode) {
        this.mode = { ...this.mode, ...mode }
      },
      /**
       * Finishes every stream still open (as an engine reaching its end would) and returns
       * how many there were. The abort group calls it after each measured run: a target that
       * never stops its upstream when the client leaves (Portkey) would otherwise leave
       * thousands of endless streams running, whose sockets use up the harness's open-file
       * limit and fail the next target's run with EMFILE.
       */
      endOpen() {
        const n = this.live.size
        for (const res of this.live) if (!res.destroyed && !res.writableEnded) res.end(finishEvent + doneEvent)
        return n
      },
      close() {
        return new Promise((r) => {
          this.server.closeAllConnections?.()
          this.server.close(() => r())
        })
      }
    }

    const stream = (req, res, body) => {
      const mode = mock.mode
      const wantsUsage = USAGE_RE.test(body)
      mock.counts.streams++
      if (wantsUsage) mock.counts.usageAsked++
      mock.live.add(res)
      let record
      if (mock.track) {
        const id = req.headers["x-request-id"] ?? `anon-${mock.counts.streams}`
        record = { openAt: performance.now(), closeAt: undefined, completed: false }
        mock.streams.set(id, record)
        // The engine learns the client left at the first sign on its socket (EOF, reset,
        // close), which node:http reports as the response's 'close' only a few loop turns later.
        const socket = req.socket
        const mark = () => {
          if (record.closeAt === undefined) record.closeAt = performance.now()
        }
        socket.once("end", mark)
        socket.once("error", mark)
        socket.once("close", mark)
        res.once("finish", () => {
          record.completed = true
          socket.off("end", mark)
          socket.off("error", mark)
          socket.off("close", mark)
        })
      }
      let timer
      let i = 0
      res.on("close", () => {
        mock.live.delete(res)
        clearTimeout(timer)
        if (record !== undefined && record.closeAt === undefined) record.closeAt = performance.now()
      })
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
      const start = performance.now()
      const interval = mode.kind === "hold" ? mode.holdIntervalMs : mode.intervalMs
      const tick = () => {
        if (res.destroyed || res.writableEnded) return
        if (mode.kind === "finite" && i >= mode.chunks) {
          res.end(finishEvent + (wantsUsage ? usageEvent(mode.chunks) : "") + doneEvent)
          return
        }
        res.write(content(i))
        i++
        // drift-free schedule: event i at start + i * interval
        const next = start + i * interval - performance.now()
        timer = setTimeout(tick, Math.max(0, next))
      }
      tick()
    }

    const server = http.createServer({ keepAliveTimeout: 120_000, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
      if (req.method === "GET") {
        if (req.url === "/v1/models") return res.writeHead(200, jsonHeaders(modelsJson)).end(modelsJson)
        if (req.url === "/metrics") {
          // vLLM's names, so a gateway scraping engine load sees live numbers
          mock.counts.scrapes++
          const text = `# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="${MODEL}"} ${mock.openStreams}\n` +
            `# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name="${MODEL}"} 0\n` +
            `# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name="${MODEL}"} 0.1\n` +
            `# TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total{model_name="${MODEL}"} ${mock.counts.unary + mock.counts.streams}\n` +
            `# TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total{model_name="${MODEL}"} 0\n`
          return res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(text)
        }
        if (req.url === "/health" || req.url === "/health/ready") return res.writeHead(200).end()
        return res.writeHead(404).end()
      }
      const chunks = []
      req.on("data", (c) => chunks.push(c))
      req.on("end", () => {
        const body = chunks.length === 1 ? chunks[0].toString("latin1") : Buffer.concat(chunks).toString("latin1")
        if (req.url === "/v1/chat/completions") {
          if (STREAM_RE.test(body)) return stream(req, res, body)
          mock.counts.unary++
          return res.writeHead(200, jsonHeaders(chatJson)).end(chatJson)
        }
        if (req.url === "/v1/traces") {
          // OTLP/HTTP sink for `--otel` runs
          mock.counts.traces++
          return res.writeHead(200, { "content-type": "application/json", "content-length": 2 }).end("{}")
        }
        if (req.url === "/v1/completions") return res.writeHead(200, jsonHeaders(completionJson)).end(completionJson)
        if (req.url === "/v1/embeddings") return res.writeHead(200, jsonHeaders(embeddingJson)).end(embeddingJson)
        res.writeHead(404).end()
      })
    })
    server.maxHeadersCount = 0
    server.on("error", reject)
    server.listen(0, host, () => {
      mock.server = server
      mock.port = server.address().port
      mock.url = `http://${host}:${mock.port}`
      resolve(mock)
    })
  })
