/**
 * The backend actor's KV-event subscription: one long-lived `GET /kv_events?since=SEQ` per backend with
 * `kv_events` on, whose NDJSON batches (api/KvEvents.ts) feed the backend's precise prefix index
 * (KvBlockIndex.ts). On every (re)connect it asks for a replay after the last batch it applied; the index
 * detects what replay could not give back (a gap) and a restarted engine (a new `x-kv-events-epoch`) and clears.
 * While disconnected the index is not live and the router falls back to the approximate index.
 *
 * Bounds: a line longer than `MAX_LINE` bytes ends the connection (a reconnect follows, and the index sees the
 * gap); undecodable lines are skipped and counted (the next batch's sequence number shows the loss). An engine
 * without the endpoint (404) is asked again only every `ABSENT_RETRY_MS`. Must never: block the request path
 * (it runs in the actor's scope, on a control connection of the pool that holds no slot).
 */
import { Duration, Effect } from "effect"
import { decodeLine, KV_EVENTS_PATH } from "../api/KvEvents.ts"
import type { Plan } from "../config/Plan.ts"
import type { Backend } from "./Backend.ts"
import { type FailureReason, Unavailable } from "./Failure.ts"
import type { KvBlockIndex } from "./KvBlockIndex.ts"
import { pullBody, readAll } from "./Upstream.ts"

export const MAX_LINE = 16 * 1024 * 1024
export const RECONNECT_MS = 500
export const ABSENT_RETRY_MS = 30_000

const readFailure = (e: unknown): FailureReason => new Unavailable({ status: undefined, message: `kv_events: ${String(e)}` })

/** Splits chunks into lines and applies each decoded batch; false when a line is over `MAX_LINE`. */
export class LineFeeder {
  private pending: Array<Buffer> = []
  private pendingBytes = 0
  /** Lines that did not decode as a batch. */
  rejected = 0

  constructor(private readonly index: KvBlockIndex) {}

  push(chunk: Buffer): boolean {
    let start = 0
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl)
      const line = this.pending.length === 0 ? piece : Buffer.concat([...this.pending, piece])
      this.pending = []
      this.pendingBytes = 0
      start = nl + 1
      if (line.length > MAX_LINE) return false
      if (line.length === 0) continue
      const batch = decodeLine(line.toString("utf8"))
      if (batch._tag === "Some") this.index.apply(batch.value)
      else this.rejected++
    }
    if (start < chunk.length) {
      this.pending.push(chunk.subarray(start))
      this.pendingBytes += chunk.length - start
      if (this.pendingBytes > MAX_LINE) return false
    }
    return true
  }
}

/** One subscription, until the stream ends or fails; returns how long to wait before the next. */
export const subscribeOnce = (backend: Backend, index: KvBlockIndex, plan: Plan): Effect.Effect<number> =>
  Effect.scoped(Effect.gen(function*() {
    const since = index.since
    const path = since === undefined ? KV_EVENTS_PATH : `${KV_EVENTS_PATH}?since=${since}`
    const res = yield* backend.pool.streamFromOrigin(path, plan.health.probeTimeoutMs)
    if (res.status !== 200) {
      yield* readAll(res.body, 64 * 1024, readFailure).pipe(Effect.ignore)
      return res.status === 404 || res.status === 405 ? ABSENT_RETRY_MS : RECONNECT_MS
    }
    const epochHeader = res.headers["x-kv-events-epoch"]
    const blockSizeHeader = res.headers["x-kv-events-block-size"]
    index.connected(
      typeof epochHeader === "string" ? epochHeader : undefined,
      typeof blockSizeHeader === "string" ? Number(blockSizeHeader) : undefined
    )
    const feeder = new LineFeeder(index)
    const next = pullBody(res.body, readFailure)
    yield* Effect.gen(function*() {
      for (;;) {
        const chunk = yield* next()
        if (chunk === null || !feeder.push(chunk)) return
      }
    }).pipe(Effect.ensuring(Effect.sync(() => index.disconnected())))
    return RECONNECT_MS
  })).pipe(Effect.catch(() => Effect.succeed(RECONNECT_MS)))

/** The subscription loop body: subscribe, then wait before subscribing again. */
export const subscription = (backend: Backend, index: KvBlockIndex, plan: Plan): Effect.Effect<void> =>
  Effect.flatMap(subscribeOnce(backend, index, plan), (waitMs) => Effect.sleep(Duration.millis(waitMs)))
