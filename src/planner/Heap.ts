/**
 * A binary min-heap of timed events for the planner's discrete-event loop: ordered by time, then by
 * kind (step completions before scrapes before arrivals at the same instant), then by insertion, so a
 * run is deterministic. Owns ordering only; must never read a clock.
 */

export interface Timed<T> {
  readonly at: number
  readonly kind: number
  readonly seq: number
  readonly value: T
}

const before = <T>(a: Timed<T>, b: Timed<T>): boolean =>
  a.at < b.at || (a.at === b.at && (a.kind < b.kind || (a.kind === b.kind && a.seq < b.seq)))

export class EventHeap<T> {
  private readonly items: Array<Timed<T>> = []
  private seq = 0

  get size(): number {
    return this.items.length
  }

  peek(): Timed<T> | undefined {
    return this.items[0]
  }

  push(at: number, kind: number, value: T): void {
    const items = this.items
    items.push({ at, kind, seq: this.seq++, value })
    let i = items.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(items[i]!, items[p]!)) break
      const t = items[i]!
      items[i] = items[p]!
      items[p] = t
      i = p
    }
  }

  pop(): Timed<T> | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) return top
    items[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < items.length && before(items[l]!, items[m]!)) m = l
      if (r < items.length && before(items[r]!, items[m]!)) m = r
      if (m === i) break
      const t = items[i]!
      items[i] = items[m]!
      items[m] = t
      i = m
    }
    return top
  }
}
