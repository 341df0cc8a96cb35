/**
 * The public routes: the OpenAI-compatible API, health, the admin API (Admin.ts), and
 * OpenAI-style 404/405 answers for everything else. Handlers live in Handlers.ts; this file
 * only wires paths.
 */
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { envelope } from "../api/openai/ErrorEnvelope.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { CallKind } from "../backends/Contract.ts"
import * as Admin from "./Admin.ts"
import { makeHandler } from "./Handlers.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { UsageSink } from "../accounting/Accounting.ts"
import { TokenBudget } from "../admission/Budget.ts"
import { Fleet } from "../backends/Fleet.ts"
import * as Metrics from "../observability/Metrics.ts"
import { Breakers } from "../resilience/Breakers.ts"

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  HttpServerResponse.text(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    contentType: "application/json",
    headers
  })

const notFound = (path: string) =>
  json(404, envelope({ message: `Unknown request URL: ${path}.`, type: "invalid_request_error", param: null, code: "unknown_url" }))

const methodNotAllowed = (method: string, path: string, allow: string) =>
  json(
    405,
    envelope({ message: `Method ${method} is not allowed on ${path}.`, type: "invalid_request_error", param: null, code: "method_not_allowed" }),
    { allow }
  )

const inference = (path: `/${string}`, kind: CallKind) =>
  Layer.mergeAll(
    HttpRouter.use((router) => Effect.flatMap(makeHandler(kind), (handler) => router.add("POST", path, handler))),
    ...(["GET", "PUT", "PATCH", "DELETE"] as const).map((method) =>
      HttpRouter.add(method, path, (request) => Effect.succeed(methodNotAllowed(request.method, path, "POST")))
    )
  )

const Models = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const config = yield* GatewayConfig
    yield* router.add("GET", "/v1/models", Effect.map(config.current, (plan) => {
      const data = [...plan.models.values()].map((m) => ({
        id: m.id,
        object: "model",
        created: 0,
        owned_by: "sluice",
        aliases: m.aliases
      }))
      return json(200, { object: "list", data })
    }))
    yield* router.add("GET", "/v1/models/:model", (request) =>
      Effect.map(config.current, (plan) => {
        const name = decodeURIComponent(request.url.split("/").pop() ?? "")
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
    yield* router.add("GET", "/metrics", Effect.gen(function*() {
      const text = yield* Metrics.render({
        backends: fleet.all,
        breakers: breakers.snapshot,
        budget: yield* budget.snapshot,
        accounting: yield* sink.snapshot
      })
      return HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
    }))
  })
)

const Fallback = HttpRouter.add("*", "*", (request) => Effect.succeed(notFound(request.url)))

export const layer = Layer.mergeAll(
  inference("/v1/chat/completions", "chat"),
  inference("/v1/completions", "completion"),
  inference("/v1/embeddings", "embedding"),
  inference("/v1/rerank", "rerank"),
  Models,
  Health,
  Prometheus,
  Admin.layer,
  Fallback
)
