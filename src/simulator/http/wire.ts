/**
 * Shared plumbing of the simulator's wire: the per-instance context every handler receives, body reading, JSON
 * replies, and the small request-parsing helpers the dialects share.
 *
 * The wire is plain `node:http`, not `effect/http`: the simulator needs byte-level control that a framework
 * hides (one `write` per token, `resetAndDestroy` for connection resets, a stall that withholds bytes, a
 * malformed chunk) and it must stay cheap per token, since benchmarks push thousands of streams through it.
 * Lifecycle (listen, close, the engine loop) is Effect code in Simulator.ts / driver.ts.
 * Must never: block the event loop, buffer a stream's chunks beyond what the socket refuses, or call the engine
 * other than through submit/abort (generation.ts).
 */
import type { KvEventPublisher } from "./kvEvents.ts"
import type { IncomingMessage, ServerResponse } from "node:http"
import type { Socket } from "node:net"
import type { Engine } from "../engine/engine.ts"
import type { Sequence } from "../engine/sequence.ts"
import type { FaultState } from "../faults.ts"
import type { Profile } from "../../profiles/Profiles.ts"

/** A prefill's KV held for a decode instance to pull (transfer.ts owns the protocol). */
export interface TransferEntry {
  readonly numTokens: number
  readonly bytes: number
  readonly expiresAtMs: number
}

export type Dialect = "openai" | "anthropic" | "ollama" | "sglang"

/** What a sequence's owner hears from the engine driver. */
export interface SequenceSink {
  /** One more token; `seq.status === "finished"` when it was the last. */
  onToken(seq: Sequence<SequenceSink>): void
  /** The engine lost the sequence (OOM, crash). */
  onFail(seq: Sequence<SequenceSink>, reason: "oom" | "crash"): void
  /** Aborted by the server (SGLang `/abort_request`). */
  onServerAbort(seq: Sequence<SequenceSink>): void
}

export interface SimContext {
  readonly model: string
  readonly dialect: Dialect
  readonly profile: Profile
  readonly seed: number
  readonly timeScale: number
  readonly engine: Engine<SequenceSink>
  readonly faults: FaultState
  /** Monotonic wall-clock milliseconds. */
  readonly nowMs: () => number
  /** Unix epoch milliseconds (for `created` fields). */
  readonly epochMs: () => number
  /** Current simulated time (engine ms), for arrivals. */
  readonly virtualNow: () => number
  /** Tells the engine loop there is work. */
  readonly wake: () => void
  readonly nextId: (prefix: string) => string
  readonly connections: Set<Socket>
  /** In-flight sequences by request id (`rid` / x-request-id), for SGLang's /abort_request. */
  readonly byRid: Map<string, Sequence<SequenceSink>>
  /** Resets every connection but `spare` and the engine ("reset"), or stops serving ("exit"). */
  readonly crash: (mode: "reset" | "exit", spare?: Socket) => void
  /** P/D: finished prefills waiting to be pulled by a decode engine, by transfer id (http/transfer.ts). */
  readonly transfers: Map<string, TransferEntry>
  /** P/D: KV transfer bandwidth, GB/s. */
  readonly kvTransferGBps: number
  /** The KV-cache event stream (`GET /kv_events`), flushed after every engine step. */
  readonly kvEvents: KvEventPublisher
}

const MAX_BODY = 64 * 1024 * 1024

/** Reads the whole body and parses it as JSON; `onError` gets a message for an unreadable or invalid body. */
export const readJson = (
  req: IncomingMessage,
  onError: (message: string) => void,
  onJson: (body: unknown) => void
): void => {
  const chunks: Array<Buffer> = []
  let size = 0
  let failed = false
  req.on("data", (chunk: Buffer) => {
    size += chunk.length
    if (size > MAX_BODY && !failed) {
      failed = true
      onError("request body too large")
      req.destroy()
      return
    }
    chunks.push(chunk)
  })
  req.on("end", () => {
    if (failed) return
    const text = Buffer.concat(chunks).toString("utf8")
    const parsed = parseJson(text)
    if (parsed === undefined) onError("Invalid JSON body")
    else onJson(parsed)
  })
}

/** JSON.parse without throwing (plain TS; the wire is not Effect code). */
export const parseJson = (text: string): unknown => {
  if (text.length === 0) return {}
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

export const sendJson = (
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {}
): void => {
  if (res.headersSent || res.destroyed) return
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers })
  res.end(text)
}

export const sendText = (res: ServerResponse, status: number, text: string, contentType = "text/plain"): void => {
  if (res.headersSent || res.destroyed) return
  res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(text) })
  res.end(text)
}

export type Json = Readonly<Record<string, unknown>>

export const isRecord = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

export const str = (o: Json, key: string): string | undefined => {
  const v = o[key]
  return typeof v === "string" ? v : undefined
}

export const num = (o: Json, key: string): number | undefined => {
  const v = o[key]
  return typeof v === "number" && Number.isFinite(v) ? v : undefined
}

export const bool = (o: Json, key: string): boolean | undefined => {
  const v = o[key]
  return typeof v === "boolean" ? v : undefined
}

/** Text of an OpenAI/Anthropic/Ollama message `content` (one definition with the gateway's precise prefix index). */
export { contentText } from "../../domain/KvBlocks.ts"

/** Request id for SGLang aborts and logs: body `rid`, else the `x-request-id` header. */
export const requestRid = (req: IncomingMessage, body: Json): string | undefined => {
  const rid = str(body, "rid")
  if (rid !== undefined) return rid
  const h = req.headers["x-request-id"]
  return typeof h === "string" ? h : undefined
}
