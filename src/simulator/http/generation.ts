/**
 * One generation request on the wire: the engine's sink for its sequence, and the writer of its response.
 *
 * Owns: turning engine events (token, finish, failure) into the dialect's chunks through an `Encoder`; one
 * `res.write` per chunk, queued only while the socket refuses more (`drain`) or a stall fault holds it; the
 * per-request faults (reset, mid-stream error, stall, malformed chunk); and aborting the sequence the moment the
 * client's connection closes (the engine frees its slot and blocks at once).
 * Must never: coalesce chunks, keep writing after the connection closed, or leave a sequence in the engine after
 * its response is gone.
 */
import type { ServerResponse } from "node:http"
import type { Sequence } from "../engine/sequence.ts"
import type { RequestFaults } from "../faults.ts"
import type { OutputPlan } from "../outputs.ts"
import { offer } from "./transfer.ts"
import { sendJson, type SequenceSink, type SimContext } from "./wire.ts"

export type FailureKind = "midstream" | "oom" | "crash"

export type FinishReason = "stop" | "length" | "tool_calls" | "abort"

export interface GenerationMeta {
  readonly id: string
  readonly model: string
  /** Unix seconds / ms at accept. */
  readonly createdSec: number
  readonly createdMs: number
  readonly stream: boolean
  readonly includeUsage: boolean
  readonly plan: OutputPlan
  readonly prompt: Uint32Array
  readonly toolCallId: string
  readonly rid: string | undefined
}

/** A dialect's rendering of one generation (stream chunks and non-streaming bodies). */
export interface Encoder {
  readonly contentType: string
  /** Stream headers go out at accept (vLLM, Anthropic) or with the first chunk (Ollama). */
  readonly headersAtAccept: boolean
  /** Chunks sent once, just before the first token's chunk. */
  begin(g: Generation): ReadonlyArray<string>
  /** The chunk for token `index` (undefined when the dialect sends nothing per token, e.g. Ollama tool calls). */
  token(g: Generation, index: number): string | undefined
  /** Chunks after the last token (finish reason, usage, terminator). */
  end(g: Generation): ReadonlyArray<string>
  /** In-stream error chunks (status is already 200). */
  error(g: Generation, kind: FailureKind): ReadonlyArray<string>
  /** A chunk that is not valid JSON. */
  malformed(g: Generation): string
  /** Non-streaming response body. */
  complete(g: Generation): unknown
  /** Status and body of a failure that can still choose its status. */
  failure(g: Generation, kind: FailureKind): { readonly status: number; readonly body: unknown }
}

export class Generation implements SequenceSink {
  seq: Sequence<SequenceSink> | undefined
  /** P/D prefill leg: offer the prompt's KV for transfer when done (`Host` header of the request). */
  remoteDecode: { readonly host: string | undefined } | undefined = undefined
  /** P/D prefill leg: the `kv_transfer_params` of the answer, once offered. */
  transferOut: Readonly<Record<string, unknown>> | undefined = undefined
  /** Chunks the socket has not accepted yet (or held by a stall); `queueHead` is the next to write. */
  private readonly queue: Array<string> = []
  private queueHead = 0
  private paused = false
  private stalled = false
  private stallTimer: ReturnType<typeof setTimeout> | undefined
  private ending = false
  private closed = false
  private began = false
  private serverAborted = false

  constructor(
    private readonly ctx: SimContext,
    private readonly res: ServerResponse,
    private readonly encoder: Encoder,
    readonly meta: GenerationMeta,
    private readonly faults: RequestFaults
  ) {}

  get promptTokens(): number {
    return this.meta.prompt.length
  }

  get cachedTokens(): number {
    return Math.max(0, this.seq?.cachedPromptTokens ?? 0)
  }

  get completionTokens(): number {
    return this.seq?.outputCount ?? 0
  }

  /** Wall-clock time now, ISO 8601 (Ollama's `created_at`). */
  isoNow(): string {
    return new Date(this.ctx.epochMs()).toISOString()
  }

  /** Text (or tool-call arguments) generated so far. */
  text(): string {
    return this.meta.plan.pieces.slice(0, this.completionTokens).join("")
  }

  get finishReason(): FinishReason {
    if (this.serverAborted) return "abort"
    const plan = this.meta.plan
    if (plan.tool !== undefined && plan.finish === "stop") return "tool_calls"
    return plan.finish
  }

  /** Simulated-time durations (ms) for dialects that report them (Ollama). */
  timings(): { readonly totalMs: number; readonly promptMs: number; readonly evalMs: number } {
    const s = this.seq
    if (s === undefined || s.firstTokenMs < 0) return { totalMs: 0, promptMs: 0, evalMs: 0 }
    const end = s.finishMs >= 0 ? s.finishMs : s.lastTokenMs
    return { totalMs: end - s.arrivalMs, promptMs: s.firstTokenMs - s.arrivalMs, evalMs: end - s.firstTokenMs }
  }

  /** Queues the request in the engine and watches the client connection. */
  submit(transferredTokens = 0): void {
    const { plan, prompt } = this.meta
    const seq = this.ctx.engine.submit(
      { prompt, outputTokens: plan.ids.length, outputIds: plan.ids, finish: plan.finish, transferredTokens },
      this,
      this.ctx.virtualNow()
    )
    this.seq = seq
    if (this.meta.rid !== undefined) this.ctx.byRid.set(this.meta.rid, seq)
    this.res.on("close", () => this.onClose())
    if (this.meta.stream && this.encoder.headersAtAccept) {
      this.writeStreamHeaders()
      this.res.flushHeaders()
    }
    this.ctx.wake()
  }

  onToken(seq: Sequence<SequenceSink>): void {
    if (this.closed) return
    const i = seq.outputCount - 1
    const f = this.faults
    if (i === f.resetAt) return this.reset()
    if (i === f.midStreamErrorAt) {
      this.ctx.engine.fail(seq)
      return this.failWith("midstream")
    }
    const last = seq.status === "finished"
    if (!this.meta.stream) {
      if (last) this.completeBody()
      return
    }
    if (!this.began) {
      this.began = true
      this.writeStreamHeaders()
      for (const c of this.encoder.begin(this)) this.push(c)
    }
    if (i === f.stallAt) this.stall()
    if (i === f.malformedAt) this.push(this.encoder.malformed(this))
    const chunk = this.encoder.token(this, i)
    if (chunk !== undefined) this.push(chunk)
    if (last) this.endStream(this.encoder.end(this))
  }

  onFail(_seq: Sequence<SequenceSink>, reason: "oom" | "crash"): void {
    if (!this.closed) this.failWith(reason)
  }

  onServerAbort(_seq: Sequence<SequenceSink>): void {
    if (this.closed) return
    this.serverAborted = true
    if (!this.meta.stream) return this.completeBody()
    if (!this.began) {
      this.began = true
      this.writeStreamHeaders()
      for (const c of this.encoder.begin(this)) this.push(c)
    }
    this.endStream(this.encoder.end(this))
  }

  private writeStreamHeaders(): void {
    if (this.res.headersSent) return
    this.res.writeHead(200, {
      "content-type": this.encoder.contentType,
      "cache-control": "no-cache",
      "x-request-id": this.meta.id
    })
  }

  private failWith(kind: FailureKind): void {
    if (this.meta.stream && this.res.headersSent) {
      this.endStream(this.encoder.error(this, kind))
      return
    }
    const { body, status } = this.encoder.failure(this, kind)
    this.forget()
    sendJson(this.res, status, body)
  }

  private completeBody(): void {
    if (this.remoteDecode !== undefined && this.transferOut === undefined && !this.serverAborted) {
      this.transferOut = offer(this.ctx, this.meta.id, this.promptTokens, this.remoteDecode.host)
    }
    const body = JSON.stringify(this.encoder.complete(this))
    const malformed = this.faults.malformedAt >= 0 && this.faults.malformedAt < this.completionTokens
    const text = malformed ? body.slice(0, Math.max(1, Math.floor(body.length / 2))) : body
    const send = () => {
      if (this.closed || this.res.headersSent) return
      this.res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
        "x-request-id": this.meta.id
      })
      this.res.end(text)
      this.forget()
    }
    if (this.faults.stallAt >= 0 && this.faults.stallAt < this.completionTokens) {
      this.stallTimer = setTimeout(send, this.ctx.faults.stallWallMs())
    } else {
      send()
    }
  }

  private reset(): void {
    const seq = this.seq
    if (seq !== undefined) this.ctx.engine.abort(seq)
    this.closed = true
    this.forget()
    this.res.socket?.resetAndDestroy()
  }

  private stall(): void {
    this.stalled = true
    this.stallTimer = setTimeout(() => {
      this.stalled = false
      this.flush()
    }, this.ctx.faults.stallWallMs())
  }

  private push(chunk: string): void {
    this.queue.push(chunk)
    if (this.queue.length - this.queueHead === 1) this.flush()
  }

  private endStream(chunks: ReadonlyArray<string>): void {
    for (const c of chunks) this.push(c)
    this.ending = true
    this.forget()
    this.flush()
  }

  private flush(): void {
    const res = this.res
    const q = this.queue
    while (!this.closed && !this.paused && !this.stalled && this.queueHead < q.length) {
      const chunk = q[this.queueHead]!
      q[this.queueHead++] = ""
      if (this.queueHead === q.length) {
        q.length = 0
        this.queueHead = 0
      }
      if (!res.write(chunk)) {
        this.paused = true
        res.once("drain", () => {
          this.paused = false
          this.flush()
        })
      }
    }
    if (this.ending && this.queueHead === q.length && !this.stalled && !this.closed && !res.writableEnded) res.end()
  }

  private forget(): void {
    if (this.meta.rid !== undefined && this.seq !== undefined && this.ctx.byRid.get(this.meta.rid) === this.seq) {
      this.ctx.byRid.delete(this.meta.rid)
    }
  }

  private onClose(): void {
    this.closed = true
    if (this.stallTimer !== undefined) clearTimeout(this.stallTimer)
    this.queue.length = 0
    this.queueHead = 0
    const seq = this.seq
    if (seq !== undefined && !seq.done) this.ctx.engine.abort(seq)
    this.forget()
  }
}
