/**
 * The decode phase: check the media type, read the body under the size limit, pre-scan
 * its bytes (depth, values, keys: JsonScan.ts), parse JSON, validate it with the wire
 * schema of the endpoint. Every failure is the client's (400/413/415) and names what is
 * wrong; nothing here can produce a 500, and nothing here recurses over client data or
 * holds the event loop for long (the pre-scan yields between slices and bounds the parse).
 */
import { Effect, Schema } from "effect"
import type { HttpServerRequest } from "effect/http"
import { ChatCompletionRequest, CompletionRequest, EmbeddingRequest, RerankRequest } from "../api/openai/Requests.ts"
import type { CallKind } from "../backends/Contract.ts"
import { summarize } from "../domain/SchemaIssues.ts"
import * as JsonScan from "./JsonScan.ts"
import { BodyTooLarge, InvalidBody, InvalidJson, type LimitExceeded, UnsupportedMediaType } from "./RequestErrors.ts"
import * as RequestLimits from "./RequestLimits.ts"

/**
 * `application/json`, with parameters (`; charset=utf-8`; another charset is refused: JSON
 * is UTF-8). Anything else, a missing type included, is a 415: form, text and multipart
 * bodies are what a web page can make a browser send without a CORS preflight.
 * `application/*+json` is refused too: no OpenAI client sends it.
 */
export const checkContentType = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<void, UnsupportedMediaType> => {
  const header = request.headers["content-type"]
  if (header === undefined) return Effect.fail(new UnsupportedMediaType({ contentType: undefined }))
  const [type = "", ...params] = header.split(";")
  if (type.trim().toLowerCase() !== "application/json") return Effect.fail(new UnsupportedMediaType({ contentType: header }))
  for (const param of params) {
    const [name = "", value = ""] = param.split("=")
    if (name.trim().toLowerCase() !== "charset") continue
    const charset = value.trim().replace(/^"|"$/g, "").toLowerCase()
    if (charset !== "utf-8" && charset !== "utf8") return Effect.fail(new UnsupportedMediaType({ contentType: header }))
  }
  return Effect.void
}

export const readBody = (request: HttpServerRequest.HttpServerRequest, limit: number) =>
  Effect.suspend(() => {
    const declared = Number(request.headers["content-length"])
    if (Number.isFinite(declared) && declared > limit) return Effect.fail(new BodyTooLarge({ limit }))
    // The byte cap while reading is the graph-wide `MaxBodySize` (set from the plan at start,
    // see Gateway.ts): providing it per request would copy the fiber's context every time.
    return request.arrayBuffer.pipe(
      Effect.map((ab) => new Uint8Array(ab)),
      Effect.mapError((e) =>
        e.reason._tag === "RequestParseError" && e.reason.reason === "BodyTooLarge"
          ? new BodyTooLarge({ limit })
          : new InvalidJson({ message: "the request body could not be read" })
      )
    )
  })

const parse = (bytes: Uint8Array): Effect.Effect<Record<string, unknown>, InvalidJson | InvalidBody> =>
  Effect.try({
    try: (): unknown => JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")),
    catch: (e) => new InvalidJson({ message: (e instanceof Error ? e.message : String(e)).slice(0, 200) })
  }).pipe(Effect.flatMap((json) =>
    typeof json !== "object" || json === null || Array.isArray(json)
      ? Effect.fail(new InvalidBody({ message: "The request body must be a JSON object.", param: null }))
      : Effect.succeed(json as Record<string, unknown>)
  ))

/** Pre-scans the bytes against `limits`, then parses: a JSON object, or the client's 400. */
export const parseJson = (
  bytes: Uint8Array,
  limits: JsonScan.JsonLimits
): Effect.Effect<Record<string, unknown>, InvalidJson | InvalidBody | LimitExceeded> =>
  bytes.length === 0
    ? Effect.fail(new InvalidJson({ message: "the body is empty" }))
    : Effect.flatMap(
      JsonScan.scan(bytes, limits),
      (failure): Effect.Effect<Record<string, unknown>, InvalidJson | InvalidBody | LimitExceeded> =>
        failure === undefined ? parse(bytes) : Effect.fail(RequestLimits.fromScan(failure))
    )

const validators = {
  chat: Schema.decodeUnknownExit(ChatCompletionRequest),
  completion: Schema.decodeUnknownExit(CompletionRequest),
  embedding: Schema.decodeUnknownExit(EmbeddingRequest),
  rerank: Schema.decodeUnknownExit(RerankRequest)
} as const

/** Validates the parsed body; the parsed object itself is what gets forwarded. */
export const validate = (kind: CallKind, body: Record<string, unknown>): Effect.Effect<void, InvalidBody> => {
  const exit = validators[kind](body)
  if (exit._tag === "Success") return Effect.void
  const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (failure === undefined || failure._tag !== "Fail") {
    return Effect.fail(new InvalidBody({ message: "The request body is invalid.", param: null }))
  }
  const summary = summarize(failure.error.issue)
  const message = summary.path === "" ? `Invalid request: ${summary.message}` : `Invalid value for '${summary.path}': ${summary.message.replace(`${summary.path}: `, "")}`
  return Effect.fail(new InvalidBody({ message, param: summary.path === "" ? null : summary.path }))
}
