/**
 * The decode phase: read the body under the size limit, parse JSON, validate it with the
 * wire schema of the endpoint. Every failure is the client's (400/413) and names what is
 * wrong; nothing here can produce a 500.
 */
import { Effect, Schema } from "effect"
import type { HttpServerRequest } from "effect/http"
import { ChatCompletionRequest, CompletionRequest, EmbeddingRequest, RerankRequest } from "../api/openai/Requests.ts"
import type { CallKind } from "../backends/Contract.ts"
import { summarize } from "../domain/SchemaIssues.ts"
import { BodyTooLarge, InvalidBody, InvalidJson } from "./RequestErrors.ts"

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

export const parseJson = (bytes: Uint8Array): Effect.Effect<Record<string, unknown>, InvalidJson | InvalidBody> => {
  if (bytes.length === 0) return Effect.fail(new InvalidJson({ message: "the body is empty" }))
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"))
  } catch (e) {
    return Effect.fail(new InvalidJson({ message: e instanceof Error ? e.message : String(e) }))
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return Effect.fail(new InvalidBody({ message: "The request body must be a JSON object.", param: null }))
  }
  return Effect.succeed(json as Record<string, unknown>)
}

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
