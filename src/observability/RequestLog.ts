/**
 * One structured JSON line per finished request (accepted or rejected): request id,
 * model, backend, status, outcome, tokens, time to first token, duration, attempts.
 * Written straight to stdout as one `write` per line (cheap, never interleaved); tests
 * swap the sink to capture lines. It must never throw into a request.
 */
import { Context, Layer } from "effect"

export interface RequestLine {
  readonly ts: string
  readonly level: "info" | "warn" | "error"
  readonly msg: "request"
  readonly request_id: string
  readonly method: string
  readonly path: string
  readonly model: string | undefined
  readonly backend: string | undefined
  readonly status: number
  readonly outcome: string
  readonly prompt_tokens: number
  readonly completion_tokens: number
  readonly cached_tokens: number
  readonly ttft_ms: number | undefined
  readonly duration_ms: number
  readonly attempts: ReadonlyArray<{ readonly backend: string; readonly reason: string }>
  readonly error?: string | undefined
  readonly tenant?: string | undefined
}

export class RequestLog extends Context.Service<RequestLog, {
  readonly enabled: boolean
  readonly write: (line: RequestLine) => void
}>()("sluice/observability/RequestLog") {
  static readonly stdout = (enabled: boolean) =>
    Layer.succeed(RequestLog, RequestLog.of({
      enabled,
      write: (line) => {
        process.stdout.write(JSON.stringify(line) + "\n")
      }
    }))

  /** Collects lines in memory (tests). */
  static readonly memory = (lines: Array<RequestLine>) =>
    Layer.succeed(RequestLog, RequestLog.of({ enabled: true, write: (line) => void lines.push(line) }))
}
