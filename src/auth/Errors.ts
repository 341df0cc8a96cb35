/**
 * The typed failures of authentication, authorisation and key administration, each mapped
 * to its status and envelope in http/ErrorResponse.ts (and nowhere else).
 */
import { Data } from "effect"

/** Missing, malformed, unknown, revoked or expired key, or a disabled tenant: one 401 that does not say which. */
export class Unauthenticated extends Data.TaggedError("Unauthenticated")<{}> {}

/** The key is valid but may not use this model: 403. */
export class ModelNotAllowed extends Data.TaggedError("ModelNotAllowed")<{ readonly model: string }> {}

/** The key could not be checked because the key store did not answer: 503, never a 401. */
export class AuthUnavailable extends Data.TaggedError("AuthUnavailable")<{}> {}

/** The admin API without the admin token, or with a wrong one: 401. */
export class AdminUnauthorized extends Data.TaggedError("AdminUnauthorized")<{}> {}

/** No `SLUICE_ADMIN_TOKEN` is set: the admin API does not exist (404). */
export class AdminDisabled extends Data.TaggedError("AdminDisabled")<{ readonly path: string }> {}

/** Every dashboard stream the gateway allows is open (`max` of them): 429, retry later. */
export class DashboardBusy extends Data.TaggedError("DashboardBusy")<{ readonly max: number }> {}

export class TenantNotFound extends Data.TaggedError("TenantNotFound")<{ readonly tenant: string }> {}

export class KeyNotFound extends Data.TaggedError("KeyNotFound")<{ readonly key: string }> {}

/** An admin request that is well-formed JSON but not a valid operation: 400 naming the field. */
export class InvalidAdminRequest extends Data.TaggedError("InvalidAdminRequest")<{
  readonly message: string
  readonly param: string | null
}> {}
