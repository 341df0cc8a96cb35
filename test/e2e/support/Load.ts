/**
 * A closed-loop load generator for end-to-end tests that must know, per request, what the
 * client saw: every request carries its own `x-request-id`, and the outcome of each is
 * kept (response headers and status, the whole body, a client abort, or a connection cut
 * before or after the headers). "Admitted" from the client's side is precise: response
 * headers arrived (status 200) or the stream was cut after them; a request cut before any
 * header is ambiguous (it may or may not have been admitted).
 */
import { Agent, request } from "node:http"

export type Seen =
  | { readonly kind: "sent" }
  | { readonly kind: "headers"; readonly status: number }
  | { readonly kind: "done"; readonly status: number; readonly atMs: number }
  | { readonly kind: "client_aborted"; readonly status: number }
  | { readonly kind: "cut_before_headers" }
  | { readonly kind: "cut_after_headers"; readonly status: number }

export interface LoadRun {
  readonly seen: Map<string, Seen>
  /** Stops issuing new requests; resolves when every request in flight has ended. */
  readonly stop: () => Promise<void>
}

export interface LoadOptions {
  readonly url: string
  readonly prefix: string
  readonly clients: number
  readonly model: string
  /** Request i is a stream when this says so (default: every other one). */
  readonly stream?: (i: number) => boolean
  /** A stream the client abandons after this many SSE events (default: every fourth stream, after 3). */
  readonly abortAfter?: (i: number) => number | undefined
  readonly maxTokens?: number
}

export const run = (options: LoadOptions): LoadRun => {
  const agent = new Agent({ keepAlive: true, maxSockets: options.clients })
  const seen = new Map<string, Seen>()
  let next = 0
  let stopping = false
  const isStream = options.stream ?? ((i) => i % 2 === 0)
  const abortAfter = options.abortAfter ?? ((i) => (i % 8 === 0 ? 3 : undefined))

  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const id = `${options.prefix}-${i}`
      const stream = isStream(i)
      const cutAt = stream ? abortAfter(i) : undefined
      seen.set(id, { kind: "sent" })
      let status = 0
      let events = 0
      let finished = false
      const finish = (s: Seen) => {
        if (finished) return
        finished = true
        seen.set(id, s)
        resolve()
      }
      const req = request(`${options.url}/v1/chat/completions`, {
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "x-request-id": id }
      }, (res) => {
        status = res.statusCode ?? 0
        seen.set(id, { kind: "headers", status })
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => {
          events += chunk.split("\n\n").length - 1
          if (cutAt !== undefined && events >= cutAt && !finished) {
            finish({ kind: "client_aborted", status })
            req.destroy()
          }
        })
        res.on("end", () => finish({ kind: "done", status, atMs: performance.now() }))
        res.on("error", () => finish({ kind: "cut_after_headers", status }))
        res.on("close", () => finish(res.complete ? { kind: "done", status, atMs: performance.now() } : { kind: "cut_after_headers", status }))
      })
      req.on("error", () => finish(status === 0 ? { kind: "cut_before_headers" } : { kind: "cut_after_headers", status }))
      req.end(JSON.stringify({
        model: options.model,
        messages: [{ role: "user", content: `request ${i}: tell me something` }],
        stream,
        max_tokens: options.maxTokens ?? 64,
        ...(stream ? { stream_options: { include_usage: true } } : {})
      }))
    })

  const client = async () => {
    while (!stopping) await one(next++)
  }
  const clients = Array.from({ length: options.clients }, client)
  return {
    seen,
    stop: async () => {
      stopping = true
      await Promise.all(clients)
      agent.destroy()
    }
  }
}

/** Request ids the client knows were admitted: headers arrived. */
export const admitted = (seen: ReadonlyMap<string, Seen>): Set<string> =>
  new Set([...seen].filter(([, s]) => s.kind !== "sent" && s.kind !== "cut_before_headers").map(([id]) => id))

/** Request ids whose admission the client cannot know: cut before any header. */
export const ambiguous = (seen: ReadonlyMap<string, Seen>): Set<string> =>
  new Set([...seen].filter(([, s]) => s.kind === "sent" || s.kind === "cut_before_headers").map(([id]) => id))
