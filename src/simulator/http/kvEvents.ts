/**
 * `GET /kv_events?since=SEQ`: the engine's KV-cache events (api/KvEvents.ts) as an NDJSON stream, the HTTP
 * stand-in for vLLM's ZMQ PUB socket plus its replay ROUTER socket.
 *
 * After every engine step the driver calls `flush`, which drains the engine's event log into one batch with the
 * next sequence number, keeps it in a ring of the last `RING` batches and writes it to every subscriber. A
 * subscriber that passes `since` first gets the retained batches after it (replay); if `since` is older than the
 * ring, or newer than anything published (another incarnation's number), it gets the whole ring and sees the gap
 * itself. The response header `x-kv-events-epoch` names this incarnation of the engine: a subscriber that sees
 * it change knows the engine restarted and forgets what it had; `x-kv-events-block-size` gives the block size
 * before any BlockStored does. A subscriber whose socket falls more than
 * `MAX_BUFFERED` bytes behind is cut off (it reconnects and replays), so a slow reader costs bounded memory.
 * Must never: block the engine loop, or hold per-subscriber state beyond the response object.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import type { KvEventBatch } from "../../api/KvEvents.ts"
import type { KvEventLog } from "../engine/kvEvents.ts"

export const RING = 1024
const MAX_BUFFERED = 8 * 1024 * 1024

export class KvEventPublisher {
  private readonly ring: Array<string> = []
  private nextSeq = 0
  private readonly subscribers = new Set<ServerResponse>()

  constructor(
    private readonly log: KvEventLog,
    private readonly epochMs: () => number,
    readonly epoch: string
  ) {}

  /** Publishes what the engine did since the last flush (nothing when it did nothing). */
  flush(): void {
    const events = this.log.drain()
    if (events === undefined) return
    const batch: KvEventBatch = { seq: this.nextSeq++, ts: this.epochMs() / 1000, events, data_parallel_rank: null }
    const line = JSON.stringify(batch) + "\n"
    this.ring.push(line)
    if (this.ring.length > RING) this.ring.shift()
    for (const res of this.subscribers) this.send(res, line)
  }

  get subscriberCount(): number {
    return this.subscribers.size
  }

  private send(res: ServerResponse, line: string): void {
    if (res.writableLength > MAX_BUFFERED) {
      this.subscribers.delete(res)
      res.destroy()
      return
    }
    res.write(line)
  }

  handle(req: IncomingMessage, res: ServerResponse, query: string): void {
    req.resume()
    const since = Number(new URLSearchParams(query).get("since") ?? "-1")
    res.writeHead(200, {
      "content-type": "application/x-ndjson",
      "cache-control": "no-cache",
      "x-kv-events-epoch": this.epoch,
      "x-kv-events-block-size": String(this.log.blockSize)
    })
    res.flushHeaders()
    const oldest = this.nextSeq - this.ring.length
    const replayable = Number.isInteger(since) && since >= oldest - 1 && since < this.nextSeq
    const from = replayable ? since + 1 - oldest : 0
    for (let i = from; i < this.ring.length; i++) res.write(this.ring[i]!)
    this.subscribers.add(res)
    res.on("close", () => this.subscribers.delete(res))
  }
}
