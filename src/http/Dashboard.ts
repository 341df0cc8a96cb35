/**
 * The live dashboard: the page at `/admin/dashboard` and its data, a stream of snapshots at
 * `/admin/v1/dashboard/events` (Server-Sent Events, one `snapshot` event a second) behind the
 * admin token (`Authorization: Bearer <SLUICE_ADMIN_TOKEN>`). Without a configured token
 * both answer 404, as the admin API does. A snapshot is each backend's health, breaker,
 * in-flight requests, gateway and engine queues, KV-cache use and tokens/s, and the last
 * minute's request rate, tokens/s, first-token and inter-token percentiles, errors by
 * reason, top tenants by tokens and the recent failures (observability/LiveStats.ts).
 *
 * Bounded: at most `MAX_STREAMS` streams at once (then 429); each stream is pulled by the
 * client (a snapshot is computed only when the last one was written, so nothing queues for
 * a slow reader), a reader that has taken nothing for `stallMs` (15 s) is dropped (its
 * socket closed), and a stream ends after `maxEvents` (600) snapshots (the page reconnects)
 * or, within one interval, when the gateway starts draining.
 *
 * Owns the snapshot's wire shape and the streams' limits. Must never: accept the token from
 * a URL or a cookie, or put a key, a prompt or a completion in a snapshot.
 */
import { Clock, Context, Effect, Stream } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { IncomingMessage } from "node:http"
import { AdminToken } from "../auth/AdminToken.ts"
import { AdminDisabled, AdminUnauthorized, DashboardBusy } from "../auth/Errors.ts"
import { Fleet } from "../backends/Fleet.ts"
import type { BreakerState } from "../domain/States.ts"
import { LiveStats, type Summary } from "../observability/LiveStats.ts"
import { Lifecycle } from "../request/Lifecycle.ts"
import { requestIdOf } from "../request/Pipeline.ts"
import * as Respond from "../request/Respond.ts"
import { Breakers } from "../resilience/Breakers.ts"
import * as Page from "./dashboard/Page.ts"
import * as ErrorResponse from "./ErrorResponse.ts"

export const PAGE_PATH = "/admin/dashboard"
export const EVENTS_PATH = "/admin/v1/dashboard/events"
export const MAX_STREAMS = 8
/** The window of the rates and percentiles. */
export const WINDOW_MS = 60_000

/** The streams' pace and patience (a reference: tests shorten them). */
export const StreamLimits = Context.Reference<{
  /** Between snapshots. */
  readonly intervalMs: number
  /** A reader that has taken nothing for this long is dropped. */
  readonly stallMs: number
  /** Snapshots per stream before it ends (the page reconnects). */
  readonly maxEvents: number
}>("sluice/http/Dashboard/StreamLimits", { defaultValue: () => ({ intervalMs: 1000, stallMs: 15_000, maxEvents: 600 }) })

/** Worst first: the state a backend row shows when several (model, GPU) breakers apply. */
const SEVERITY: ReadonlyArray<BreakerState> = ["open", "half_open", "degraded", "closed"]

export interface Snapshot {
  readonly at: string
  readonly gateway: { readonly inFlight: number; readonly draining: boolean }
  readonly backends: ReadonlyArray<{
    readonly id: string
    readonly health: string
    readonly breaker: BreakerState
    readonly inFlight: number
    readonly maxConcurrency: number
    readonly queue: number
    readonly engineQueue: number | null
    readonly kvUsage: number | null
    readonly tokensPerSecond: number
    readonly streamTokensPerSecond: number | null
  }>
  readonly summary: Summary
}

const pageResponse = HttpServerResponse.text(Page.html, {
  contentType: "text/html; charset=utf-8",
  headers: {
    "content-security-policy": Page.contentSecurityPolicy,
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY"
  }
})

export const layer = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const token = yield* AdminToken
    const fleet = yield* Fleet
    const breakers = yield* Breakers
    const live = yield* LiveStats
    const { state } = yield* Lifecycle
    const limits = yield* StreamLimits
    let open = 0

    const snapshot = (now: number): Snapshot => {
      const summary = live.summary(now, WINDOW_MS)
      const states = new Map(breakers.snapshot(now).map((b) => [b.key, b.state]))
      return {
        at: new Date(now).toISOString(),
        gateway: { inFlight: state.inFlight, draining: state.draining },
        backends: fleet.all.map((b) => {
          let breaker: BreakerState = "closed"
          for (const model of b.plan.models.keys()) {
            const s = states.get(`${model}|${b.plan.gpu}`)
            if (s !== undefined && SEVERITY.indexOf(s) < SEVERITY.indexOf(breaker)) breaker = s
          }
          return {
            id: b.id,
            health: b.health,
            breaker,
            inFlight: b.slots.inUse,
            maxConcurrency: b.plan.maxConcurrency,
            queue: b.slots.queued,
            engineQueue: b.signals?.waiting ?? null,
            kvUsage: b.signals?.kvUsage ?? null,
            tokensPerSecond: summary.backendTokensPerSecond[b.id] ?? 0,
            streamTokensPerSecond: b.tokensPerSecond ?? null
          }
        }),
        summary
      }
    }

    const refuse = (request: HttpServerRequest.HttpServerRequest, error: ErrorResponse.AdminError) =>
      Effect.succeed(ErrorResponse.response(ErrorResponse.toWire(error), requestIdOf(request)))

    yield* router.add("GET", PAGE_PATH, (request) =>
      // The page holds no data (the stream does): it exists when the admin API does.
      token.check(undefined) === "disabled" ? refuse(request, new AdminDisabled({ path: PAGE_PATH })) : Effect.succeed(pageResponse))

    yield* router.add("GET", EVENTS_PATH, (request) => {
      const checked = token.check(request.headers["authorization"])
      if (checked === "disabled") return refuse(request, new AdminDisabled({ path: EVENTS_PATH }))
      if (checked === "wrong") return refuse(request, new AdminUnauthorized())
      if (open >= MAX_STREAMS) return refuse(request, new DashboardBusy({ max: MAX_STREAMS }))
      return Effect.gen(function*() {
        // The stream's slot is the request scope's: returned when the response ends or the client leaves.
        open++
        yield* Effect.addFinalizer(() => Effect.sync(() => void open--))
        let pulledAt = yield* Clock.currentTimeMillis
        const socket = request.source instanceof IncomingMessage ? request.source.socket : undefined
        // A reader that takes nothing for `stallMs` holds the writer on `drain`: close its socket.
        yield* Effect.forkScoped(Effect.gen(function*() {
          for (;;) {
            yield* Effect.sleep(Math.max(limits.intervalMs, 100))
            if ((yield* Clock.currentTimeMillis) - pulledAt > limits.stallMs) {
              yield* Effect.logWarning("dashboard: slow reader dropped")
              socket?.destroy()
              return
            }
          }
        }))
        const events = Stream.tick(limits.intervalMs).pipe(
          Stream.take(limits.maxEvents),
          // A draining gateway ends the stream at the next tick: a dashboard never holds shutdown.
          Stream.takeWhile(() => !state.draining),
          Stream.mapEffect(() =>
            Effect.map(Clock.currentTimeMillis, (now) => {
              pulledAt = now
              return `event: snapshot\ndata: ${JSON.stringify(snapshot(now))}\n\n`
            })
          ),
          Stream.encodeText
        )
        return Respond.byIdentity(HttpServerResponse.stream(events, {
          contentType: "text/event-stream",
          headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
        }))
      })
    })
  })
)
