/**
 * The engine's KV-cache event log: what the block manager did to its prefix cache since the last drain, as
 * vLLM's `BlockStored` / `BlockRemoved` / `AllBlocksCleared` (api/KvEvents.ts). The HTTP layer drains it after
 * every engine step into one numbered batch (http/kvEvents.ts).
 *
 * Owns: the pending events, merged where vLLM merges them (consecutive removals into one event). Bounded: past
 * `MAX_PENDING` events the log collapses into `AllBlocksCleared` plus nothing (a subscriber then resyncs by
 * forgetting the engine), so a step that never drains cannot grow it without end.
 * Must never: read the clock or do I/O.
 */
import type { KvEvent } from "../../api/KvEvents.ts"

export const MAX_PENDING = 65_536

export class KvEventLog {
  private pending: Array<KvEvent> = []
  private removedRun: Array<number> | undefined = undefined
  private overflowed = false

  constructor(readonly blockSize: number) {}

  private push(e: KvEvent): void {
    if (this.overflowed) return
    if (this.pending.length >= MAX_PENDING) {
      this.overflowed = true
      this.pending = [{ type: "AllBlocksCleared" }]
      this.removedRun = undefined
      return
    }
    this.pending.push(e)
  }

  /** Blocks now cached, a chain continuing from `parent` (null: from the root); `tokens` are their token ids. */
  stored(hashes: ReadonlyArray<number>, parent: number | null, tokens: ReadonlyArray<number>): void {
    if (hashes.length === 0) return
    this.removedRun = undefined
    this.push({
      type: "BlockStored",
      block_hashes: hashes,
      parent_block_hash: parent,
      token_ids: tokens,
      block_size: this.blockSize,
      lora_id: null,
      medium: "GPU"
    })
  }

  /** A cached block was evicted (its hash no longer names a cached block). */
  removed(hash: number): void {
    if (this.overflowed) return
    if (this.removedRun !== undefined) {
      this.removedRun.push(hash)
      return
    }
    const run = [hash]
    this.push({ type: "BlockRemoved", block_hashes: run, medium: "GPU" })
    if (!this.overflowed) this.removedRun = run
  }

  /** The whole prefix cache was dropped. Earlier pending events are moot. */
  cleared(): void {
    this.pending = [{ type: "AllBlocksCleared" }]
    this.removedRun = undefined
    this.overflowed = false
  }

  /** The pending events, in order, and an empty log; undefined when nothing happened. */
  drain(): ReadonlyArray<KvEvent> | undefined {
    if (this.pending.length === 0) return undefined
    const out = this.pending
    this.pending = []
    this.removedRun = undefined
    this.overflowed = false
    return out
  }
}
