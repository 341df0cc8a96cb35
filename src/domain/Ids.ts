/**
 * Branded identifiers of the domain. Owns nothing but the brands: a `ModelId`
 * can never be passed where a `BackendId` is expected. Constructors do no I/O.
 */
import { Brand } from "effect"

/** A public model name as clients send it (after alias resolution). */
export type ModelId = string & Brand.Brand<"ModelId">
export const ModelId = Brand.nominal<ModelId>()

/** A backend endpoint id from the config (unique). */
export type BackendId = string & Brand.Brand<"BackendId">
export const BackendId = Brand.nominal<BackendId>()

/** A GPU SKU label, e.g. "H100", "A100-80GB", "2xH100". */
export type GpuSku = string & Brand.Brand<"GpuSku">
export const GpuSku = Brand.nominal<GpuSku>()

/** A tenant (the owner of a budget). */
export type TenantId = string & Brand.Brand<"TenantId">
export const TenantId = Brand.nominal<TenantId>()

/** The id of one client request, accepted from `X-Request-ID` or generated. */
export type RequestId = string & Brand.Brand<"RequestId">
export const RequestId = Brand.nominal<RequestId>()
