/**
 * `/v1/embeddings`: deterministic unit vectors (same input ⇒ same vector), float or base64, with token usage.
 *
 * Owns: the embedding request/response shapes. The request does not enter the batch scheduler: it answers after
 * the time one prefill of its tokens would take (`c0 + c_pf·tokens`, scaled by the time scale).
 * Must never: return vectors that depend on anything but the input tokens, the dimension and the seed.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { hashTokens, makeRng } from "../engine/random.ts"
import { completionPromptTokens } from "../tokens.ts"
import { rejectIfLoading, sendInjectedError } from "./admit.ts"
import { openaiErrors } from "./openai.ts"
import { isRecord, num, readJson, sendJson, type SimContext, str } from "./wire.ts"

const isTokens = (u: unknown): u is ReadonlyArray<number> => Array.isArray(u) && u.every((x) => typeof x === "number")

const isInput = (u: unknown): u is string | ReadonlyArray<number> => typeof u === "string" || isTokens(u)

const inputsOf = (input: unknown): ReadonlyArray<string | ReadonlyArray<number>> | undefined => {
  if (isInput(input)) return [input]
  if (Array.isArray(input) && input.length > 0 && input.every(isInput)) return input
  return undefined
}

/** A deterministic unit vector for a token sequence. */
export const embeddingVector = (tokens: Uint32Array, dims: number, seed: number): Float32Array => {
  const rng = makeRng(hashTokens(tokens, seed))
  const v = new Float32Array(dims)
  let norm = 0
  for (let i = 0; i < dims; i++) {
    const x = rng() * 2 - 1
    v[i] = x
    norm += x * x
  }
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0
  for (let i = 0; i < dims; i++) v[i] = v[i]! * scale
  return v
}

/** Simulated time of one embedding batch (one prefill of its tokens), in wall ms. */
export const embedDelayMs = (ctx: SimContext, tokens: number): number => {
  const p = ctx.profile
  return ((p.c0Ms + p.prefillMsPerToken * tokens) * ctx.faults.current.slow) / ctx.timeScale
}

/** Sends `body` after `delayMs`, unless the client hangs up first. */
export const replyLater = (res: ServerResponse, delayMs: number, body: unknown): void => {
  const timer = setTimeout(() => sendJson(res, 200, body), delayMs)
  res.on("close", () => clearTimeout(timer))
}

export const handleEmbeddings = (ctx: SimContext, req: IncomingMessage, res: ServerResponse): void =>
  readJson(req, (m) => openaiErrors(res, 400, "invalid_request", m), (raw) => {
    if (!isRecord(raw)) return openaiErrors(res, 400, "invalid_request", "Invalid request body")
    const model = str(raw, "model")
    if (model !== ctx.model) return openaiErrors(res, 404, "not_found", `The model \`${model ?? ""}\` does not exist.`)
    const inputs = inputsOf(raw["input"])
    if (inputs === undefined) {
      return openaiErrors(res, 400, "invalid_request", "input: a string, a list of strings or token lists")
    }
    const format = str(raw, "encoding_format") ?? "float"
    if (format !== "float" && format !== "base64") {
      return openaiErrors(res, 400, "invalid_request", "encoding_format must be 'float' or 'base64'")
    }
    const dims = num(raw, "dimensions") ?? ctx.profile.hiddenSize
    if (!Number.isInteger(dims) || dims < 1 || dims > ctx.profile.hiddenSize) {
      return openaiErrors(res, 400, "invalid_request", `dimensions must be between 1 and ${ctx.profile.hiddenSize}`)
    }
    if (rejectIfLoading(ctx, res, openaiErrors)) return
    if (ctx.faults.drawRequest().failBeforeFirstToken) return sendInjectedError(ctx, res, openaiErrors)
    let tokens = 0
    const data = inputs.map((input, index) => {
      const ids = completionPromptTokens(input)
      tokens += ids.length
      const v = embeddingVector(ids, dims, ctx.seed)
      const embedding = format === "base64" ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : Array.from(v)
      return { object: "embedding", index, embedding }
    })
    const epochMs = ctx.epochMs()
    const body = {
      id: ctx.nextId("embd-"),
      object: "list",
      created: Math.floor(epochMs / 1000),
      model: ctx.model,
      data,
      usage: { prompt_tokens: tokens, total_tokens: tokens, completion_tokens: 0 }
    }
    replyLater(res, embedDelayMs(ctx, tokens), body)
  })
