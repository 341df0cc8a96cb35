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
 * period), constant per token; memory two typed arrays of ~maxPeriod entries per stream.
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

export class RepetitionDetector {
  /** The last `size` unit hashes (a ring; 0 = empty). */
  private readonly ring: Int32Array
  private readonly mask: number
  /** run[p]: how many of the latest units equal the unit p before them. */
  private readonly run: Int32Array
  /** need[p]: the run that makes a loop of period p, max(minRun, minRepeats·p) − p. */
  private readonly need: Int32Array
  private units = 0
  private unitHash = FNV_OFFSET
  private unitChars = 0
  private prevClass = -1
  private found = 0

  constructor(config: RepetitionConfig) {
    let size = 2
    while (size <= config.maxPeriod) size *= 2
    this.ring = new Int32Array(size)
    this.mask = size - 1
    this.run = new Int32Array(config.maxPeriod + 1)
    this.need = new Int32Array(config.maxPeriod + 1)
    for (let p = 1; p <= config.maxPeriod; p++) this.need[p] = Math.max(config.minRun, config.minRepeats * p) - p
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

  /** Ends the current unit; true when it completes a loop. */
  private emit(): boolean {
    const h = this.unitHash | 0 || 1
    this.unitHash = FNV_OFFSET
    this.unitChars = 0
    const pos = this.units++
    const ring = this.ring
    const run = this.run
    const need = this.need
    const mask = this.mask
    const periods = run.length - 1
    ring[pos & mask] = h
    for (let p = 1; p <= periods; p++) {
      if (ring[(pos - p) & mask] === h) {
        // The last run[p] + p units are p-periodic: the loop's length so far.
        if (++run[p]! >= need[p]!) {
          this.found = p
          return true
        }
      } else {
        run[p] = 0
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
