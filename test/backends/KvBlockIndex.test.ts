/**
 * The precise prefix index: stored, removed, cleared, gaps in sequence numbers, engine restarts (a new
 * epoch), the bound on entries, and matching leading blocks only.
 */
import { describe, expect, it } from "vitest"
import type { KvEvent, KvEventBatch } from "../../src/api/KvEvents.ts"
import { KvBlockIndex } from "../../src/backends/KvBlockIndex.ts"

const stored = (hashes: Array<number>, parent: number | null = null): KvEvent => ({
  type: "BlockStored",
  block_hashes: hashes,
  parent_block_hash: parent,
  token_ids: [],
  block_size: 16,
  lora_id: null
})
const removed = (hashes: Array<number>): KvEvent => ({ type: "BlockRemoved", block_hashes: hashes })
const batch = (seq: number, ...events: Array<KvEvent>): KvEventBatch => ({ seq, ts: 0, events })

const connectedIndex = (max = 1000) => {
  const ix = new KvBlockIndex(max)
  ix.connected("e1")
  return ix
}

describe("KvBlockIndex", () => {
  it("stored blocks match as a leading run; a removed block cuts the run there", () => {
    const ix = connectedIndex()
    expect(ix.live).toBe(false) // no block size known yet
    ix.apply(batch(0, stored([1, 2, 3]), stored([4], 3)))
    expect(ix.live).toBe(true)
    expect(ix.blockSizeTokens).toBe(16)
    expect(ix.match([1, 2, 3, 4, 5])).toBe(4)
    expect(ix.match([2, 3])).toBe(2)
    expect(ix.match([9, 1, 2])).toBe(0)
    ix.apply(batch(1, removed([3])))
    expect(ix.match([1, 2, 3, 4])).toBe(2)
    expect(ix.size).toBe(3)
  })

  it("AllBlocksCleared empties it", () => {
    const ix = connectedIndex()
    ix.apply(batch(0, stored([1, 2])))
    ix.apply(batch(1, { type: "AllBlocksCleared" }, stored([7])))
    expect(ix.match([1, 2])).toBe(0)
    expect(ix.match([7])).toBe(1)
    expect(ix.size).toBe(1)
  })

  it("a gap in sequence numbers clears what it had, then applies the batch", () => {
    const ix = connectedIndex()
    ix.apply(batch(0, stored([1, 2])))
    ix.apply(batch(1, stored([3], 2)))
    ix.apply(batch(5, stored([10])))
    expect(ix.resyncs).toBe(1)
    expect(ix.match([1, 2])).toBe(0)
    expect(ix.match([10])).toBe(1)
    expect(ix.since).toBe(5)
    ix.apply(batch(6, stored([11], 10)))
    expect(ix.resyncs).toBe(1)
  })

  it("a reconnect to the same engine keeps the index (replay continues it); a new epoch clears it", () => {
    const ix = connectedIndex()
    ix.apply(batch(0, stored([1, 2])))
    ix.disconnected()
    expect(ix.live).toBe(false)
    ix.connected("e1")
    expect(ix.live).toBe(true)
    expect(ix.since).toBe(0)
    ix.apply(batch(1, stored([3], 2)))
    expect(ix.match([1, 2, 3])).toBe(3)
    ix.disconnected()
    ix.connected("e2")
    expect(ix.since).toBeUndefined()
    expect(ix.match([1])).toBe(0)
    expect(ix.resyncs).toBe(1)
    ix.apply(batch(0, stored([5])))
    expect(ix.resyncs).toBe(1) // seq 0 of the new engine is no gap
    expect(ix.match([5])).toBe(1)
  })

  it("never holds more than maxBlocks entries: an engine claiming more is not believed", () => {
    const ix = connectedIndex(4)
    ix.apply(batch(0, stored([1, 2, 3, 4])))
    expect(ix.size).toBe(4)
    ix.apply(batch(1, stored([5, 6])))
    expect(ix.size).toBeLessThanOrEqual(4)
    expect(ix.resyncs).toBe(1)
    expect(ix.match([5, 6])).toBe(2)
    ix.apply(batch(2, stored([5])))
    expect(ix.size).toBe(2) // a block stored twice is one entry
  })
})
