/**
 * The public routes: the OpenAI-compatible API, health, a tenant's usage (Usage.ts), the admin API (Admin.ts, Reload.ts), and
 * OpenAI-style 404 answers for everything else (405 on an inference path, in its API's own
 * error format), plus CORS when `server.cors` is
 * configured (off by default: no CORS header is ever sent and a preflight gets no allow
 * header). The inference endpoints run the request pipeline (request/Pipeline.ts) with their
 * inbound API (OpenAI.ts; Anthropic.ts for `/v1/messages`; Responses.ts for `/v1/responses`);
 * this file only wires paths.
 */
import { Effect, Layer, Schedule } from "effect"
import { HttpMiddleware, HttpRouter, HttpServerError, HttpServerResponse } from "effect/http"
import { envelope } from "../api/openai/ErrorEnvelope.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { CallKind } from "../api/openai/Calls.ts"
import { Connections } from "./Connections.ts"
import * as Admin from "./Admin.ts"
import * as Dashboard from "./Dashboard.ts"
import * as Reload from "./Reload.ts"
import * as Usage from "./Usage.ts"
import * as Pipeline from "../request/Pipeline.ts"
import * as OpenAI from "./OpenAI.ts"
import * as Anthropic from "./Anthropic.ts"
import * as Responses from "./Responses.ts"
import type { Inbound } from "../request/Inbound.ts"
import { err } from "../request/WireErrors.ts"
import { Lifecycle } from "../request/Lifecycle.ts"
import { UsageSink } from "../accounting/Accounting.ts"
import { TokenBudget } from "../admission/Budget.ts"
import { Fleet } from "../backends/Fleet.ts"
import { EventLoopDelay } from "../observability/EventLoopDelay.ts"
import * as Metrics from "../observability/Metrics.ts"
import * as Tracing from "../observability/Tracing.ts"
import { Breakers } from "../resilience/Breakers.ts"

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  HttpServerResponse.text(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    contentType: "application/json",
    headers
  })

const notFound = (path: string) =>
  json(404, envelope({ message: `Unknown request URL: ${path}.`, type: "invalid_request_error", param: null, code: "unknown_url" }))

/** The `{id}` of `/v1/models/{id}` (URL-decoded when it decodes; ids contain `/`, so everything after the prefix). */
const modelName = (url: string): string => {
  const raw = url.slice("/v1/models/".length).split("?")[0] ?? ""
  let name = raw
  try {
    name = decodeURIComponent(raw)
  } catch {
    // Malformed percent-encoding: look the raw text up, which matches no model.
  }
  return name.length > 256 ? `${name.slice(0, 256)}…` : name
}

/**
 * An inference path answers other methods with 405 and `allow: POST`, in its inbound API's
 * own error format (Anthropic's `{"type":"error",...}` on `/v1/messages`, OpenAI's envelope
 * on the OpenAI and Responses paths).
 */
const postOnly = <M, E, R>(path: `/${string}`, inbound: Inbound<M>, route: Layer.Layer<never, E, R>) =>
  Layer.mergeAll(
    route,
    ...(["GET", "PUT", "PATCH", "DELETE"] as const).map((method) =>
      HttpRouter.add(method, path, (request) =>
        Effect.sync(() =>
          HttpServerResponse.setHeader(
            inbound.error(
              err(405, "invalid_request_error", `Method ${request.method} is not allowed on ${path}.`, "method_not_allowed"),
              Pipeline.requestIdOf(request)
            ),
            "allow",
            "POST"
          )
        ))
    )
  )

const inference = <M>(path: `/${string}`, inbound: Inbound<M>) =>
  postOnly(path, inbound, HttpRouter.use((router) => Effect.flatMap(Pipeline.handler(inbound), (handler) => router.add("POST", path, handler))))

const openai = (path: `/${string}`, kind: CallKind) => inference(path, OpenAI.inbound(kind))

const CountTokens = postOnly(
  "/v1/messages/count_tokens",
  Anthropic.countTokens,
  HttpRouter.use((router) =>
    Effect.flatMap(
      Pipeline.tokenCounter(Anthropic.countTokens, Anthropic.countAnswer),
      (handler) => router.add("POST", "/v1/messages/count_tokens", handler)
    )
  )
)

const Models = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const config = yield* GatewayConfig
    // One wildcard route for the list and for one model: a `:model` parameter is decoded by
    // the router, which answers a malformed or long one with an empty 404 before any route
    // runs; here the id is decoded (or not) by `modelName`.
    yield* router.add("GET", "/v1/models/*", (request) =>
      Effect.map(config.current, (plan) => {
        const path = request.url.split("?")[0] ?? ""
        if (path === "/v1/models" || path === "/v1/models/") {
          const data = [...plan.models.values()].map((m) => ({
            id: m.id,
            object: "model",
            created: 0,
            owned_by: "sluice",
            aliases: m.aliases
          }))
          return json(200, { object: "list", data })
        }
        const name = modelName(path)
        const id = plan.modelNames.get(name)
        return id === undefined
          ? json(404, envelope({ message: `The model \`${name}\` does not exist.`, type: "invalid_request_error", param: "model", code: "model_not_found" }))
          : json(200, { id, object: "model", created: 0, owned_by: "sluice" })
      }))
  })
)

const Health = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const { state } = yield* Lifecycle
    yield* router.add("GET", "/health/live", Effect.sync(() => json(200, { status: "ok" })))
    yield* router.add("GET", "/health/ready", Effect.sync(() =>
      state.draining
        ? json(503, { status: "draining", in_flight: state.inFlight })
        : json(200, { status: "ready", in_flight: state.inFlight })))
  })
)

const Prometheus = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const fleet = yield* Fleet
    const breakers = yield* Breakers
    const budget = yield* TokenBudget
    const sink = yield* UsageSink
    const connections = yield* Connections
    const eventLoop = yield* EventLoopDelay
    const gauges = Effect.gen(function*() {
      return {
        backends: fleet.all.map((b) => ({
          id: b.id,
          health: b.health,
          inFlight: b.slots.inUse,
          slotQueue: b.slots.queued,
          upstreamQueued: b.pool.queued(),
          loopRestarts: b.loopRestarts,
          kvIndex: b.kvBlocks === undefined
            ? undefined
            : { blocks: b.kvBlocks.size, live: b.kvBlocks.live, resyncs: b.kvBlocks.resyncs },
          signals: b.signals,
          tokensPerSecond: b.tokensPerSecond
        })),
        breakers: breakers.snapshot,
        budget: yield* budget.snapshot,
        accounting: yield* sink.snapshot,
        connections: { open: connections.open(), rejected: connections.rejected() }
      } satisfies Metrics.Gauges
    })
    // OTLP metrics read the gauges without a scrape: refresh them at the export's pace.
    const refreshMs = yield* Tracing.metricsRefreshMs
    if (refreshMs !== undefined) {
      yield* Effect.forkScoped(
        Effect.flatMap(gauges, Metrics.refresh).pipe(Effect.repeat(Schedule.spaced(refreshMs)))
      )
    }
    yield* router.add("GET", "/metrics", Effect.gen(function*() {
      const text = yield* Metrics.render(yield* gauges)
      const delay = yield* eventLoop.exposition
      return HttpServerResponse.text(text.endsWith("\n") || text === "" ? text + delay : `${text}\n${delay}`, {
        contentType: "text/plain; version=0.0.4; charset=utf-8"
      })
    }))
  })
)

const Fallback = HttpRouter.add("*", "*", (request) => Effect.succeed(notFound(request.url)))

/**
 * Browser access, from the plan at start: only origins listed under `server.cors` get an
 * `access-control-allow-origin` (theirs, echoed; `*` allows any), on preflights and on
 * answers. Not configured: nothing is added.
 */
const Cors = Layer.unwrap(Effect.map(GatewayConfig, ({ initial }) => {
  const cors = initial.server.cors
  if (cors === undefined) return Layer.empty
  const any = cors.allowedOrigins.includes("*")
  const allowed = new Set(cors.allowedOrigins)
  return HttpRouter.middleware(
    HttpMiddleware.cors({
      // A predicate (not a list) so that only a matching origin is ever echoed.
      allowedOrigins: (origin: string) => any || allowed.has(origin),
      allowedMethods: ["GET", "POST"],
      allowedHeaders: cors.allowedHeaders,
      exposedHeaders: [
        "x-request-id",
        "request-id",
        "x-sluice-backend",
        "x-sluice-model",
        "retry-after",
        ...["limit", "remaining", "reset"].flatMap((k) => [`x-ratelimit-${k}-requests`, `x-ratelimit-${k}-tokens`])
      ],
      maxAge: cors.maxAgeSeconds
    }),
    { global: true }
  )
}))

/** The router's own "no route" (a path it cannot decode, a parameter over its length limit). */
const routeNotFound = (e: unknown): e is HttpServerError.HttpServerError =>
  e instanceof HttpServerError.HttpServerError && e.reason._tag === "RouteNotFound"

/**
 * The router refuses a path it cannot decode (`/v1/models/%`) before any route runs, with
 * an empty 404; a global middleware (it wraps the router's lookup too) answers that in the
 * OpenAI envelope like every other 404. Only that failure is caught: interrupts and every
 * other error pass through untouched (a client abort must still reach the request scope).
 */
const answerRouteNotFound = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R> =>
  Effect.catchIf(
    app,
    (e: E): e is E & HttpServerError.HttpServerError => routeNotFound(e),
    (e) => Effect.succeed(notFound(e.reason.request.url.slice(0, 256)))
  )

const RouteErrors = HttpRouter.middleware(answerRouteNotFound, { global: true })

export const layer = Layer.mergeAll(
  openai("/v1/chat/completions", "chat"),
  openai("/v1/completions", "completion"),
  openai("/v1/embeddings", "embedding"),
  openai("/v1/rerank", "rerank"),
  inference("/v1/messages", Anthropic.messages),
  CountTokens,
  inference("/v1/responses", Responses.responses),
  Models,
  Health,
  Prometheus,
  Admin.layer,
  Dashboard.layer,
  Reload.routes,
  Usage.layer,
  Fallback,
  Cors,
  RouteErrors
)
