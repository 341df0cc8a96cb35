/**
 * Admission of a generation request, shared by every dialect: cold start, context-length check, injected
 * pre-first-token errors, output planning, then hand-off to a `Generation`.
 *
 * Owns: the order of those checks and the `max_tokens` defaulting rule (see outputs.ts).
 * Must never: render a dialect's envelope itself; each dialect passes its `ErrorSender`.
 */
import type { ServerResponse } from "node:http"
import { DEFAULT_MAX_TOKENS, planOutput, type ToolChoice } from "../outputs.ts"
import { type Encoder, Generation } from "./generation.ts"
import { pull, type TransferRequest } from "./transfer.ts"
import type { SimContext } from "./wire.ts"

export type ErrorKind = "invalid_request" | "not_found" | "rate_limit" | "overloaded" | "server" | "loading"

/** Sends a dialect's error envelope. */
export type ErrorSender = (
  res: ServerResponse,
  status: number,
  kind: ErrorKind,
  message: string,
  headers?: Readonly<Record<string, string>>
) => void

export interface GenerationRequest {
  readonly prompt: Uint32Array
  /** As requested (undefined when absent). */
  readonly maxTokens: number | undefined
  /** `sim_output_tokens` extension. */
  readonly forcedTokens: number | undefined
  readonly requestSeed: number | undefined
  readonly tool: ToolChoice | undefined
  readonly stream: boolean
  readonly includeUsage: boolean
  readonly rid: string | undefined
  /** P/D: the request's `kv_transfer_params` (OpenAI dialect), and the Host it was sent to. */
  readonly transfer?: TransferRequest | undefined
  readonly host?: string | undefined
}

export interface AdmitOptions {
  readonly idPrefix: string
  readonly toolIdPrefix: string
  readonly encoder: Encoder
  readonly errors: ErrorSender
  /** Message for a context overflow (dialects word it differently). */
  readonly tooLong: (promptTokens: number, maxTokens: number, maxModelLen: number) => string
}

/** Rejects with the dialect's "model is loading" error when the instance is in its cold start. */
export const rejectIfLoading = (ctx: SimContext, res: ServerResponse, errors: ErrorSender): boolean => {
  if (!ctx.faults.isLoading(ctx.nowMs())) return false
  const retry = String(Math.max(1, Math.ceil(ctx.faults.loadingRemainingSeconds(ctx.nowMs()))))
  errors(res, 503, "loading", "The model is still loading; try again later.", { "retry-after": retry })
  return true
}

/** Sends the injected pre-first-token error chosen by `errorStatus`. */
export const sendInjectedError = (ctx: SimContext, res: ServerResponse, errors: ErrorSender): void => {
  const f = ctx.faults.current
  const retry = { "retry-after": String(f.retryAfterSeconds) }
  if (f.errorStatus === 429) errors(res, 429, "rate_limit", "Too many requests: rate limit exceeded.", retry)
  else if (f.errorStatus === 503) errors(res, 503, "overloaded", "The server is overloaded; retry later.", retry)
  else errors(res, 500, "server", "Internal server error (injected fault).")
}

export const admitGeneration = (
  ctx: SimContext,
  res: ServerResponse,
  request: GenerationRequest,
  options: AdmitOptions
): void => {
  if (rejectIfLoading(ctx, res, options.errors)) return
  const maxLen = ctx.profile.maxModelLen
  const promptTokens = request.prompt.length
  if (request.maxTokens !== undefined && request.maxTokens < 1) {
    return options.errors(res, 400, "invalid_request", "max_tokens must be at least 1, got " + request.maxTokens)
  }
  const room = maxLen - promptTokens
  if (room < 1 || (request.maxTokens !== undefined && request.maxTokens > room)) {
    const msg = options.tooLong(promptTokens, request.maxTokens ?? 0, maxLen)
    return options.errors(res, 400, "invalid_request", msg)
  }
  const maxTokens = Math.min(request.maxTokens ?? request.forcedTokens ?? DEFAULT_MAX_TOKENS, room)
  const faults = ctx.faults.drawRequest()
  if (faults.failBeforeFirstToken) return sendInjectedError(ctx, res, options.errors)
  const plan = planOutput({
    prompt: request.prompt,
    maxTokens,
    seed: ctx.seed,
    requestSeed: request.requestSeed,
    forcedTokens: request.forcedTokens,
    degenerate: faults.degenerate,
    tool: request.tool
  })
  const epochMs = ctx.epochMs()
  const generation = new Generation(
    ctx,
    res,
    options.encoder,
    {
      id: ctx.nextId(options.idPrefix),
      model: ctx.model,
      createdSec: Math.floor(epochMs / 1000),
      createdMs: epochMs,
      stream: request.stream,
      includeUsage: request.includeUsage,
      plan,
      prompt: request.prompt,
      toolCallId: ctx.nextId(options.toolIdPrefix),
      rid: request.rid
    },
    faults
  )
  const transfer = request.transfer
  if (transfer?._tag === "RemoteDecode") generation.remoteDecode = { host: request.host }
  if (transfer?._tag !== "RemotePrefill") return generation.submit()
  // Decode leg of a disaggregated request: pull the KV first, then admit with it already computed.
  pull(ctx, res, transfer, (tokens) => {
    if (!res.destroyed && !res.writableEnded) generation.submit(tokens)
  })
}
