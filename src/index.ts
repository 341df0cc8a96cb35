/**
 * Sluice's public API: what an embedder or an extension author imports from `sluice`.
 *
 * Everything exported here is covered by the stability note in docs/EXTENDING.md: within a
 * minor version it only grows (new optional fields, new exports); a removal or an
 * incompatible change waits for the next major version and is listed in the changelog.
 * Anything reached by a deep import (`sluice/src/...`) is internal and may change in any
 * release.
 *
 * - Run the gateway in your own program: `Gateway.embedded({ config, extensions })`, a Layer.
 * - Extend it with layers that add to the registries: `RoutingPlugins` (filters, scorers,
 *   pickers), `Dialects` (backend wire protocols), `RequestPolicies` (guardrails and
 *   transforms), `ResponsePolicies` (streamed text filters), `Authenticators`, `PlanChecks`.
 * - The contracts those entries implement: `Extensions`, `Routing`, `Backend`, `Failure`,
 *   and the helpers a dialect reads its upstream with (`Upstream`, `SseScanner`, `scanned`).
 */

// The gateway as a layer.
export * as Gateway from "./Gateway.ts"
export type { EmbedOptions, Registries } from "./Gateway.ts"

// Registries extensions add to.
export { RoutingPlugins, UnknownPlugin } from "./routing/Registry.ts"
export type { PluginKind, RoutingPluginsShape } from "./routing/Registry.ts"
export { Dialects } from "./backends/Dialects.ts"
export type { Dialect, DialectContext, DialectsShape } from "./backends/Dialects.ts"
export { Authenticators, RequestPolicies, ResponsePolicies } from "./extensions/Registries.ts"
export { PlanChecks } from "./config/Checks.ts"
export type { PlanCheck, PlanIssue } from "./config/Checks.ts"
export type { NameTable } from "./domain/NameTable.ts"

// Contracts.
export * as Extensions from "./extensions/Contract.ts"
export type {
  Authenticator,
  AuthRejection,
  Credentials,
  FilterStep,
  PolicyContext,
  RequestPolicy,
  RequestVerdict,
  ResponsePolicy,
  TextFilter
} from "./extensions/Contract.ts"
export * as Routing from "./routing/Contract.ts"
export * as Backend from "./backends/Contract.ts"
export * as Failure from "./backends/Failure.ts"
export type { FailureReason, FailureTag } from "./backends/Failure.ts"

// What a dialect builds with.
export * as Upstream from "./backends/Upstream.ts"
export { EventTooLarge, SseScanner } from "./backends/SseScanner.ts"
export type { SseEvent } from "./backends/SseScanner.ts"
export { scanned } from "./backends/ScannedSource.ts"
export type { Scanner } from "./backends/ScannedSource.ts"

// The request as the gateway decoded it, and the identity it runs under.
export * as Calls from "./api/openai/Calls.ts"
export type { CallKind, InferenceCall } from "./api/openai/Calls.ts"
export type { Delta, Finish, FinishReason, StreamEvent, ToolCallDelta, Usage } from "./api/Events.ts"
export { BackendId, GpuSku, ModelId, RequestId, TenantId } from "./domain/Ids.ts"
export type { Identity } from "./domain/Identity.ts"

// The config an embedder may pass as a value.
export { GatewayConfig } from "./config/GatewayConfig.ts"
export { ConfigError } from "./config/Load.ts"
export type { BackendPlan, ModelPlan, Plan, RoutingPlan } from "./config/Plan.ts"
