/**
 * A repetition detector for token streams (degenerate output: a model looping until
 * max_tokens, backends.md §4.5).
 *
 * It keeps the last `window` tokens and counts every n-gram in them; when one n-gram
 * occurs `maxRepeats` times inside the window the stream is degenerate. Constant work
 * per token (one rolling n-gram key, two map updates); memory bounded by the window.
 * Plain TypeScript: it runs on every streamed token.
 */

export class RepetitionDetector {
  private readonly tokens: Array<string>
  private readonly keys: Array<string | undefined>
  private readonly counts = new Map<string, number>()
  private seen = 0

  constructor(
    private readonly window: number,
    private readonly ngram: number,
    private readonly maxRepeats: number
  ) {
    this.tokens = new Array<string>(window)
    this.keys = new Array<string | undefined>(window)
  }

  /** Adds one token; true when the stream has become degenerate. */
  push(token: string): boolean {
    const w = this.window
    const slot = this.seen % w
    // The n-gram that started at the slot being overwritten leaves the window.
    const leaving = this.keys[slot]
    if (leaving !== undefined) {
      const c = this.counts.get(leaving)! - 1
      if (c === 0) this.counts.delete(leaving)
      else this.counts.set(leaving, c)
      this.keys[slot] = undefined
    }
    this.tokens[slot] = token
    this.seen++
    if (this.seen < this.ngram) return false
    // The n-gram ending at this token, keyed at its first token's slot.
    let key = ""
    for (let i = this.ngram; i >= 1; i--) key += this.tokens[(this.seen - i) % w] + "\u0000"
    const startSlot = (this.seen - this.ngram) % w
    this.keys[startSlot] = key
    const count = (this.counts.get(key) ?? 0) + 1
    this.counts.set(key, count)
    return count >= this.maxRepeats
  }
}
