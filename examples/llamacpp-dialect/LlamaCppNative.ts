/**
 * Example extension: a backend dialect Sluice does not ship, registered from outside src/:
 * llama.cpp's native `POST /completion` (llama-server; base URL without `/v1`). It serves the
 * gateway's `/v1/completions`, streamed or not, and translates both ways:
 *
 * - request: `prompt` (a string or token ids), `n_predict` = the output cap the gateway
 *   reserved for, `stream`, and the samplers both APIs share (`temperature`, `top_p`, `stop`,
 *   `seed`); a prompt batch is the client's 400 (one prompt per call natively);
 * - stream: SSE lines `data: {"content":"...","stop":false}` become OpenAI `text_completion`
 *   chunks (one token event each); the last line (`"stop":true`, with `stop_type`,
 *   `tokens_predicted`, `tokens_evaluated`, `tokens_cached`) becomes the finish chunk
 *   (`limit` → `length`, else `stop`), the usage the gateway accounts (and the usage chunk
 *   when the client asked), and `data: [DONE]`; an `{"error": ...}` line is a mid-stream
 *   failure, a line that is not JSON a malformed chunk, and a body that ends before
 *   `"stop":true` a mid-stream failure (the gateway's rules in `scanned`);
 * - unary: the one JSON object, into a `text_completion` body.
 *
 * llama-server has no abort call: closing the connection is its only cancellation signal.
 * The upstream request is bound to the attempt's scope, so a client that leaves (or a
 * deadline, or a failover) closes it.
 *
 * Owns one stream's translation state. Must never: hold anything beyond the attempt's scope,
 * or buffer more than one SSE event (the scanner's bound, `maxEventBytes`).
 */
import { Clock, Effect } from "effect"
import { Backend, type Dialect, Dialects, Failure, scanned, type SseEvent, SseScanner, Upstream } from "sluice"

export const NAME = "llamacpp-native"

const encoder = new TextEncoder()
const sse = (value: unknown) => encoder.encode(`data: ${JSON.stringify(value)}\n\n`)
const DONE = "data: [DONE]\n\n"

type Json = { readonly [key: string]: unknown }
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v)
const parse = (text: string): Json | undefined => {
  try {
    const v: unknown = JSON.parse(text)
    return isObject(v) ? v : undefined
  } catch {
    return undefined
  }
}
const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0)

/** The native request body of an OpenAI completions call (a client error when it cannot say it). */
export const requestBody = (call: Backend.UpstreamCall): Effect.Effect<string, Failure.InvalidRequest> => {
  const invalid = (message: string, param: string) =>
    Effect.fail(new Failure.InvalidRequest({ status: 400, message, param, code: null }))
  if (call.kind !== "completion") return invalid(`the ${NAME} dialect serves completions only`, "model")
  const b = call.body
  const prompt = b.prompt
  // One prompt per call: a string, or one prompt of token ids.
  const single = typeof prompt === "string" || prompt.every((p) => typeof p === "number")
    ? prompt
    : prompt.length === 1
    ? prompt[0]
    : undefined
  if (single === undefined) return invalid(`the ${NAME} dialect takes one prompt per request`, "prompt")
  const body: Record<string, unknown> = {
    prompt: single,
    n_predict: call.maxOutputTokens,
    stream: call.stream,
    cache_prompt: true
  }
  if (b.temperature != null) body["temperature"] = b.temperature
  if (b.top_p != null) body["top_p"] = b.top_p
  if (b.seed != null) body["seed"] = b.seed
  if (b.stop != null) body["stop"] = typeof b.stop === "string" ? [b.stop] : b.stop
  return Effect.succeed(JSON.stringify(body))
}

/** `stop_type` → the OpenAI finish reason. */
const finishOf = (stopType: unknown): "stop" | "length" => (stopType === "limit" ? "length" : "stop")

const usageOf = (json: Json) => ({
  promptTokens: num(json["tokens_evaluated"]),
  completionTokens: num(json["tokens_predicted"]),
  cachedTokens: num(json["tokens_cached"])
})

interface Head {
  readonly id: string
  readonly created: number
  readonly model: string
}

const chunk = (head: Head, text: string, finish: string | null) => ({
  id: head.id,
  object: "text_completion",
  created: head.created,
  model: head.model,
  choices: [{ index: 0, text, logprobs: null, finish_reason: finish }]
})

const errorFrame = (failure: Failure.FailureReason): Backend.Frame => ({ bytes: undefined, events: [{ _tag: "Error", failure }] })

/** One stream's translation: native SSE events → frames of OpenAI completion chunks. */
export class Translator {
  /** Set once the `"stop": true` line was translated. */
  done = false
  constructor(private readonly head: Head, private readonly clientWantsUsage: boolean) {}

  event(e: SseEvent): Array<Backend.Frame> {
    if (this.done || e.data === "") return []
    const json = parse(e.data)
    if (json === undefined) return [errorFrame(new Failure.MalformedChunk({ message: `invalid JSON event: ${e.data.slice(0, 120)}` }))]
    const error = json["error"]
    if (error !== undefined && error !== null) {
      const message = isObject(error) && typeof error["message"] === "string" ? error["message"] : JSON.stringify(error)
      return [errorFrame(new Failure.MidStreamError({ message, code: undefined }))]
    }
    const out: Array<Backend.Frame> = []
    const content = typeof json["content"] === "string" ? json["content"] : ""
    if (content !== "") out.push({ bytes: sse(chunk(this.head, content, null)), events: [{ _tag: "Delta", text: content }] })
    if (json["stop"] === true) {
      this.done = true
      const finish = finishOf(json["stop_type"])
      const usage = usageOf(json)
      let text = `data: ${JSON.stringify(chunk(this.head, "", finish))}\n\n`
      if (this.clientWantsUsage) {
        text += `data: ${
          JSON.stringify({
            id: this.head.id,
            object: "text_completion",
            created: this.head.created,
            model: this.head.model,
            choices: [],
            usage: {
              prompt_tokens: usage.promptTokens,
              completion_tokens: usage.completionTokens,
              total_tokens: usage.promptTokens + usage.completionTokens
            }
          })
        }\n\n`
      }
      out.push({
        bytes: encoder.encode(text + DONE),
        events: [{ _tag: "Finish", reason: finish }, { _tag: "Usage", usage }]
      })
    }
    return out
  }
}

/** A non-2xx answer: llama-server's `{error: {code, message, type}}` envelope, classified. */
const failureOf = (status: number, retryAfter: string | undefined, text: string, nowMs: number): Failure.FailureReason => {
  const json = parse(text)
  const error = json?.["error"]
  const message = isObject(error) && typeof error["message"] === "string" ? error["message"] : text.slice(0, 500) || "(empty body)"
  return Failure.fromStatus(status, message, { retryAfterMs: Failure.parseRetryAfter(retryAfter, nowMs) })
}

const headers = (call: Backend.UpstreamCall, stream: boolean) => ({
  "content-type": "application/json",
  accept: stream ? "text/event-stream" : "application/json",
  "x-request-id": call.requestId
})

const headOf = (call: Backend.UpstreamCall, nowMs: number): Head => ({
  id: `cmpl-${call.requestId}`,
  created: Math.floor(nowMs / 1000),
  model: typeof call.body.model === "string" ? call.body.model : call.upstreamModel
})

export const dialect: Dialect = {
  name: NAME,
  // llama-server exposes `llamacpp:*` metrics when started with --metrics.
  metrics: "llamacpp",
  make: ({ pool, options }) => ({
    dialect: NAME,
    capabilities: { chat: false, completion: true, embedding: false, rerank: false },
    stream: (call) =>
      Effect.gen(function*() {
        const body = yield* requestBody(call)
        const res = yield* pool.post(
          "/completion",
          body,
          headers(call, true),
          options.firstTokenMs,
          () => new Failure.TimeToFirstTokenExceeded({ afterMs: options.firstTokenMs })
        )
        if (res.status < 200 || res.status >= 300) return yield* Upstream.failWith(res, failureOf)
        const translator = new Translator(headOf(call, yield* Clock.currentTimeMillis), call.clientWantsUsage)
        return scanned({
          status: res.status,
          body: res.body,
          scanner: new SseScanner(options.maxEventBytes),
          convert: (events) => events.flatMap((e) => translator.event(e)),
          done: () => translator.done,
          complete: () => translator.done,
          endMarker: `"stop": true`,
          malformed: (e) => `unreadable SSE: ${String(e)}`
        })
      }),
    unary: (call) =>
      Effect.gen(function*() {
        const body = yield* requestBody(call)
        const res = yield* pool.post(
          "/completion",
          body,
          headers(call, false),
          options.totalMs,
          () => new Failure.TotalTimeout({ afterMs: options.totalMs })
        )
        if (res.status < 200 || res.status >= 300) return yield* Upstream.failWith(res, failureOf)
        const read = Effect.gen(function*() {
          const raw = yield* Upstream.readAll(res.body, options.maxResponseBytes, Upstream.readFailure)
          const json = parse(raw.toString("utf8"))
          if (json === undefined) return yield* new Failure.MalformedChunk({ message: "the backend answered with invalid JSON" })
          const text = typeof json["content"] === "string" ? json["content"] : ""
          const usage = usageOf(json)
          const finish = finishOf(json["stop_type"])
          const head = headOf(call, yield* Clock.currentTimeMillis)
          const out = {
            ...chunk(head, text, finish),
            usage: {
              prompt_tokens: usage.promptTokens,
              completion_tokens: usage.completionTokens,
              total_tokens: usage.promptTokens + usage.completionTokens
            }
          }
          return {
            status: 200,
            body: encoder.encode(JSON.stringify(out)),
            contentType: "application/json",
            usage,
            finish,
            texts: [text]
          } satisfies Backend.UnaryResult
        })
        return { status: res.status, read }
      })
  })
}

/** The extension layer: registers the `llamacpp-native` dialect (`backends[].dialect: llamacpp-native`). */
export const layer = Dialects.add(dialect)
