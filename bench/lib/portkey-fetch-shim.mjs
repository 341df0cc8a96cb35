/**
 * Preloaded into the Portkey target only (`--portkey`). Portkey's gateway appends its
 * x-portkey-* headers to the upstream `fetch` response it passes through, whose headers are
 * immutable under Node's fetch: every streamed completion then fails with
 * "TypeError: immutable" → 500 (Portkey-AI/gateway issues 1389 and 1550). This hands Portkey
 * a copy of each response with mutable headers and the same body stream (not read here),
 * which is what its own proposed fix does. Costs one Headers copy per upstream response.
 */
const original = globalThis.fetch
globalThis.fetch = async (...args) => {
  const res = await original(...args)
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers: new Headers(res.headers) })
}
