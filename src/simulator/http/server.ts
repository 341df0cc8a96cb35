/**
 * The simulator's HTTP server: routes per dialect, health, metrics, admin, and connection bookkeeping
 * (open-connection count, resets on a crash).
 *
 * Plain `node:http` (see wire.ts for why). Dialect switch: "openai" (vLLM flavour: OpenAI routes + vLLM
 * metrics), "sglang" (OpenAI routes + SGLang metrics + /abort_request), "anthropic" (/v1/messages, no
 * /metrics), "ollama" (/api/*, plus Ollama's OpenAI-compatible routes, no /metrics).
 * Must never: hold per-request state (generation.ts does), or block on anything but the socket.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { crashEngine } from "../crash.ts"
import type { ErrorSender } from "./admit.ts"
import { handleAbortRequest, handleAdmin } from "./admin.ts"
import { anthropicErrors, handleMessages } from "./anthropic.ts"
import { handleEmbeddings } from "./embeddings.ts"
import { renderSglangMetrics, renderVllmMetrics } from "./metrics.ts"
import { handleOllamaChat, handleOllamaEmbed, handleOllamaGenerate, handlePs, handleTags, ollamaErrors } from "./ollama.ts"
import { handleChat, handleCompletion, handleModels, openaiErrors } from "./openai.ts"
import { handlePull } from "./transfer.ts"
import { sendJson, sendText, type SimContext } from "./wire.ts"

const errorsFor = (ctx: SimContext): ErrorSender =>
  ctx.dialect === "anthropic" ? anthropicErrors : ctx.dialect === "ollama" ? ollamaErrors : openaiErrors

const health = (ctx: SimContext, res: ServerResponse): void => {
  if (ctx.faults.isLoading(ctx.nowMs())) {
    errorsFor(ctx)(res, 503, "loading", "Loading model")
    return
  }
  sendText(res, 200, "")
}

const openaiRoutes = (ctx: SimContext, req: IncomingMessage, res: ServerResponse, key: string): boolean => {
  switch (key) {
    case "POST /v1/chat/completions":
      handleChat(ctx, req, res)
      return true
    case "POST /v1/completions":
      handleCompletion(ctx, req, res)
      return true
    case "POST /v1/embeddings":
      handleEmbeddings(ctx, req, res)
      return true
    case "GET /v1/models":
      handleModels(ctx, res)
      return true
    default:
      return false
  }
}

const dialectRoutes = (ctx: SimContext, req: IncomingMessage, res: ServerResponse, key: string): boolean => {
  switch (ctx.dialect) {
    case "openai":
      if (key === "GET /metrics") return (sendText(res, 200, renderVllmMetrics(ctx), "text/plain; version=0.0.4"), true)
      if (key === "GET /version") return (sendJson(res, 200, { version: "0.10.1-sim" }), true)
      return openaiRoutes(ctx, req, res, key)
    case "sglang":
      if (key === "GET /metrics") return (sendText(res, 200, renderSglangMetrics(ctx), "text/plain; version=0.0.4"), true)
      if (key === "POST /abort_request") return (handleAbortRequest(ctx, req, res), true)
      if (key === "GET /health_generate") return (health(ctx, res), true)
      if (key === "GET /get_model_info") {
        return (sendJson(res, 200, { model_path: ctx.profile.modelPath, is_generation: true }), true)
      }
      return openaiRoutes(ctx, req, res, key)
    case "anthropic":
      if (key === "POST /v1/messages") return (handleMessages(ctx, req, res), true)
      if (key === "GET /v1/models") {
        const created = new Date(ctx.epochMs()).toISOString()
        return (sendJson(res, 200, {
          data: [{ type: "model", id: ctx.model, display_name: ctx.model, created_at: created }],
          has_more: false,
          first_id: ctx.model,
          last_id: ctx.model
        }), true)
      }
      return false
    case "ollama":
      if (key === "GET /" || key === "HEAD /") return (sendText(res, 200, "Ollama is running"), true)
      if (key === "GET /api/version") return (sendJson(res, 200, { version: "0.11.4" }), true)
      if (key === "GET /api/tags") return (handleTags(ctx, res), true)
      if (key === "GET /api/ps") return (handlePs(ctx, res), true)
      if (key === "POST /api/chat") return (handleOllamaChat(ctx, req, res), true)
      if (key === "POST /api/generate") return (handleOllamaGenerate(ctx, req, res), true)
      if (key === "POST /api/embed") return (handleOllamaEmbed(ctx, req, res), true)
      return openaiRoutes(ctx, req, res, key)
  }
}

const notFound = (ctx: SimContext, res: ServerResponse, path: string): void => {
  if (ctx.dialect === "anthropic") anthropicErrors(res, 404, "not_found", `Not found: ${path}`)
  else if (ctx.dialect === "ollama") sendText(res, 404, "404 page not found")
  else sendJson(res, 404, { detail: "Not Found" })
}

export const createSimServer = (ctx: SimContext): Server => {
  const server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    const url = req.url ?? "/"
    const q = url.indexOf("?")
    const path = q < 0 ? url : url.slice(0, q)
    const key = `${req.method ?? "GET"} ${path}`
    if (key === "GET /health") return health(ctx, res)
    if (req.method === "POST" && path.startsWith("/kv_transfer/")) {
      req.resume()
      return handlePull(ctx, res, decodeURIComponent(path.slice("/kv_transfer/".length)))
    }
    if (path.startsWith("/admin/") && handleAdmin(ctx, req, res, path)) return
    if (key === "GET /kv_events" && (ctx.dialect === "openai" || ctx.dialect === "sglang")) {
      return ctx.kvEvents.handle(req, res, q < 0 ? "" : url.slice(q + 1))
    }
    const crash = ctx.faults.current.crash
    if (crash !== "none" && req.method === "POST") {
      // The request that meets the fault never gets an answer: the engine dies under it.
      req.resume()
      return crashEngine(crash)
    }
    if (!dialectRoutes(ctx, req, res, key)) {
      req.resume()
      notFound(ctx, res, path)
    }
  })
  server.on("connection", (socket) => {
    ctx.connections.add(socket)
    socket.on("close", () => ctx.connections.delete(socket))
  })
  return server
}
