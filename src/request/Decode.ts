/**
 * The decode phase: check the media type, read the body under the size limit, pre-scan
 * its bytes (depth, values, keys: JsonScan.ts), parse JSON, check the item counts and the
 * gateway-owned fields (Limits.ts), and decode it with the wire schema of the endpoint
 * into the typed call (api/openai/Calls.ts) that every later phase reads. Every failure is
 * the client's (400/413/415) and names what is wrong; nothing here can produce a 500, and
 * nothing here recurses over client data or holds the event loop for long (the pre-scan
 * yields between slices and bounds the parse).
 */
import { type Cause, Effect, Schema } from "effect"
import type { HttpServerRequest } from "effect/http"
import type { IncomingMessage } from "node:http"
import type { Readable } from "node:stream"
import { ChatCompletionRequest, CompletionRequest, EmbeddingRequest, RerankRequest } from "../api/openai/Requests.ts"
import type { CallKind, InferenceCall } from "../api/openai/Calls.ts"
import * as Bodies from "../domain/Bodies.ts"
import { summarize } from "../domain/SchemaIssues.ts"
import * as JsonScan from "./JsonScan.ts"
import { BodyTooLarge, InvalidBody, InvalidJson, type LimitExceeded, UnsupportedMediaType } from "./Errors.ts"
import * as RequestLimits from "./Limits.ts"

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
  Effect.suspend((): Effect.Effect<Uint8Array, BodyTooLarge | InvalidJson> => {
    const declared = Number(request.headers["content-length"])
    if (Number.isFinite(declared) && declared > limit) return Effect.fail(new BodyTooLarge({ limit }))
    const source = nodeBody(request)
    if (source !== undefined) return readNode(source, limit)
    // Not a node:http request (tests, other runtimes): the platform's reader, whose byte cap is
    // the graph-wide `MaxBodySize` (set from the plan at start, see Gateway.ts).
    return request.arrayBuffer.pipe(
      Effect.map((ab) => new Uint8Array(ab)),
      Effect.mapError((e) =>
        e.reason._tag === "RequestParseError" && e.reason.reason === "BodyTooLarge"
          ? new BodyTooLarge({ limit })
          : new InvalidJson({ message: "the request body could not be read" })
      )
    )
  })

const ignoreError = (): void => {}

/** The node:http request a platform request reads its body from, when it is one (and unread). */
const nodeBody = (request: HttpServerRequest.HttpServerRequest): Readable | undefined => {
  const source = request.source as Partial<IncomingMessage> | undefined
  if (source === undefined || source === null || typeof source.httpVersion !== "string") return undefined
  const body = source as IncomingMessage
  return body.readableEnded || body.readableDidRead || body.destroyed ? undefined : body
}

/**
 * Reads a node:http request body straight from its socket stream, capped at `limit` bytes.
 * One callback per body, where the platform's `request.arrayBuffer` runs two fibers per
 * request (`Effect.cached` of a `runSync`) and keeps the bytes cached on the request for as
 * long as it lives (a whole stream); see bench/README.md, round 2. Over the cap it stops
 * collecting and drains the rest as the platform does (the 413 is answered on the same
 * connection); a body that fails or is cut off before its end is unreadable (400); the
 * client leaving interrupts the fiber, which removes the listeners.
 */
const readNode = (body: Readable, limit: number) => {
  // An error after the read's own listeners are gone (a client cut off while the rest of an
  // oversized body drains) must not go unheard: Node would throw it out of the event loop.
  body.on("error", ignoreError)
  return Bodies.readAll<BodyTooLarge | InvalidJson>(body, {
    limit,
    tooLarge: () => new BodyTooLarge({ limit }),
    failed: () => new InvalidJson({ message: "the request body could not be read" }),
    overflow: "drain",
    closeIsFailure: true
  })
}

/** Parsed JSON, before the schema: a JSON object of anything. */
export type JsonObject = { readonly [key: string]: unknown }

const isObject = (json: unknown): json is JsonObject => typeof json === "object" && json !== null && !Array.isArray(json)

const parse = (bytes: Uint8Array): Effect.Effect<JsonObject, InvalidJson | InvalidBody> =>
  Effect.try({
    try: (): unknown => JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")),
    catch: (e) => new InvalidJson({ message: (e instanceof Error ? e.message : String(e)).slice(0, 200) })
  }).pipe(Effect.flatMap((json) =>
    isObject(json)
      ? Effect.succeed(json)
      : Effect.fail(new InvalidBody({ message: "The request body must be a JSON object.", param: null }))
  ))

/** Pre-scans the bytes against `limits`, then parses: a JSON object, or the client's 400. */
export const parseJson = (
  bytes: Uint8Array,
  limits: JsonScan.JsonLimits
): Effect.Effect<JsonObject, InvalidJson | InvalidBody | LimitExceeded> =>
  bytes.length === 0
    ? Effect.fail(new InvalidJson({ message: "the body is empty" }))
    : Effect.flatMap(
      JsonScan.scan(bytes, limits),
      (failure): Effect.Effect<JsonObject, InvalidJson | InvalidBody | LimitExceeded> =>
        failure === undefined ? parse(bytes) : Effect.fail(RequestLimits.fromScan(failure))
    )

const decoders = {
  chat: Schema.decodeUnknownExit(ChatCompletionRequest),
  completion: Schema.decodeUnknownExit(CompletionRequest),
  embedding: Schema.decodeUnknownExit(EmbeddingRequest),
  rerank: Schema.decodeUnknownExit(RerankRequest)
} as const

/** The 400 for a body the schema refused, naming the first field that is wrong. */
const refusal = (exit: { readonly cause: Cause.Cause<Schema.SchemaError> }): InvalidBody => {
  const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (failure === undefined || failure._tag !== "Fail") return new InvalidBody({ message: "The request body is invalid.", param: null })
  const summary = summarize(failure.error.issue)
  const message = summary.path === "" ? `Invalid request: ${summary.message}` : `Invalid value for '${summary.path}': ${summary.message.replace(`${summary.path}: `, "")}`
  return new InvalidBody({ message, param: summary.path === "" ? null : summary.path })
}

/**
 * Decodes the parsed body with the endpoint's wire schema into the typed call. The schemas
 * keep the fields the gateway does not know (vendor extensions reach the backend).
 */
export const decode = (kind: CallKind, body: JsonObject): Effect.Effect<InferenceCall, InvalidBody> => {
  switch (kind) {
    case "chat": {
      const exit = decoders.chat(body)
      return exit._tag === "Success" ? Effect.succeed({ kind, body: exit.value }) : Effect.fail(refusal(exit))
    }
    case "completion": {
      const exit = decoders.completion(body)
      return exit._tag === "Success" ? Effect.succeed({ kind, body: exit.value }) : Effect.fail(refusal(exit))
    }
    case "embedding": {
      const exit = decoders.embedding(body)
      return exit._tag === "Success" ? Effect.succeed({ kind, body: exit.value }) : Effect.fail(refusal(exit))
    }
    case "rerank": {
      const exit = decoders.rerank(body)
      return exit._tag === "Success" ? Effect.succeed({ kind, body: exit.value }) : Effect.fail(refusal(exit))
    }
  }
}
