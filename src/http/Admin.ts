/**
 * The admin API, `/admin/v1/...`, behind `Authorization: Bearer <SLUICE_ADMIN_TOKEN>`:
 *
 *   GET    /admin/v1/tenants                    list tenants
 *   POST   /admin/v1/tenants                    {id, name?} → 201 the tenant
 *   GET    /admin/v1/tenants/:tenant            one tenant
 *   PATCH  /admin/v1/tenants/:tenant            {name?, disabled?}
 *   DELETE /admin/v1/tenants/:tenant            disable it (rows that name it stay; its keys stop working)
 *   GET    /admin/v1/tenants/:tenant/keys       its keys (never a secret or a hash)
 *   POST   /admin/v1/tenants/:tenant/keys       {name, models?, expires_at? | expires_in?} → 201 with `key`, shown once
 *   GET    /admin/v1/keys                       every key
 *   GET    /admin/v1/keys/:key                  one key
 *   PATCH  /admin/v1/keys/:key                  {expires_at: time | null} or {expires_in: "30d"}
 *   POST   /admin/v1/keys/:key/revoke           revoke now (also DELETE /admin/v1/keys/:key)
 *   POST   /admin/v1/keys/:key/rotate           {grace?: "7d"} → 201 the new key (shown once); the old one expires after the grace
 *   GET    /admin/v1/tenants/:tenant/limits     the limits in force (config and database merged)
 *   PUT    /admin/v1/tenants/:tenant/limits     {requests_per_minute?: n | null, ...} merged into the stored set (null lifts a limit)
 *   GET|PUT /admin/v1/tenants/:tenant/models/:model/limits   the tenant's limits on one model
 *   GET|PUT /admin/v1/keys/:key/limits           one key's limits
 *   GET    /admin/v1/prices                     every price in force
 *   PUT    /admin/v1/prices/:model              {input, output, cached_input?, backend?} USD per million tokens
 *   DELETE /admin/v1/prices/:model              ?backend=b: back to the config file's price
 *   GET    /admin/v1/usage?tenant=&from=&to=    usage of one tenant or of all (by tenant too), as Usage.ts reports it
 *
 * Without a configured token every admin path answers 404, as an unknown URL. Errors go
 * through ErrorResponse.ts in the OpenAI envelope. Owns the wire shape of tenants and keys.
 * Must never: return or log a raw key except in the one creation answer, or a hash ever.
 */
import { Clock, Effect, Schema } from "effect"
import { QuotaTable } from "../admission/Quotas.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import type { LimitSet } from "../domain/Quotas.ts"
import { type LimitScope, QuotaStore, StoredLimitsSchema } from "../stores/QuotaStore.ts"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { UsageSink } from "../accounting/Accounting.ts"
import { AdminToken } from "../auth/AdminToken.ts"
import { AdminDisabled, AdminUnauthorized, InvalidAdminRequest } from "../auth/Errors.ts"
import { type CreatedKey, DEFAULT_ROTATION_GRACE_MS, KeyAdmin, keyStatus, parseExpiry, parseSpanMs } from "../auth/KeyAdmin.ts"
import { summarize } from "../domain/SchemaIssues.ts"
import type { KeyRecord, TenantRecord } from "../stores/KeyStore.ts"
import * as ErrorResponse from "./ErrorResponse.ts"
import * as Usage from "./Usage.ts"
import { requestIdOf } from "../request/Pipeline.ts"

const PREFIX = "/admin/v1"

const iso = (ms: number | undefined): string | null => ms === undefined ? null : new Date(ms).toISOString()

export const tenantJson = (t: TenantRecord) => ({
  id: t.id,
  name: t.name,
  status: t.disabledAtMs === undefined ? "active" : "disabled",
  created_at: iso(t.createdAtMs),
  disabled_at: iso(t.disabledAtMs)
})

export const keyJson = (k: KeyRecord, nowMs: number) => ({
  id: k.id,
  tenant: k.tenant,
  name: k.name,
  models: k.models ?? null,
  status: keyStatus(k, nowMs),
  created_at: iso(k.createdAtMs),
  expires_at: iso(k.expiresAtMs),
  revoked_at: iso(k.revokedAtMs),
  last_used_at: iso(k.lastUsedAtMs)
})

const createdJson = (c: CreatedKey, nowMs: number) => ({ ...keyJson(c.record, nowMs), key: c.key })

const json = (status: number, body: unknown) =>
  HttpServerResponse.text(JSON.stringify(body), { status, contentType: "application/json" })

/** Reads and decodes a JSON body (empty: `{}`); unknown fields are refused, naming the field. */
const body = <S extends Schema.Decoder<unknown>>(schema: S) => {
  const decode = Schema.decodeUnknownEffect(schema)
  return (request: HttpServerRequest.HttpServerRequest) =>
    Effect.gen(function*() {
      const text = yield* Effect.mapError(request.text, () => new InvalidAdminRequest({ message: "The body could not be read.", param: null }))
      const raw = yield* Effect.try({
        try: (): unknown => text.trim() === "" ? {} : JSON.parse(text),
        catch: () => new InvalidAdminRequest({ message: "The body is not valid JSON.", param: null })
      })
      return yield* decode(raw, { onExcessProperty: "error" }).pipe(
        Effect.mapError((e) => {
          const s = summarize(e.issue)
          return new InvalidAdminRequest({ message: s.message, param: s.path === "" ? null : s.path })
        })
      )
    })
}

const Expiry = Schema.optionalKey(Schema.NullOr(Schema.String))

const CreateTenant = Schema.Struct({ id: Schema.String, name: Schema.optionalKey(Schema.String) })
const UpdateTenant = Schema.Struct({ name: Schema.optionalKey(Schema.String), disabled: Schema.optionalKey(Schema.Boolean) })
const CreateKey = Schema.Struct({
  name: Schema.String,
  models: Schema.optionalKey(Schema.Array(Schema.String)),
  expires_at: Expiry,
  expires_in: Schema.optionalKey(Schema.String)
})
const UpdateKey = Schema.Struct({ expires_at: Expiry, expires_in: Schema.optionalKey(Schema.String) })
const RotateKey = Schema.Struct({ grace: Schema.optionalKey(Schema.String) })

/** `expires_in` (a span) or `expires_at` (a time, or null: never); `missing` when neither is given. */
const expiryOf = (b: { readonly expires_at?: string | null; readonly expires_in?: string }, nowMs: number) => {
  if (b.expires_in !== undefined) {
    const span = parseSpanMs(b.expires_in)
    return span === undefined
      ? Effect.fail(new InvalidAdminRequest({ message: "expires_in is a span such as 30d, 12h or 90m.", param: "expires_in" }))
      : Effect.succeed<number | undefined | "missing">(nowMs + span)
  }
  if (b.expires_at === undefined) return Effect.succeed<number | undefined | "missing">("missing")
  if (b.expires_at === null) return Effect.succeed<number | undefined | "missing">(undefined)
  const at = parseExpiry(b.expires_at, nowMs)
  return at === undefined
    ? Effect.fail(new InvalidAdminRequest({ message: "expires_at is an ISO 8601 time such as 2026-12-31T00:00:00Z.", param: "expires_at" }))
    : Effect.succeed<number | undefined | "missing">(at)
}

const param = (name: string) => Effect.map(HttpRouter.params, (p) => p[name] ?? "")

type Handler = (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  ErrorResponse.AdminError,
  KeyAdmin | QuotaStore | QuotaTable | GatewayConfig | UsageSink | HttpRouter.RouteContext
>

const Amount = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
const SetPrice = Schema.Struct({
  input: Amount,
  output: Amount,
  cached_input: Schema.optionalKey(Amount),
  backend: Schema.optionalKey(Schema.String)
})

const limitsJson = (scope: LimitScope, subject: string, model: string, limits: LimitSet | undefined) => ({
  ...(scope === "key" ? { key: subject } : { tenant: subject }),
  ...(scope === "model" ? { model } : {}),
  limits: limits ?? {}
})

/** The subject of a limits route: the tenant, the key (which must exist) or the tenant and a known model. */
const subjectOf = (scope: LimitScope) =>
  Effect.gen(function*() {
    if (scope === "key") {
      const id = yield* param("key")
      yield* (yield* KeyAdmin).key(id)
      return { subject: id, model: "" }
    }
    const tenant = yield* param("tenant")
    if (scope === "tenant") return { subject: tenant, model: "" }
    const name = yield* param("model")
    const plan = yield* (yield* GatewayConfig).current
    const model = plan.modelNames.get(name)
    if (model === undefined) return yield* new InvalidAdminRequest({ message: `Unknown model "${name.slice(0, 200)}".`, param: "model" })
    return { subject: tenant, model }
  })

const getLimits = (scope: LimitScope): Handler => () =>
  Effect.gen(function*() {
    const { subject, model } = yield* subjectOf(scope)
    return json(200, limitsJson(scope, subject, model, (yield* QuotaTable).limitsOf(scope, subject, model)))
  })

const setLimits = (scope: LimitScope): Handler => (request) =>
  Effect.gen(function*() {
    const b = yield* body(StoredLimitsSchema)(request)
    const { subject, model } = yield* subjectOf(scope)
    const store = yield* QuotaStore
    const stored = (yield* store.limits).find((r) => r.scope === scope && r.subject === subject && r.model === model)
    const limits = { ...stored?.limits, ...b }
    yield* store.setLimits({ scope, subject, model, limits }, yield* Clock.currentTimeMillis)
    const table = yield* QuotaTable
    yield* table.reload
    yield* Effect.logInfo("admin: limits set").pipe(Effect.annotateLogs({ scope, subject, model, limits: JSON.stringify(b) }))
    return json(200, limitsJson(scope, subject, model, table.limitsOf(scope, subject, model)))
  })

const pricesJson = Effect.gen(function*() {
  const plan = yield* (yield* GatewayConfig).current
  const table = yield* QuotaTable
  const data: Array<unknown> = []
  for (const model of plan.models.keys()) {
    const price = table.price(model, undefined)
    if (price !== undefined) data.push({ model, backend: null, input: price.input, cached_input: price.cachedInput, output: price.output })
    for (const backend of plan.backends) {
      const own = table.price(model, backend.id)
      if (own !== undefined && own !== price) {
        data.push({ model, backend: backend.id, input: own.input, cached_input: own.cachedInput, output: own.output })
      }
    }
  }
  return json(200, { object: "list", data })
})

const priceTarget = (request: HttpServerRequest.HttpServerRequest, backend: string | undefined) =>
  Effect.gen(function*() {
    const name = yield* param("model")
    const plan = yield* (yield* GatewayConfig).current
    const model = plan.modelNames.get(name)
    if (model === undefined) return yield* new InvalidAdminRequest({ message: `Unknown model "${name.slice(0, 200)}".`, param: "model" })
    const b = backend ?? new URL(request.url, "http://x").searchParams.get("backend") ?? ""
    if (b !== "" && !plan.backends.some((x) => x.id === b)) {
      return yield* new InvalidAdminRequest({ message: `Unknown backend "${b.slice(0, 200)}".`, param: "backend" })
    }
    return { model, backend: b }
  })

const operations: ReadonlyArray<readonly ["GET" | "POST" | "PUT" | "PATCH" | "DELETE", string, Handler]> = [
  ["GET", "/tenants", () =>
    Effect.map(Effect.flatMap(KeyAdmin, (a) => a.tenants), (ts) => json(200, { object: "list", data: ts.map(tenantJson) }))],
  ["POST", "/tenants", (request) =>
    Effect.gen(function*() {
      const b = yield* body(CreateTenant)(request)
      const tenant = yield* (yield* KeyAdmin).createTenant(b.id, b.name)
      yield* Effect.logInfo("admin: tenant created").pipe(Effect.annotateLogs({ tenant: tenant.id }))
      return json(201, tenantJson(tenant))
    })],
  ["GET", "/tenants/:tenant", () =>
    Effect.gen(function*() {
      return json(200, tenantJson(yield* (yield* KeyAdmin).tenant(yield* param("tenant"))))
    })],
  ["PATCH", "/tenants/:tenant", (request) =>
    Effect.gen(function*() {
      const b = yield* body(UpdateTenant)(request)
      const id = yield* param("tenant")
      const tenant = yield* (yield* KeyAdmin).updateTenant(id, b)
      yield* Effect.logInfo("admin: tenant updated").pipe(Effect.annotateLogs({ tenant: id, disabled: b.disabled }))
      return json(200, tenantJson(tenant))
    })],
  ["DELETE", "/tenants/:tenant", () =>
    Effect.gen(function*() {
      const id = yield* param("tenant")
      const tenant = yield* (yield* KeyAdmin).updateTenant(id, { disabled: true })
      yield* Effect.logInfo("admin: tenant disabled").pipe(Effect.annotateLogs({ tenant: id }))
      return json(200, tenantJson(tenant))
    })],
  ["GET", "/tenants/:tenant/keys", () =>
    Effect.gen(function*() {
      const keys = yield* (yield* KeyAdmin).keys(yield* param("tenant"))
      const now = yield* Clock.currentTimeMillis
      return json(200, { object: "list", data: keys.map((k) => keyJson(k, now)) })
    })],
  ["POST", "/tenants/:tenant/keys", (request) =>
    Effect.gen(function*() {
      const b = yield* body(CreateKey)(request)
      const now = yield* Clock.currentTimeMillis
      const expiry = yield* expiryOf(b, now)
      const created = yield* (yield* KeyAdmin).createKey({
        tenant: yield* param("tenant"),
        name: b.name,
        models: b.models,
        expiresAtMs: expiry === "missing" ? undefined : expiry
      })
      yield* Effect.logInfo("admin: key created").pipe(Effect.annotateLogs({ tenant: created.record.tenant, key_id: created.record.id }))
      return json(201, createdJson(created, now))
    })],
  ["GET", "/keys", (request) =>
    Effect.gen(function*() {
      const tenant = new URL(request.url, "http://x").searchParams.get("tenant") ?? undefined
      const keys = yield* (yield* KeyAdmin).keys(tenant)
      const now = yield* Clock.currentTimeMillis
      return json(200, { object: "list", data: keys.map((k) => keyJson(k, now)) })
    })],
  ["GET", "/keys/:key", () =>
    Effect.gen(function*() {
      const key = yield* (yield* KeyAdmin).key(yield* param("key"))
      return json(200, keyJson(key, yield* Clock.currentTimeMillis))
    })],
  ["PATCH", "/keys/:key", (request) =>
    Effect.gen(function*() {
      const b = yield* body(UpdateKey)(request)
      const now = yield* Clock.currentTimeMillis
      const expiry = yield* expiryOf(b, now)
      if (expiry === "missing") {
        return yield* new InvalidAdminRequest({ message: "Give expires_at (a time, or null for never) or expires_in.", param: "expires_at" })
      }
      const id = yield* param("key")
      const key = yield* (yield* KeyAdmin).setExpiry(id, expiry)
      yield* Effect.logInfo("admin: key expiry set").pipe(Effect.annotateLogs({ key_id: id, expires_at: iso(expiry) }))
      return json(200, keyJson(key, now))
    })],
  ["GET", "/tenants/:tenant/limits", getLimits("tenant")],
  ["PUT", "/tenants/:tenant/limits", setLimits("tenant")],
  ["PATCH", "/tenants/:tenant/limits", setLimits("tenant")],
  ["GET", "/tenants/:tenant/models/:model/limits", getLimits("model")],
  ["PUT", "/tenants/:tenant/models/:model/limits", setLimits("model")],
  ["PATCH", "/tenants/:tenant/models/:model/limits", setLimits("model")],
  ["GET", "/keys/:key/limits", getLimits("key")],
  ["PUT", "/keys/:key/limits", setLimits("key")],
  ["PATCH", "/keys/:key/limits", setLimits("key")],
  ["GET", "/prices", () => pricesJson],
  ["PUT", "/prices/:model", (request) =>
    Effect.gen(function*() {
      const b = yield* body(SetPrice)(request)
      const { model, backend } = yield* priceTarget(request, b.backend)
      const price = { input: b.input, cachedInput: b.cached_input ?? b.input, output: b.output }
      yield* (yield* QuotaStore).setPrice({ model, backend, price }, yield* Clock.currentTimeMillis)
      yield* (yield* QuotaTable).reload
      yield* Effect.logInfo("admin: price set").pipe(Effect.annotateLogs({ model, backend }))
      return json(200, { model, backend: backend === "" ? null : backend, input: price.input, cached_input: price.cachedInput, output: price.output })
    })],
  ["DELETE", "/prices/:model", (request) =>
    Effect.gen(function*() {
      const { model, backend } = yield* priceTarget(request, undefined)
      yield* (yield* QuotaStore).deletePrice(model, backend)
      yield* (yield* QuotaTable).reload
      return yield* pricesJson
    })],
  ["GET", "/usage", (request) => Usage.answer(request, { _tag: "Admin" })],
  ["POST", "/keys/:key/revoke", () => revoke],
  ["DELETE", "/keys/:key", () => revoke],
  ["POST", "/keys/:key/rotate", (request) =>
    Effect.gen(function*() {
      const b = yield* body(RotateKey)(request)
      const grace = b.grace === undefined ? DEFAULT_ROTATION_GRACE_MS : parseSpanMs(b.grace)
      if (grace === undefined) return yield* new InvalidAdminRequest({ message: "grace is a span such as 7d or 12h.", param: "grace" })
      const id = yield* param("key")
      const { created, old } = yield* (yield* KeyAdmin).rotateKey(id, grace)
      const now = yield* Clock.currentTimeMillis
      yield* Effect.logInfo("admin: key rotated").pipe(Effect.annotateLogs({ key_id: id, new_key_id: created.record.id }))
      return json(201, { ...createdJson(created, now), replaces: keyJson(old, now) })
    })]
]

const revoke = Effect.gen(function*() {
  const id = yield* param("key")
  const key = yield* (yield* KeyAdmin).revokeKey(id)
  yield* Effect.logInfo("admin: key revoked").pipe(Effect.annotateLogs({ key_id: id }))
  return json(200, keyJson(key, yield* Clock.currentTimeMillis))
})

/** Every admin route: the token first, then the operation; any failure as an envelope. */
export const layer = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const token = yield* AdminToken
    const admin = yield* KeyAdmin
    const quotaStore = yield* QuotaStore
    const quotaTable = yield* QuotaTable
    const config = yield* GatewayConfig
    const sink = yield* UsageSink
    for (const [method, path, handler] of operations) {
      yield* router.add(method, `${PREFIX}${path}`, (request) => {
        const requestId = requestIdOf(request)
        const checked = token.check(request.headers["authorization"])
        const run: Effect.Effect<HttpServerResponse.HttpServerResponse, ErrorResponse.AdminError, HttpRouter.RouteContext> =
          checked === "disabled"
            ? Effect.fail(new AdminDisabled({ path: request.url }))
            : checked === "wrong"
            ? Effect.fail(new AdminUnauthorized())
            : handler(request).pipe(
              Effect.provideService(KeyAdmin, admin),
              Effect.provideService(QuotaStore, quotaStore),
              Effect.provideService(QuotaTable, quotaTable),
              Effect.provideService(GatewayConfig, config),
              Effect.provideService(UsageSink, sink)
            )
        return Effect.catch(run, (error) => Effect.succeed(ErrorResponse.response(ErrorResponse.toWire(error), requestId)))
      })
    }
  })
)
