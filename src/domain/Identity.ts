/**
 * Who a request is from, as the authenticate phase decided: the tenant that owns its budget
 * and limits, and the key that proved it (when keys are in use). Values only.
 */
import type { TenantId } from "./Ids.ts"

export interface Identity {
  readonly tenant: TenantId
  /** The public id of the API key that authenticated the request, if one did. */
  readonly keyId: string | undefined
  /** Which authenticator decided (`anonymous` when none is configured). */
  readonly via: string
  /** The models (ids or aliases) this identity may use; undefined: every model. */
  readonly models?: ReadonlyArray<string> | undefined
}
