/**
 * The Ollama native adapter (base URL like `http://host:11434`, no /v1): chat over
 * `/api/chat`, legacy completions over `/api/generate`, embeddings over `/api/embed`,
 * each translated from and to the OpenAI dialect. Streams are NDJSON.
 *
 * Ollama has no explicit abort: closing the attempt's scope closes the connection, which
 * is the only signal it reads (and only when it next writes a token, backends.md §3).
 * Owns nothing beyond the attempt's scope.
 */
import { Clock, Effect } from "effect"
import {
  type Adapter,
  type AdapterOptions,
  type ReadDeadline,
  type UnaryResult,
  unaryDeadline,
  type UpstreamCall
} from "../../Contract.ts"
import { type FailureReason, InvalidRequest, MalformedChunk, TimeToFirstTokenExceeded } from "../../Failure.ts"
import { failWith, readFailure, type UnaryUpstreamResponse, type UpstreamPool } from "../../Upstream.ts"
import { bytes, type ChunkHead, clientModel, completionTexts, parseObject, translated } from "../openai/Wire.ts"
import * as Errors from "./Errors.ts"
import * as Translate from "./openai_ollama.ts"
import * as OllamaStream from "./Stream.ts"

export type Options = AdapterOptions

/** Turns a non-2xx answer into its failure reason. */
const failureOf = (res: UnaryUpstreamResponse, within?: ReadDeadline) => failWith(res, Errors.fromResponse, within)

const headersFor = (call: UpstreamCall, stream: boolean): Record<string, string> => ({
  "content-type": "application/json",
  accept: stream ? "application/x-ndjson" : "application/json",
  "x-request-id": call.requestId
})

const bodyFor = (call: UpstreamCall) => translated(call, Translate.requestBody)

export const make = (pool: UpstreamPool, options: Options): Adapter => ({
  dialect: "ollama",
  capabilities: { chat: true, completion: true, embedding: true, rerank: false },
  stream: (call) =>
    Effect.gen(function*() {
      if (call.kind === "embedding" || call.kind === "rerank") {
        return yield* new InvalidRequest({ status: 400, message: `${call.kind} cannot stream`, param: "stream", code: null })
      }
      const kind = call.kind
      const body = yield* bodyFor(call)
      const res = yield* pool.stream(
        Translate.path(kind),
        body,
        headersFor(call, true),
        options.firstTokenMs,
        () => new TimeToFirstTokenExceeded({ afterMs: options.firstTokenMs })
      )
      if (res.status < 200 || res.status >= 300) return yield* failureOf(res)
      const now = yield* Clock.currentTimeMillis
      return OllamaStream.frames(res.status, res, {
        kind,
        model: clientModel(call),
        created: Math.floor(now / 1000),
        requestId: call.requestId,
        clientWantsUsage: call.clientWantsUsage,
        maxLineBytes: options.maxEventBytes
      })
    }),
  boundsUnary: true,
  unary: (call, withinMs) =>
    Effect.gen(function*() {
      const left = unaryDeadline(withinMs ?? options.totalMs, options.totalMs)
      const body = yield* bodyFor(call)
      const headers = left()
      const res = yield* pool.call(
        Translate.path(call.kind),
        body,
        headersFor(call, false),
        headers.ms,
        headers.onTimeout,
        options.maxResponseBytes
      )
      if (res.status < 200 || res.status >= 300) return yield* failureOf(res, left())
      return { status: res.status, read: Effect.suspend(() => readUnary(res, call, options, left())) }
    })
})

/** The second phase of a unary call: the body of a 2xx answer, read and translated. */
const readUnary = (
  res: UnaryUpstreamResponse,
  call: UpstreamCall,
  options: Options,
  within: ReadDeadline
): Effect.Effect<UnaryResult, FailureReason> =>
  Effect.gen(function*() {
    const raw = yield* res.readAll(options.maxResponseBytes, readFailure, within)
    const json = parseObject(raw.toString("utf8"))
    if (json === undefined) return yield* new MalformedChunk({ message: "the backend answered with invalid JSON" })
    const now = yield* Clock.currentTimeMillis
    if (json["error"] !== undefined && json["error"] !== null) {
      return yield* Effect.fail(Errors.fromResponse(500, undefined, raw.toString("utf8"), now))
    }
    const created = Math.floor(now / 1000)
    const model = clientModel(call)
    const translated = call.kind === "chat"
      ? Translate.chatCompletionOf(json, { id: `chatcmpl-${call.requestId}`, created, model } satisfies ChunkHead, call.requestId)
      : call.kind === "completion"
      ? Translate.textCompletionOf(json, { id: `cmpl-${call.requestId}`, created, model })
      : { ...Translate.embeddingsOf(json, model, call.body["encoding_format"] === "base64"), finish: undefined }
    return {
      status: 200,
      body: bytes(JSON.stringify(translated.body)),
      contentType: "application/json",
      usage: translated.usage,
      finish: translated.finish,
      texts: completionTexts(translated.body)
    }
  })
