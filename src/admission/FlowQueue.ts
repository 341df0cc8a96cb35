/**
 * Flow control's queue (issue 15 item 1), as a pure data structure: the requests waiting
 * because no eligible backend can take them, per tenant and priority band, dispatched by
 * weighted fair queuing in tokens.
 *
 * - Bands are strict priorities: band 0 is served before band 1, and so on.
 * - Inside a band, tenants share by weighted fair queuing on the request's cost in tokens
 *   (not requests): each entry gets a start tag `S = max(V, F_tenant)` and a finish tag
 *   `F = S + cost / weight`; the entry with the smallest finish tag goes first (ties: arrival
 *   order), and the band's virtual time V becomes that entry's start tag (start-time fair
 *   queuing, Goyal et al. 1996). So while two tenants are backlogged, the tokens each is
 *   served, divided by its weight, differ by at most one request's cost per weight each, and a
 *   tenant that was idle gets no credit for it.
 * - Bounded: at `maxQueued` entries, an arrival evicts the entry served last of the lowest
 *   band below its own (shedding the lowest band first); with nothing below it, the entry of
 *   its own band that would be served after it (a flooding tenant's newest); else it is refused.
 * - Bounded wait: `expire(now)` removes the entries whose deadline passed.
 *
 * Owns: ordering and bounds only. Must never: wait, read a clock (times are arguments) or do
 * I/O; the Effect service (dispatch/FlowControl.ts) owns waiting, scopes and metrics.
 */

export interface FlowEntry<A> {
  readonly tenant: string
  /** Priority band, 0 first; clamped to the queue's bands. */
  readonly band: number
  /** Cost in tokens (the request's estimated prompt + output tokens); at least 1. */
  readonly cost: number
  /** When the entry stops waiting (ms, the caller's clock). */
  readonly deadlineMs: number
  readonly value: A
}

interface Node<A> {
  readonly entry: FlowEntry<A>
  readonly ticket: number
  readonly band: number
  readonly start: number
  readonly finish: number
  live: boolean
}

export type Enqueued<A> =
  | { readonly _tag: "Queued"; readonly ticket: number; readonly shed: ReadonlyArray<FlowEntry<A>> }
  | { readonly _tag: "Refused" }

export interface FlowQueueOptions {
  readonly bands: number
  readonly maxQueued: number
  /** A tenant's weight (> 0); the default 1. */
  readonly weight?: ((tenant: string) => number) | undefined
}

class Band<A> {
  virtualTime = 0
  readonly tenants = new Map<string, Array<Node<A>>>()
  readonly lastFinish = new Map<string, number>()
  size = 0
}

export class FlowQueue<A> {
  private readonly bands: Array<Band<A>>
  private readonly byTicket = new Map<number, Node<A>>()
  private nextTicket = 0

  constructor(private readonly options: FlowQueueOptions) {
    if (!(options.bands >= 1) || !(options.maxQueued >= 0)) throw new Error("FlowQueue: bands ≥ 1 and maxQueued ≥ 0")
    this.bands = Array.from({ length: options.bands }, () => new Band<A>())
  }

  /** Entries waiting now. */
  get size(): number {
    return this.byTicket.size
  }

  /** Entries waiting for `tenant` (in `band`, or in every band). */
  depth(tenant: string, band?: number): number {
    let n = 0
    for (let b = 0; b < this.bands.length; b++) {
      if (band !== undefined && b !== band) continue
      for (const node of this.bands[b]!.tenants.get(tenant) ?? []) if (node.live) n++
    }
    return n
  }

  /** Adds an entry; may shed lower-band entries to make room, or refuse it. */
  enqueue(entry: FlowEntry<A>): Enqueued<A> {
    const band = Math.min(this.bands.length - 1, Math.max(0, Math.floor(entry.band)))
    const shed: Array<FlowEntry<A>> = []
    const b = this.bands[band]!
    const weight = Math.max(1e-9, this.options.weight?.(entry.tenant) ?? 1)
    let start = Math.max(b.virtualTime, b.lastFinish.get(entry.tenant) ?? 0)
    let finish = start + Math.max(1, entry.cost) / weight
    if (this.byTicket.size >= this.options.maxQueued) {
      // Shed the lowest band first; inside the arrival's own band, push out the entry that
      // would be served last when that is not the arrival (a flooding tenant's newest).
      const victim = this.newestBelow(band) ?? this.newestIn(band)
      if (victim === undefined || (victim.band === band && victim.finish <= finish)) return { _tag: "Refused" }
      this.drop(victim)
      shed.push(victim.entry)
      start = Math.max(b.virtualTime, b.lastFinish.get(entry.tenant) ?? 0)
      finish = start + Math.max(1, entry.cost) / weight
    }
    const node: Node<A> = { entry, ticket: this.nextTicket++, band, start, finish, live: true }
    b.lastFinish.set(entry.tenant, finish)
    let list = b.tenants.get(entry.tenant)
    if (list === undefined) {
      list = []
      b.tenants.set(entry.tenant, list)
    }
    list.push(node)
    b.size++
    this.byTicket.set(node.ticket, node)
    return { _tag: "Queued", ticket: node.ticket, shed }
  }

  /** The next entry to dispatch (removed from the queue), or undefined when none waits. */
  next(): FlowEntry<A> | undefined {
    for (const b of this.bands) {
      if (b.size === 0) continue
      let best: Node<A> | undefined
      for (const list of b.tenants.values()) {
        const head = list[0]
        if (head !== undefined && (best === undefined || head.finish < best.finish || (head.finish === best.finish && head.ticket < best.ticket))) {
          best = head
        }
      }
      if (best === undefined) continue
      b.virtualTime = Math.max(b.virtualTime, best.start)
      this.drop(best, true)
      return best.entry
    }
    return undefined
  }

  /** Removes a waiting entry (its client went away); false when it is no longer queued. */
  remove(ticket: number): boolean {
    const node = this.byTicket.get(ticket)
    if (node === undefined) return false
    this.drop(node)
    return true
  }

  /** Removes and returns the entries whose deadline is at or before `nowMs`. */
  expire(nowMs: number): Array<FlowEntry<A>> {
    const out: Array<FlowEntry<A>> = []
    for (const node of [...this.byTicket.values()]) {
      if (node.entry.deadlineMs <= nowMs) {
        this.drop(node)
        out.push(node.entry)
      }
    }
    return out
  }

  /** The earliest deadline of a waiting entry (undefined: none waits). */
  nextDeadline(): number | undefined {
    let min: number | undefined
    for (const node of this.byTicket.values()) if (min === undefined || node.entry.deadlineMs < min) min = node.entry.deadlineMs
    return min
  }

  /** The entry served last (largest finish tag) of the lowest band strictly below `band`. */
  private newestBelow(band: number): Node<A> | undefined {
    for (let i = this.bands.length - 1; i > band; i--) {
      const newest = this.newestIn(i)
      if (newest !== undefined) return newest
    }
    return undefined
  }

  /** The entry of `band` that would be served last (largest finish tag, then latest arrival). */
  private newestIn(band: number): Node<A> | undefined {
    let newest: Node<A> | undefined
    for (const list of this.bands[band]!.tenants.values()) {
      const tail = list[list.length - 1]
      if (tail !== undefined && (newest === undefined || tail.finish > newest.finish || (tail.finish === newest.finish && tail.ticket > newest.ticket))) {
        newest = tail
      }
    }
    return newest
  }

  private drop(node: Node<A>, served = false): void {
    if (!node.live) return
    node.live = false
    this.byTicket.delete(node.ticket)
    const b = this.bands[node.band]!
    const list = b.tenants.get(node.entry.tenant)!
    const i = list.indexOf(node)
    list.splice(i, 1)
    b.size--
    // A tenant's unserved tail gives back its virtual time (no penalty for a request that left).
    if (!served && i === list.length) b.lastFinish.set(node.entry.tenant, list.length === 0 ? Math.min(node.start, b.lastFinish.get(node.entry.tenant) ?? 0) : list[list.length - 1]!.finish)
    if (list.length === 0) b.tenants.delete(node.entry.tenant)
  }
}
