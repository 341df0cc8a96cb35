/**
 * The paged KV cache: a pool of fixed-size blocks with reference counts, an LRU free queue and a prefix cache
 * keyed by chained block hashes (vLLM V1 `BlockPool` + `KVCacheManager`, backends.md §5.2).
 *
 * Owns: block refcounts, the free queue (doubly linked over block ids, O(1) removal from the middle when a
 * cached free block is hit), the hash → block map, and the per-sequence block tables' allocation and release.
 * Must never: schedule (that is the engine's job), allocate per call on the hot path beyond the block table push,
 * or let a referenced block sit in the free queue.
 */
import type { KvEventLog } from "./kvEvents.ts"
import { chainHash } from "./random.ts"
import type { Sequence } from "./sequence.ts"

const NONE = -1

export class KvCache {
  readonly refCount: Int32Array
  private readonly blockHash: Float64Array
  private readonly prev: Int32Array
  private readonly next: Int32Array
  private readonly inFree: Uint8Array
  private readonly head: number // sentinel index (== numBlocks)
  private free = 0
  private readonly byHash = new Map<number, number>()
  private readonly scratch: Uint32Array
  /** Cached blocks evicted to make room (a cache-pressure signal). */
  evictions = 0

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
    private readonly rootHash: number,
    /** Where stores, evictions and clears are published (vLLM KV events), if anyone listens. */
    private readonly events?: KvEventLog
  ) {
    this.refCount = new Int32Array(numBlocks)
    this.blockHash = new Float64Array(numBlocks).fill(NONE)
    this.prev = new Int32Array(numBlocks + 1)
    this.next = new Int32Array(numBlocks + 1)
    this.inFree = new Uint8Array(numBlocks)
    this.scratch = new Uint32Array(blockSize)
    this.head = numBlocks
    this.prev[this.head] = this.head
    this.next[this.head] = this.head
    for (let b = 0; b < numBlocks; b++) this.append(b)
  }

  get freeBlocks(): number {
    return this.free
  }

  get usedBlocks(): number {
    return this.numBlocks - this.free
  }

  /** Blocks in the prefix cache (referenced or free-but-reusable). */
  get cachedBlockCount(): number {
    return this.byHash.size
  }

  /** vLLM's `kv_cache_usage_perc`: a warm cache of unreferenced blocks does not count as usage. */
  get usage(): number {
    return this.numBlocks === 0 ? 0 : 1 - this.free / this.numBlocks
  }

  // ---- free queue (LRU: evict from the head, append at the tail) ----

  private append(b: number): void {
    const tail = this.prev[this.head]!
    this.next[tail] = b
    this.prev[b] = tail
    this.next[b] = this.head
    this.prev[this.head] = b
    this.inFree[b] = 1
    this.free++
  }

  private unlink(b: number): void {
    const p = this.prev[b]!
    const n = this.next[b]!
    this.next[p] = n
    this.prev[n] = p
    this.inFree[b] = 0
    this.free--
  }

  private popFree(): number {
    const b = this.next[this.head]!
    this.unlink(b)
    const h = this.blockHash[b]!
    if (h !== NONE) {
      if (this.byHash.get(h) === b) {
        this.byHash.delete(h)
        this.events?.removed(h)
      }
      this.blockHash[b] = NONE
      this.evictions++
    }
    this.refCount[b] = 1
    return b
  }

  private touch(b: number): void {
    if (this.refCount[b] === 0) this.unlink(b)
    this.refCount[b]!++
  }

  // ---- sequences ----

  /** Extends `seq.hashes` to cover its first `blocks` full blocks, as far as token ids are known. */
  private ensureHashes(seq: Sequence<unknown>, blocks: number): number {
    const bs = this.blockSize
    const limit = Math.min(blocks, Math.floor(seq.knownIds / bs), seq.hashes.length)
    const prompt = seq.spec.prompt
    for (let b = seq.hashedCount; b < limit; b++) {
      const parent = b === 0 ? this.rootHash : seq.hashes[b - 1]!
      const start = b * bs
      const end = start + bs
      if (end <= seq.promptLength) {
        seq.hashes[b] = chainHash(parent, prompt, start, end)
      } else {
        for (let i = 0; i < bs; i++) this.scratch[i] = seq.tokenAt(start + i)
        seq.hashes[b] = chainHash(parent, this.scratch, 0, bs)
      }
      seq.hashedCount = b + 1
    }
    return seq.hashedCount < blocks ? seq.hashedCount : blocks
  }

  /**
   * Number of leading blocks of `seq` found in the prefix cache, capped so at least one token is left to
   * compute (`floor((numTokens − 1) / blockSize)` blocks at most; backends.md §5.2).
   */
  prefixHitBlocks(seq: Sequence<unknown>): number {
    const cap = Math.floor((seq.numTokens - 1) / this.blockSize)
    const hashed = this.ensureHashes(seq, cap)
    let n = 0
    while (n < hashed && this.byHash.has(seq.hashes[n]!)) n++
    return n
  }

  /**
   * Gives `seq` blocks for `numNew` more tokens (after taking `hitBlocks` prefix-cache blocks if it has none
   * yet). All or nothing: returns false and changes nothing when the free queue cannot cover it.
   */
  allocate(seq: Sequence<unknown>, numNew: number, hitBlocks: number): boolean {
    const bs = this.blockSize
    const have = seq.blocks.length
    const useHits = have === 0 ? hitBlocks : 0
    const computed = have === 0 ? useHits * bs : seq.numComputed
    const needed = Math.ceil((computed + numNew) / bs) - have - useHits
    let evictableHits = 0
    for (let i = 0; i < useHits; i++) {
      if (this.refCount[this.byHash.get(seq.hashes[i]!)!] === 0) evictableHits++
    }
    if (needed + evictableHits > this.free) return false
    for (let i = 0; i < useHits; i++) {
      const b = this.byHash.get(seq.hashes[i]!)!
      this.touch(b)
      seq.blocks.push(b)
    }
    if (useHits > 0) seq.cachedBlocks = useHits
    for (let i = 0; i < needed; i++) seq.blocks.push(this.popFree())
    return true
  }

  /** Registers the sequence's newly full, computed blocks in the prefix cache. */
  cacheComputed(seq: Sequence<unknown>): void {
    const full = Math.floor(seq.numComputed / this.blockSize)
    if (full <= seq.cachedBlocks) return
    const hashed = this.ensureHashes(seq, full)
    const events = this.events
    let runStart = -1
    for (let b = seq.cachedBlocks; b < hashed; b++) {
      const id = seq.blocks[b]!
      const h = seq.hashes[b]!
      if (this.blockHash[id] === NONE && !this.byHash.has(h)) {
        this.byHash.set(h, id)
        this.blockHash[id] = h
        if (runStart < 0) runStart = b
      } else if (events !== undefined && runStart >= 0) {
        this.publishStored(seq, runStart, b)
        runStart = -1
      }
    }
    if (events !== undefined && runStart >= 0) this.publishStored(seq, runStart, hashed)
    seq.cachedBlocks = hashed
  }

  /** One `BlockStored` for the sequence's newly cached blocks `[from, to)`, with their parent and token ids. */
  private publishStored(seq: Sequence<unknown>, from: number, to: number): void {
    const bs = this.blockSize
    const hashes: Array<number> = []
    const tokens: Array<number> = []
    for (let b = from; b < to; b++) {
      hashes.push(seq.hashes[b]!)
      for (let i = b * bs; i < (b + 1) * bs; i++) tokens.push(seq.tokenAt(i))
    }
    this.events!.stored(hashes, from === 0 ? null : seq.hashes[from - 1]!, tokens)
  }

  /** Releases every block of `seq`, tail first, so its last block is the first evicted (vLLM order). */
  release(seq: Sequence<unknown>): void {
    const blocks = seq.blocks
    for (let i = blocks.length - 1; i >= 0; i--) {
      const b = blocks[i]!
      const rc = --this.refCount[b]!
      if (rc === 0) this.append(b)
    }
    blocks.length = 0
    seq.cachedBlocks = 0
  }

  /** Drops the whole prefix cache (a restarted engine starts cold). Only valid when no block is referenced. */
  clearCache(): void {
    this.byHash.clear()
    this.blockHash.fill(NONE)
    this.events?.cleared()
  }

  /** Checks the pool's invariants; returns a list of violations (empty when healthy). For tests. */
  checkInvariants(): ReadonlyArray<string> {
    const errors: Array<string> = []
    let linked = 0
    for (let b = this.next[this.head]!; b !== this.head; b = this.next[b]!) {
      linked++
      if (this.refCount[b] !== 0) errors.push(`free block ${b} has refcount ${this.refCount[b]}`)
      if (linked > this.numBlocks) {
        errors.push("free queue is cyclic")
        break
      }
    }
    if (linked !== this.free) errors.push(`free queue length ${linked} != free count ${this.free}`)
    let used = 0
    for (let b = 0; b < this.numBlocks; b++) {
      const rc = this.refCount[b]!
      if (rc < 0) errors.push(`block ${b} refcount ${rc} < 0`)
      if (rc > 0) used++
      if ((rc === 0) !== (this.inFree[b] === 1)) errors.push(`block ${b} refcount ${rc} but inFree ${this.inFree[b]}`)
    }
    if (used + this.free !== this.numBlocks) errors.push(`used ${used} + free ${this.free} != total ${this.numBlocks}`)
    for (const [h, b] of this.byHash) {
      if (this.blockHash[b] !== h) errors.push(`hash map entry for block ${b} disagrees with its hash`)
    }
    return errors
  }
}
