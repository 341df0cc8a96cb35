/**
 * Errors rendered in the OpenAI envelope: an HTTP answer (status, envelope, `retry-after`),
 * an SSE error event once a stream has started, or, for what the listener refuses before a
 * request exists (deadlines, oversized headers, bad framing), the raw HTTP/1.1 bytes. Which
 * error gets which status and code is decided in one place, request/WireErrors.ts; this
 * module only renders.
 */
import { HttpServerResponse } from "effect/http"
import { STATUS_CODES } from "node:http"
import { envelope, sseEvent } from "../api/openai/ErrorEnvelope.ts"
import type { FailureReason } from "../backends/Failure.ts"
import { err, reasonToWire, type WireError } from "../request/WireErrors.ts"

export {
  type AdminError,
  type AuthError,
  type GatewayError,
  reasonToWire,
  toWire,
  toWireIfKnown,
  type WireError
} from "../request/WireErrors.ts"

export const response = (wire: WireError, requestId: string): HttpServerResponse.HttpServerResponse => {
  const headers: Record<string, string> = { ...wire.headers, "x-request-id": requestId }
  if (wire.retryAfterMs !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(wire.retryAfterMs / 1000)))
  return HttpServerResponse.text(envelope(wire.body), { status: wire.status, contentType: "application/json", headers })
}

export const defect = (requestId: string): HttpServerResponse.HttpServerResponse =>
  response(err(500, "server_error", `Internal gateway error (request ${requestId}).`, "internal_error"), requestId)

const encoder = new TextEncoder()

/** The SSE error event that ends a committed stream. */
export const streamErrorEvent = (reason: FailureReason): Uint8Array => encoder.encode(sseEvent(reasonToWire(reason).body))

/**
 * What the listener refuses before a request reaches the router (node:http's `clientError`):
 * a request whose headers or whole self did not arrive within the deadline, headers over the
 * parser's size limit, or bytes that are not valid HTTP/1.1 framing.
 */
export type ListenerRejection =
  | { readonly _tag: "RequestTimeout"; readonly phase: "headers" | "body"; readonly afterMs: number }
  | { readonly _tag: "HeadersTooLarge" }
  | { readonly _tag: "ChunkExtensionsTooLarge" }
  | { readonly _tag: "MalformedRequest"; readonly detail: string }

export const listenerRejectionToWire = (r: ListenerRejection): WireError => {
  switch (r._tag) {
    case "RequestTimeout":
      return err(
        408,
        "invalid_request_error",
        r.phase === "headers"
          ? `The request headers did not arrive within ${r.afterMs} ms.`
          : `The request (headers and body) did not arrive within ${r.afterMs} ms.`,
        "request_timeout"
      )
    case "HeadersTooLarge":
      return err(431, "invalid_request_error", "The request headers are larger than the gateway accepts.", "headers_too_large")
    case "ChunkExtensionsTooLarge":
      return err(413, "invalid_request_error", "The chunk extensions of the request body are too large.", "request_too_large")
    case "MalformedRequest":
      return err(400, "invalid_request_error", `The request is not valid HTTP/1.1: ${r.detail}.`, "invalid_http")
  }
}

/**
 * The whole HTTP/1.1 answer as bytes, for a socket that has no response object (the parser
 * rejected the request, or it never completed): the envelope, then the connection closes.
 */
export const rawResponse = (wire: WireError): string => {
  const body = envelope(wire.body)
  return `HTTP/1.1 ${wire.status} ${STATUS_CODES[wire.status] ?? "Error"}\r\n` +
    "Content-Type: application/json\r\n" +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    "Connection: close\r\n\r\n" +
    body
}
