/**
 * Precise prefix matching (routing/PreciseMatch.ts): the engine's own blocks when its index is live and the
 * request carries token ids; nothing (the approximate fallback) otherwise; and requests still in prefill on a
 * backend count before their KV events arrive.
 */
import { describe, expect, it } from "vitest"
import type { GatewayRequest } from "../../src/admission/Request.ts"
import { blockHashes, rootHash } from "../../src/domain/KvBlocks.ts"
import { preciseMatch } from "../../src/routing/PreciseMatch.ts"
import { backend, request, text } from "./support.ts"

const TOKENS = Uint32Array.from({ length: 330 }, (_, i) => 1000 + i) // 20 full blocks of 16 (+10)
const HASHES = blockHashes(TOKENS, 16, 1000, rootHash("m"))

const withTokens = (req: GatewayRequest, tokens: Uint32Array | undefined): GatewayRequest => ({
  ...req,
  estimate: { ...req.estimate, kvPromptTokens: tokens }
})

const publishing = (id: string, stored: ReadonlyArray<number>) => {
  const b = backend(id, { kvEvents: true })
  b.kvBlocks!.connected("e", 16)
  b.kvBlocks!.apply({
    seq: 0,
    ts: 0,
    events: [{ type: "BlockStored", block_hashes: stored, parent_block_hash: null, token_ids: [], block_size: 16, lora_id: null }]
  })
  return b
}

describe("preciseMatch", () => {
  const req = withTokens(request(text(4000, 5)), TOKENS)
  const none = () => 0

  it("counts the leading blocks the engine reported, in its block size, salted by the served model name", () => {
    const b = publishing("a", [...HASHES.slice(0, 10)])
    const m = preciseMatch(req, b, none)!
    expect(m.matched).toBe(10)
    expect(m.total).toBe(20)
    expect(m.cachedTokens).toBe(Math.min(req.estimate.promptTokens - 1, 160))
    // Another served name is another chain: nothing matches.
    const other = backend("b", { kvEvents: true, models: new Map([[req.model.id, "other-name"]]) })
    other.kvBlocks!.connected("e", 16)
    other.kvBlocks!.apply({ seq: 0, ts: 0, events: [{ type: "BlockStored", block_hashes: [...HASHES], parent_block_hash: null, token_ids: [], block_size: 16, lora_id: null }] })
    expect(preciseMatch(req, other, none)!.matched).toBe(0)
  })

  it("is undefined (approximate fallback) without a live index or without token ids", () => {
    expect(preciseMatch(req, backend("plain"), none)).toBeUndefined()
    const b = publishing("a", [...HASHES])
    expect(preciseMatch(withTokens(req, undefined), b, none)).toBeUndefined()
    b.kvBlocks!.disconnected()
    expect(preciseMatch(req, b, none)).toBeUndefined()
  })

  it("a request still in prefill there covers blocks its events have not reported yet", () => {
    const b = publishing("a", [...HASHES.slice(0, 2)])
    const total = req.estimate.prefixHashes.length
    const m = preciseMatch(req, b, () => total)!
    expect(m.matched).toBe(20)
    expect(m.cachedTokens).toBeGreaterThan(160)
    // Less pending coverage than reported blocks: the events win.
    expect(preciseMatch(req, b, () => 0)!.matched).toBe(2)
  })
})
