/**
 * The OpenAI-compatible adapter (OpenAI itself, vLLM, SGLang, llama.cpp, NIM, TGI's
 * Messages API): sends the attempt over the backend's pool and hands back frames or
 * the whole answer. Owns nothing beyond the attempt's scope.
 */
import { Clock, Effect } from "effect"
import * as Usage from "../../../domain/Usage.ts"
import {
  type Adapter,
  type AdapterOptions,
  finishReason,
  type ReadDeadline,
  type UnaryResult,
  unaryDeadline,
  type UpstreamCall
} from "../../Contract.ts"
import { type FailureReason, MalformedChunk, TimeToFirstTokenExceeded } from "../../Failure.ts"
import { failWith, header, readFailure, type UnaryUpstreamResponse, type UpstreamPool } from "../../Upstream.ts"
import * as Errors from "./Errors.ts"
import * as Translate from "./openai_openai.ts"
import { completionTexts } from "./Wire.ts"
import * as OpenAIStream from "./Stream.ts"

export interface Options extends AdapterOptions {
  readonly dialect: "openai" | "vllm" | "sglang" | "llamacpp" | "nim" | "tgi"
}

/** Turns a non-2xx answer into its failure reason (its body read within `within`, when given). */
export const failureOf = (res: UnaryUpstreamResponse, within?: ReadDeadline) => failWith(res, Errors.fromResponse, within)

const headersFor = (call: UpstreamCall, stream: boolean): Record<string, string> => ({
  "content-type": "application/json",
  accept: stream ? "text/event-stream" : "application/json",
  "x-request-id": call.requestId
})

export const make = (pool: UpstreamPool, options: Options): Adapter => ({
  dialect: options.dialect,
  // vLLM, SGLang and the simulator speak vLLM's P/D extension; hosted OpenAI and the others do not.
  kvTransfer: options.dialect === "openai" || options.dialect === "vllm" || options.dialect === "sglang",
  // Rerank is served by vLLM, SGLang and llama.cpp (--reranking); not by NIM, TGI or OpenAI.
  capabilities: {
    chat: true,
    completion: true,
    embedding: true,
    rerank: options.dialect === "vllm" || options.dialect === "sglang" || options.dialect === "llamacpp"
  },
  stream: (call) =>
    Effect.gen(function*() {
      const res = yield* pool.stream(
        Translate.path(call.kind),
        Translate.requestBody(call),
        headersFor(call, true),
        options.firstTokenMs,
        () => new TimeToFirstTokenExceeded({ afterMs: options.firstTokenMs })
      )
      if (res.status < 200 || res.status >= 300) return yield* failureOf(res)
      return OpenAIStream.frames(res.status, res, {
        clientWantsUsage: call.clientWantsUsage,
        maxEventBytes: options.maxEventBytes
      })
    }),
  boundsUnary: true,
  unary: (call, withinMs) =>
    Effect.gen(function*() {
      const left = unaryDeadline(withinMs ?? options.totalMs, options.totalMs)
      const headers = left()
      const res = yield* pool.call(
        Translate.path(call.kind),
        Translate.requestBody(call),
        headersFor(call, false),
        headers.ms,
        headers.onTimeout,
        options.maxResponseBytes
      )
      if (res.status < 200 || res.status >= 300) return yield* failureOf(res, left())
      return { status: res.status, read: Effect.suspend(() => readUnary(res, options, left())) }
    })
})

/** The second phase of a unary call: the body of a 2xx answer, read and checked. */
const readUnary = (res: UnaryUpstreamResponse, options: Options, within: ReadDeadline): Effect.Effect<UnaryResult, FailureReason> =>
  Effect.gen(function*() {
    const body = yield* res.readAll(options.maxResponseBytes, readFailure, within)
    let json: unknown
    try {
      json = JSON.parse(body.toString("utf8"))
    } catch {
      return yield* new MalformedChunk({ message: "the backend answered with invalid JSON" })
    }
    const o = (typeof json === "object" && json !== null ? json : {}) as Record<string, unknown>
    if (o["error"] !== undefined && o["error"] !== null) {
      const now = yield* Clock.currentTimeMillis
      return yield* Effect.fail(Errors.fromResponse(500, undefined, body.toString("utf8"), now))
    }
    const choices = o["choices"]
    const first = Array.isArray(choices) && typeof choices[0] === "object" && choices[0] !== null
      ? (choices[0] as Record<string, unknown>)
      : undefined
    return {
      status: res.status,
      body,
      contentType: header(res.headers, "content-type") ?? "application/json",
      usage: Usage.fromOpenAI(o["usage"]),
      finish: finishReason(first?.["finish_reason"]),
      texts: completionTexts(o)
    }
  })
