/**
 * The ioredis constructor, imported statically. ioredis is CommonJS: a dynamic
 * `import("ioredis")` gives different shapes under Node's ESM loader and in the esbuild
 * bundle (where the named export `Redis` does not exist: "Redis is not a constructor"), while
 * a static import works in both. Modules that need Redis only when `REDIS_URL` is set load
 * *this* module dynamically, so a gateway without Redis still never loads ioredis.
 */
export { Redis } from "ioredis"
