/**
 * `GET /v1/usage`: a tenant reads its own usage with its own API key (`Authorization:
 * Bearer` or `x-api-key`, checked by the same authenticators as inference), from the audit
 * ledger: requests, prompt, cached and completion tokens, in total, by model and by UTC
 * day, for `from`..`to` (dates or ISO times; default the last 30 days; at most 366 days).
 * The admin's view of every tenant is `GET /admin/v1/usage` (Admin.ts), built by `answer`.
 *
 * Owns the wire shape of usage reports. Must never: take the tenant from the request (only
 * from the identity its key proves), or read another tenant's rows.
 */
import { Clock, Duration, Effect, Option } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { UsageSink } from "../accounting/Accounting.ts"
import { decodeQuery, report, UsageUnavailable } from "../accounting/UsageReport.ts"
import { envelope } from "../api/openai/ErrorEnvelope.ts"
import { Authentication } from "../auth/Authentication.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import { TenantId } from "../domain/Ids.ts"
import { requestIdOf } from "../request/Pipeline.ts"
import * as ErrorResponse from "./ErrorResponse.ts"

const READ_TIMEOUT_S = 10

const json = (status: number, body: unknown) => HttpServerResponse.text(JSON.stringify(body), { status, contentType: "application/json" })

const paramsOf = (request: HttpServerRequest.HttpServerRequest) => {
  const q = request.url.indexOf("?")
  return new URLSearchParams(q === -1 ? "" : request.url.slice(q + 1))
}

/**
 * The report for `tenant` (a tenant's own query) or, with `tenant` undefined, for the
 * `tenant` parameter if the caller (the admin) may give one, else every tenant.
 */
export const answer = (
  request: HttpServerRequest.HttpServerRequest,
  scope: { readonly _tag: "Tenant"; readonly tenant: TenantId } | { readonly _tag: "Admin" }
) =>
  Effect.gen(function*() {
    const sink = yield* UsageSink
    const now = yield* Clock.currentTimeMillis
    const decoded = decodeQuery(paramsOf(request), now, scope._tag === "Admin" ? ["from", "to", "tenant"] : ["from", "to"])
    if (decoded instanceof Error) return yield* Effect.fail(decoded)
    const tenant = scope._tag === "Tenant" ? scope.tenant : decoded.tenant === undefined ? undefined : TenantId(decoded.tenant)
    const query = { tenant, fromMs: decoded.fromMs, toMs: decoded.toMs }
    // A store that does not answer in time is a 503, never a hung request.
    const rows = yield* sink.read(query).pipe(
      Effect.timeoutOrElse({ duration: Duration.seconds(READ_TIMEOUT_S), orElse: () => Effect.fail(new UsageUnavailable({ cause: "timeout" })) })
    )
    return json(200, report(query, rows))
  })

export const layer = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const config = yield* GatewayConfig
    const authentication = yield* Authentication
    const sink = yield* UsageSink
    yield* router.add("GET", "/v1/usage", (request) => {
      const requestId = requestIdOf(request)
      return Effect.gen(function*() {
        const plan = yield* config.current
        const identity = yield* authentication.authenticate(
          { headers: request.headers, remoteAddress: Option.getOrUndefined(request.remoteAddress) },
          plan
        )
        return yield* answer(request, { _tag: "Tenant", tenant: identity.tenant })
      }).pipe(
        Effect.provideService(UsageSink, sink),
        Effect.catch((error) => Effect.succeed(ErrorResponse.response(ErrorResponse.toWire(error), requestId)))
      )
    })
    for (const method of ["POST", "PUT", "PATCH", "DELETE"] as const) {
      yield* router.add(method, "/v1/usage", (request) =>
        Effect.succeed(HttpServerResponse.text(
          envelope({
            message: `Method ${request.method} is not allowed on /v1/usage.`,
            type: "invalid_request_error",
            param: null,
            code: "method_not_allowed"
          }),
          { status: 405, contentType: "application/json", headers: { allow: "GET" } }
        )))
    }
  })
)
