/**
 * `/v1/embeddings`: deterministic unit vectors (same input ⇒ same vector), float or base64, with token usage.
 *
 * Owns: the embedding request/response shapes, and the bound on a batch: at most `MAX_EMBEDDING_INPUTS` inputs
 * (OpenAI's documented limit), a larger one gets a 400 in the dialect's envelope. The answer is written one
 * vector at a time as the socket drains, never built as one string (2,048 inputs × 8,192 dimensions is ~350 MB
 * of JSON; building it once threw `RangeError: Invalid string length` from a timer and killed the process).
 * The request does not enter the batch scheduler: it answers after the time one prefill of its tokens would
 * take (`c0 + c_pf·tokens`, scaled by the time scale).
 * Must never: return vectors that depend on anything but the input tokens, the dimension and the seed.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { hashTokens, makeRng } from "../engine/random.ts"
import { completionPromptTokens } from "../tokens.ts"
import { rejectIfLoading, sendInjectedError } from "./admit.ts"
import { openaiErrors } from "./openai.ts"
import { isRecord, num, readJson, type SimContext, str } from "./wire.ts"

/** Inputs per embedding request at most; more is refused with 400 (OpenAI's own limit). */
export const MAX_EMBEDDING_INPUTS = 2048

/** The 400 message for a batch over the limit (each dialect wraps it in its own envelope). */
export const tooManyInputs = (n: number): string =>
  `input: ${n} inputs in one request; at most ${MAX_EMBEDDING_INPUTS} are accepted`

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

/**
 * After `delayMs` (unless the client hangs up first), sends `shell` with `items` as the value of its `key`
 * array, written one item at a time and only as fast as the socket drains: memory stays one item, whatever
 * the batch. `shell` must hold `key: []`; the items are rendered lazily.
 */
export const replyItemsLater = (
  res: ServerResponse,
  delayMs: number,
  shell: Readonly<Record<string, unknown>>,
  key: string,
  count: number,
  item: (index: number) => unknown
): void => {
  const text = JSON.stringify(shell)
  const marker = `${JSON.stringify(key)}:[]`
  const at = text.indexOf(marker) + marker.length - 1
  const head = text.slice(0, at)
  const tail = text.slice(at)
  let next = 0
  const pump = (): void => {
    while (!res.destroyed) {
      if (next === count) {
        res.end(tail)
        return
      }
      const i = next++
      if (!res.write((i === 0 ? "" : ",") + JSON.stringify(item(i)))) {
        res.once("drain", pump)
        return
      }
    }
  }
  const timer = setTimeout(() => {
    if (res.headersSent || res.destroyed) return
    res.writeHead(200, { "content-type": "application/json" })
    res.write(head)
    pump()
  }, delayMs)
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
    if (inputs.length > MAX_EMBEDDING_INPUTS) return openaiErrors(res, 400, "invalid_request", tooManyInputs(inputs.length))
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
    const ids = inputs.map((input) => {
      const t = completionPromptTokens(input)
      tokens += t.length
      return t
    })
    const epochMs = ctx.epochMs()
    const shell = {
      id: ctx.nextId("embd-"),
      object: "list",
      created: Math.floor(epochMs / 1000),
      model: ctx.model,
      data: [],
      usage: { prompt_tokens: tokens, total_tokens: tokens, completion_tokens: 0 }
    }
    replyItemsLater(res, embedDelayMs(ctx, tokens), shell, "data", ids.length, (index) => {
      const v = embeddingVector(ids[index]!, dims, ctx.seed)
      const embedding = format === "base64" ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : Array.from(v)
      return { object: "embedding", index, embedding }
    })
  })
