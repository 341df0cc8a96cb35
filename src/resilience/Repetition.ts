/**
 * The degenerate-output detector: tells a model looping (repeating one passage verbatim
 * until max_tokens, backends.md §4.5) from the repetition real answers have on purpose
 * (tables, JSON arrays, lists, separators, generated code, a chorus, a word repeated on
 * request).
 *
 * The rule. The text is cut into *units* the same way whatever its chunking (a run of
 * letters/digits/_ with the spaces before it, or one other character with the spaces
 * before it; at most 16 characters), so a loop is found whether the engine streams one
 * token, several, or a whole unary answer per chunk. The output is degenerate once its
 * last L units are one sequence of p units repeated verbatim, with
 *
 *     p ≤ maxPeriod   and   L ≥ max(minRun, minRepeats · p)
 *
 * i.e. a period repeated at least `minRepeats` times covering the last `minRun` units
 * (defaults: p ≤ 128, L ≥ max(320, 4p)). Legitimate repetition varies inside each repeat
 * (row values, list numbers, object fields) or stops well before `minRun` (a separator,
 * a chorus sung three times, a word asked for 100 times), so it never holds that long; a
 * loop of period p is flagged at most max(minRun, minRepeats·p) + p units after it starts.
 * What it cannot tell apart: a verbatim block of more than `minRun` units (a word asked for
 * 500 times, a 16×16 zero matrix) looks like a loop, which is why the default is to observe.
 *
 * Cost: O(maxPeriod) integer comparisons per unit (one running match length per candidate
 * period), constant per token; memory one typed array of ~3·maxPeriod entries per stream,
 * allocated at the first unit and grown with the output up to that size.
 * Plain TypeScript on the hot path (every streamed token); bench/repetition.ts measures it.
 */
import type { HealthPlan } from "../config/Plan.ts"

export interface RepetitionConfig {
  /** The loop must cover at least this many of the last units. */
  readonly minRun: number
  /** Longest repeating sequence looked for, in units. */
  readonly maxPeriod: number
  /** The sequence must repeat at least this many times. */
  readonly minRepeats: number
}

export const defaultRepetitionConfig: RepetitionConfig = { minRun: 320, maxPeriod: 128, minRepeats: 4 }

/** The detector's settings from the plan (`health.repetition_*`). */
export const fromHealthPlan = (health: HealthPlan): RepetitionConfig => ({
  minRun: health.repetitionMinRun,
  maxPeriod: health.repetitionMaxPeriod,
  minRepeats: health.repetitionMinRepeats
})

/** Longest unit, in characters (longer runs are cut; the cut is deterministic). */
const MAX_UNIT_CHARS = 16

// Character classes of the unit cutter.
const SPACE = 0
const WORD = 1
const OTHER = 2

const classOf = (c: number): number => {
  if (c === 32 || c === 9 || c === 13) return SPACE
  if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95) return WORD
  return OTHER
}

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

/** Units the per-stream state starts with room for; it doubles up to the configured size. */
const INITIAL_UNITS = 16

export class RepetitionDetector {
  /**
   * One buffer per stream, allocated at the first unit and grown while the output is shorter
   * than the longest period: `[0, size)` the last `size` unit hashes (a ring; 0 = empty),
   * `[size, size + room]` run[p], how many of the latest units equal the unit p before them.
   * Periods longer than the units seen cannot match (their ring slot is empty), so until the
   * ring is full size only `room = size − 1` of them are tracked; a stream that stays short never holds
   * the full ~1.5 KB.
   */
  private state: Int32Array | undefined = undefined
  private size = 0
  private mask = 0
  /** Periods tracked: min(size − 1, maxPeriod). */
  private periods = 0
  private readonly fullSize: number
  private readonly maxPeriod: number
  private readonly minRun: number
  private readonly minRepeats: number
  private units = 0
  private unitHash = FNV_OFFSET
  private unitChars = 0
  private prevClass = -1
  private found = 0

  constructor(config: RepetitionConfig) {
    let size = 2
    while (size <= config.maxPeriod) size *= 2
    this.fullSize = size
    this.maxPeriod = config.maxPeriod
    this.minRun = config.minRun
    this.minRepeats = config.minRepeats
  }

  /** The period (in units) of the loop found, or 0. */
  get period(): number {
    return this.found
  }

  /** Units seen so far. */
  get seen(): number {
    return this.units
  }

  /** Feeds the next text; true once the output is degenerate (and from then on). */
  push(text: string): boolean {
    if (this.found > 0) return true
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      const k = classOf(c)
      const prev = this.prevClass
      // A unit starts at a space after a non-space, at a word character after another
      // character, at any other character unless spaces precede it, and at the length cap.
      const starts = this.unitChars > 0 && (
        (k === SPACE && prev !== SPACE) ||
        (k === WORD && prev === OTHER) ||
        (k === OTHER && prev !== SPACE) ||
        this.unitChars >= MAX_UNIT_CHARS
      )
      if (starts && this.emit()) return true
      this.unitHash = Math.imul(this.unitHash ^ c, FNV_PRIME)
      this.unitChars++
      this.prevClass = k
    }
    return false
  }

  /**
   * Makes room for unit number `pos` before the ring wraps: doubles the ring (its entries are
   * units 0..pos−1 in place, none overwritten yet) and the periods tracked with it.
   */
  private grow(pos: number): void {
    let size = this.size === 0 ? Math.min(INITIAL_UNITS, this.fullSize) : this.size
    while (size <= pos && size < this.fullSize) size *= 2
    // a period equal to the ring's size would compare a unit with itself
    const periods = Math.min(size - 1, this.maxPeriod)
    const next = new Int32Array(size + periods + 1)
    const old = this.state
    if (old !== undefined) {
      next.set(old.subarray(0, this.size))
      next.set(old.subarray(this.size, this.size + this.periods + 1), size)
    }
    this.state = next
    this.size = size
    this.mask = size - 1
    this.periods = periods
  }

  /** Ends the current unit; true when it completes a loop. */
  private emit(): boolean {
    const h = this.unitHash | 0 || 1
    this.unitHash = FNV_OFFSET
    this.unitChars = 0
    const pos = this.units++
    if (pos >= this.size && this.size < this.fullSize) this.grow(pos)
    const state = this.state!
    const mask = this.mask
    const base = this.size
    const periods = this.periods
    const minRun = this.minRun
    const minRepeats = this.minRepeats
    state[pos & mask] = h
    for (let p = 1; p <= periods; p++) {
      if (state[(pos - p) & mask] === h) {
        // The last run[p] + p units are p-periodic: the loop's length so far; a loop of
        // period p needs max(minRun, minRepeats·p) − p of them.
        const r = ++state[base + p]!
        if (r >= minRun - p && r >= minRepeats * p - p) {
          this.found = p
          return true
        }
      } else {
        state[base + p] = 0
      }
    }
    return false
  }
}

/**
 * Characters of a complete (unary) answer that are checked: its tail, where a loop that
 * ran to max_tokens sits. Bounds the work of one answer (~10k units).
 */
export const UNARY_TAIL_CHARS = 64 * 1024

/**
 * The longest text that cannot hold a loop: a loop covers at least `minRun` units and at least
 * one period plus one repeat (2 units), each unit at least one character, and a unit counts only
 * once the character after it starts the next.
 */
export const tooShortForLoop = (config: RepetitionConfig): number => Math.max(config.minRun, 2)

/**
 * Whether a complete text ends in a loop (the unary check). A text too short to hold one is
 * answered without building a detector (most unary answers: the check runs on every one).
 */
export const isDegenerate = (text: string, config: RepetitionConfig): boolean =>
  text.length > tooShortForLoop(config) &&
  new RepetitionDetector(config).push(text.length > UNARY_TAIL_CHARS ? text.slice(-UNARY_TAIL_CHARS) : text)
