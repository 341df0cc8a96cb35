/**
 * The precise prefix index of one engine: the set of KV-block hashes its prefix cache holds, kept from the
 * engine's own KV-cache events (api/KvEvents.ts: vLLM's BlockStored / BlockRemoved / AllBlocksCleared). The
 * backend actor (KvEvents.ts) feeds it; the router reads it through `match` (routing/Views.ts), and falls back to
 * the approximate index (routing/PrefixIndex.ts) while this one is not `live`.
 *
 * Consistency: batches carry sequence numbers. A batch that does not follow the last one applied (a gap: the
 * stream dropped batches the replay could not give back) clears the index, which then fills again from new
 * events: it may under-report what the engine holds, never over-report it for long. A new engine incarnation
 * (another `epoch` on reconnect: the engine restarted) clears it too. Bounds: at most `maxBlocks` hashes (an
 * engine claiming more is not believed: the index clears and counts an overflow), one `Set` entry per block.
 * Must never: do I/O, or throw on any batch (batches are decoded before they get here).
 */
import type { KvEventBatch } from "../api/KvEvents.ts"

export class KvBlockIndex {
  private readonly blocks = new Set<number>()
  private lastSeq: number | undefined = undefined
  private epoch: string | undefined = undefined
  private connectedNow = false
  private size_ = 0
  /** The engine's block size in tokens (from its BlockStored events). */
  blockSizeTokens: number | undefined = undefined
  /** Times the index was cleared because batches were missing, the engine restarted, or it overflowed. */
  resyncs = 0
  /** Batches applied. */
  batches = 0

  constructor(readonly maxBlocks: number) {}

  /** Whether the index mirrors the engine: subscribed, and it has said what its block size is. */
  get live(): boolean {
    return this.connectedNow && this.blockSizeTokens !== undefined
  }

  get size(): number {
    return this.size_
  }

  /** The sequence number to replay after on reconnect (undefined: nothing applied yet). */
  get since(): number | undefined {
    return this.lastSeq
  }

  /**
   * A subscription opened; `epoch` names the engine incarnation (a change means it restarted); `blockSize`
   * is the engine's block size when the stream announces it (else the first BlockStored tells).
   */
  connected(epoch: string | undefined, blockSize?: number): void {
    if (blockSize !== undefined && Number.isInteger(blockSize) && blockSize > 0) this.blockSizeTokens = blockSize
    if (epoch === undefined || epoch !== this.epoch) {
      if (this.epoch !== undefined || this.size_ > 0) this.resync()
      this.lastSeq = undefined
      this.epoch = epoch
    }
    this.connectedNow = true
  }

  /** The subscription ended: the router stops trusting the index until it is back. */
  disconnected(): void {
    this.connectedNow = false
  }

  /** Forgets everything (the engine's cache is presumed lost or unknown). */
  clear(): void {
    this.blocks.clear()
    this.size_ = 0
  }

  private resync(): void {
    this.clear()
    this.resyncs++
  }

  apply(batch: KvEventBatch): void {
    if (this.lastSeq !== undefined && batch.seq !== this.lastSeq + 1) this.resync()
    this.lastSeq = batch.seq
    this.batches++
    for (const e of batch.events) {
      switch (e.type) {
        case "BlockStored":
          this.blockSizeTokens = e.block_size
          for (const h of e.block_hashes) {
            if (this.blocks.has(h)) continue
            if (this.size_ >= this.maxBlocks) this.resync()
            this.blocks.add(h)
            this.size_++
          }
          break
        case "BlockRemoved":
          for (const h of e.block_hashes) if (this.blocks.delete(h)) this.size_--
          break
        case "AllBlocksCleared":
          this.clear()
          break
      }
    }
  }

  /** Leading blocks of the chain `hashes` the engine holds: the longest cached prefix, in blocks. */
  match(hashes: ArrayLike<number>): number {
    let n = 0
    while (n < hashes.length && this.blocks.has(hashes[n]!)) n++
    return n
  }
}
