/**
 * Types for the two undici modules Upstream.ts imports by path (the package's index would
 * load all of undici; see the note there). The shapes are undici's own public types.
 */
declare module "undici/lib/dispatcher/pool.js" {
  import type { Pool } from "undici"
  const PoolClass: typeof Pool
  export default PoolClass
}

declare module "undici/lib/api/api-request.js" {
  import type { Dispatcher } from "undici"
  /** `Dispatcher.prototype.request` as the index installs it: call it with the pool as `this`. */
  const request: (this: Dispatcher, options: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>
  export default request
}

declare module "undici/lib/core/connect.js" {
  import type { buildConnector } from "undici"
  /** undici's default connector factory (what a Pool builds when `connect` is not a function). */
  const build: typeof buildConnector
  export default build
}
