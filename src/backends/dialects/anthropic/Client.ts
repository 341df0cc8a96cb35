/**
 * The Anthropic Messages adapter: `POST {base}/messages` (base like
 * `https://api.anthropic.com/v1`) with `x-api-key` (the backend's key) and
 * `anthropic-version`, translating OpenAI chat requests and answers both ways, or, when the
 * client itself spoke Anthropic Messages (`call.native`), sending the client's bytes (the
 * model renamed only when the backend names it otherwise) and answering with the backend's
 * own bytes, the typed events still read from them for accounting.
 *
 * Chat only: legacy completions and embeddings have no Anthropic equivalent, so the
 * capabilities say so and such a call fails with a non-retryable 400 `InvalidRequest`
 * (no breaker trip). Owns nothing beyond the attempt's scope.
 */
import { Clock, Effect, Redacted } from "effect"
import {
  type Adapter,
  type AdapterOptions,
  type NativeBody,
  type ReadDeadline,
  type UnaryResult,
  unaryDeadline,
  type UpstreamCall
} from "../../Contract.ts"
import { type FailureReason, InvalidRequest, MalformedChunk, TimeToFirstTokenExceeded } from "../../Failure.ts"
import { failWith, readFailure, type UnaryUpstreamResponse, type UpstreamPool } from "../../Upstream.ts"
import { bytes, clientModel, completionTexts, parseObject, translated } from "../openai/Wire.ts"
import * as Errors from "./Errors.ts"
import * as Translate from "./openai_anthropic.ts"
import * as AnthropicStream from "./Stream.ts"

export type Options = AdapterOptions

/** Turns a non-2xx answer into its failure reason. */
const failureOf = (res: UnaryUpstreamResponse, within?: ReadDeadline) => failWith(res, Errors.fromResponse, within)

const headersFor = (pool: UpstreamPool, call: UpstreamCall, stream: boolean): Record<string, string> => {
  const h: Record<string, string> = {
    "content-type": "application/json",
    accept: stream ? "text/event-stream" : "application/json",
    "anthropic-version": Translate.ANTHROPIC_VERSION,
    "x-request-id": call.requestId
  }
  if (pool.apiKey !== undefined) h["x-api-key"] = Redacted.value(pool.apiKey)
  return h
}

const unsupported = (call: UpstreamCall) =>
  new InvalidRequest({
    status: 400,
    message: `the anthropic backend does not support ${call.kind === "completion" ? "legacy completions" : "embeddings"}`,
    param: null,
    code: "unsupported_by_backend"
  })

/** The client's own Anthropic body: untouched, or with the backend's name for the model. */
const nativeBody = (native: NativeBody, upstreamModel: string): Uint8Array | string => {
  if (native.model === upstreamModel) return native.bytes
  const json = parseObject(Buffer.from(native.bytes).toString("utf8"))
  return json === undefined ? native.bytes : JSON.stringify({ ...json, model: upstreamModel })
}

const isNative = (call: UpstreamCall): call is UpstreamCall & { readonly native: NativeBody } =>
  call.kind === "chat" && call.native?.dialect === "anthropic"

/** The translated body (or the client's own), or the 400 for a request Anthropic cannot express. */
const bodyFor = (call: UpstreamCall): Effect.Effect<Uint8Array | string, InvalidRequest> =>
  isNative(call)
    ? Effect.succeed(nativeBody(call.native, call.upstreamModel))
    : call.kind !== "chat"
    ? Effect.fail(unsupported(call))
    : translated(call, Translate.requestBody)

export const make = (pool: UpstreamPool, options: Options): Adapter => ({
  dialect: "anthropic",
  capabilities: { chat: true, completion: false, embedding: false, rerank: false },
  stream: (call) =>
    Effect.gen(function*() {
      const body = yield* bodyFor(call)
      const res = yield* pool.stream(
        "/messages",
        body,
        headersFor(pool, call, true),
        options.firstTokenMs,
        () => new TimeToFirstTokenExceeded({ afterMs: options.firstTokenMs })
      )
      if (res.status < 200 || res.status >= 300) return yield* failureOf(res)
      const now = yield* Clock.currentTimeMillis
      return AnthropicStream.frames(res.status, res, {
        model: clientModel(call),
        created: Math.floor(now / 1000),
        clientWantsUsage: call.clientWantsUsage,
        maxEventBytes: options.maxEventBytes,
        native: isNative(call)
      })
    }),
  boundsUnary: true,
  unary: (call, withinMs) =>
    Effect.gen(function*() {
      const left = unaryDeadline(withinMs ?? options.totalMs, options.totalMs)
      const body = yield* bodyFor(call)
      const headers = left()
      const res = yield* pool.call(
        "/messages",
        body,
        headersFor(pool, call, false),
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
    if (json["type"] === "error") {
      return yield* Effect.fail(Errors.fromResponse(500, undefined, raw.toString("utf8"), now))
    }
    const translated = Translate.completionOf(json, clientModel(call), Math.floor(now / 1000))
    return {
      status: 200,
      body: isNative(call) ? new Uint8Array(raw) : bytes(JSON.stringify(translated.body)),
      contentType: "application/json",
      usage: translated.usage,
      finish: translated.finish,
      texts: completionTexts(translated.body)
    }
  })
