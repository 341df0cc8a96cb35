/**
 * A growable ring-buffer deque: the engine's FCFS waiting queue (preempted sequences go back to the front).
 *
 * Owns: ordering only. Must never: allocate per push once grown, or know what it holds.
 */
export class Deque<A> {
  private items: Array<A | undefined>
  private head = 0
  private size = 0

  constructor(capacity = 64) {
    this.items = new Array<A | undefined>(capacity)
  }

  get length(): number {
    return this.size
  }

  private grow(): void {
    const old = this.items
    const next = new Array<A | undefined>(old.length * 2)
    for (let i = 0; i < this.size; i++) next[i] = old[(this.head + i) % old.length]
    this.items = next
    this.head = 0
  }

  pushBack(a: A): void {
    if (this.size === this.items.length) this.grow()
    this.items[(this.head + this.size) % this.items.length] = a
    this.size++
  }

  pushFront(a: A): void {
    if (this.size === this.items.length) this.grow()
    this.head = (this.head - 1 + this.items.length) % this.items.length
    this.items[this.head] = a
    this.size++
  }

  peekFront(): A | undefined {
    return this.size === 0 ? undefined : this.items[this.head]
  }

  popFront(): A | undefined {
    if (this.size === 0) return undefined
    const a = this.items[this.head]
    this.items[this.head] = undefined
    this.head = (this.head + 1) % this.items.length
    this.size--
    return a
  }

  /** Removes the first occurrence of `a` (O(n); used for aborts of queued requests). */
  remove(a: A): boolean {
    const cap = this.items.length
    for (let i = 0; i < this.size; i++) {
      if (this.items[(this.head + i) % cap] === a) {
        for (let j = i; j < this.size - 1; j++) {
          this.items[(this.head + j) % cap] = this.items[(this.head + j + 1) % cap]
        }
        this.items[(this.head + this.size - 1) % cap] = undefined
        this.size--
        return true
      }
    }
    return false
  }

  toArray(): Array<A> {
    const out: Array<A> = []
    for (let i = 0; i < this.size; i++) out.push(this.items[(this.head + i) % this.items.length]!)
    return out
  }
}
