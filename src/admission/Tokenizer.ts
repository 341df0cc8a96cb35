/**
 * Prompt token counting with a real BPE tokenizer (gpt-tokenizer), bounded per request.
 *
 * `o200k` is exact for current OpenAI models (gpt-4o, gpt-4.1, gpt-5, o-series); `cl100k`
 * is exact for gpt-3.5/gpt-4 and the documented approximation for open models (Llama 3's
 * tiktoken-derived vocabulary counts within a few percent of cl100k on English text);
 * `chars` is bytes/4 for when no tokenizer is wanted. Encodings load on first use (each
 * costs tens of MB and up to 0.2 s) or, for the configured models, in the background just
 * after the gateway listens (`preload`); the admission phase awaits a load still under way,
 * so every estimate uses the real tokenizer.
 *
 * Bounds (issue 9): BPE costs time quadratic in the length of one pre-tokenized piece (an
 * 80k-character word took 3.9 s) and ~1 µs per character of text outside the vocabulary.
 * So the text is counted in windows cut where the tokenizer's own pre-split would cut
 * (before a space that follows a non-space: the count of the parts is the count of the
 * whole); a run of `LONG_RUN` or more characters of one class (letters, punctuation,
 * whitespace: the only runs a piece can grow from) is not BPE'd but counted as its UTF-8
 * bytes, an upper bound (every token covers at least one byte); past `EXACT_CHARS`
 * characters the rest is counted as bytes too, and once the count passes the caller's
 * `stopAbove` (the context window: the request will be refused) counting stops there.
 * Every cut that is not a pre-split boundary adds one token.
 * So the count is exact for ordinary text, never low, linear in the text, and the effect
 * version yields to the event loop between windows. Text containing special-token strings
 * (`<|endoftext|>`) is counted as text, never thrown on.
 */
import { Effect } from "effect"

import type { Encoding } from "../domain/Encodings.ts"

export type { Encoding } from "../domain/Encodings.ts"
export { encodingFor } from "../domain/Encodings.ts"

type Counter = (text: string) => number

/** Characters of one class in a row from which a run is counted as bytes, not BPE'd. */
export const LONG_RUN = 1024
/** Characters counted exactly per request; the rest of a longer prompt is counted as bytes. */
export const EXACT_CHARS = 1024 * 1024
/** Characters per window (one BPE call; ~0.1–1 ms of work between two yields; 2K measured better than 4K and 8K for other requests' latency in bench/event-loop.mjs). */
export const WINDOW_CHARS = 2 * 1024
/** How far past a window's end a pre-split boundary is looked for. */
const CUT_SEARCH = 256

const bytesOf = (text: string): number => Buffer.byteLength(text, "utf8")

const counters: Partial<Record<Encoding, Counter>> = {
  chars: (text) => Math.ceil(bytesOf(text) / 4)
}

/** Special-token strings in client text are text: counted, never a thrown "disallowed special token". */
const asText = { disallowedSpecial: new Set<string>() }

/** Loads in progress or done, by encoding: one import per encoding, however many wait for it. */
const loading: Partial<Record<Encoding, Promise<void>>> = {}

const importTables = (encoding: Encoding): Promise<void> =>
  loading[encoding] ??= (async () => {
    const mod = encoding === "o200k"
      ? await import("gpt-tokenizer/encoding/o200k_base")
      : await import("gpt-tokenizer/encoding/cl100k_base")
    counters[encoding] = (text) => mod.countTokens(text, asText)
  })()

/** Loads an encoding (idempotent; a caller that comes during a load waits for that load). */
export const load = (encoding: Encoding): Effect.Effect<void> =>
  counters[encoding] !== undefined ? Effect.void : Effect.promise(() => importTables(encoding))

/** Encodings a `preload` will load (it may be waiting for its moment): `loadSoon` leaves them to it. */
const scheduled = new Set<Encoding>()

/**
 * Loads the given encodings one after another once `when` has completed (the gateway runs it
 * in the background after it listens, waiting for the first quiet moment: the tables are
 * ~80 ms of CPU in one synchronous piece, and a request that comes before them does not wait
 * for them, see `upperBound`).
 */
export const preload = (encodings: Iterable<Encoding>, when: Effect.Effect<void> = Effect.void): Effect.Effect<void> =>
  Effect.suspend(() => {
    const wanted = [...new Set(encodings)].filter((e) => counters[e] === undefined)
    for (const e of wanted) scheduled.add(e)
    return Effect.andThen(when, Effect.forEach(wanted, load, { discard: true })).pipe(
      // Interrupted while waiting (a gateway stopped before its first quiet moment): `loadSoon` loads them.
      Effect.ensuring(Effect.sync(() => {
        for (const e of wanted) scheduled.delete(e)
      }))
    )
  })

/**
 * Starts loading an encoding in the background, unless a `preload` will (a request that used
 * `upperBound` calls it, so a model added by a reload gets its tables without waiting for them).
 */
export const loadSoon = (encoding: Encoding): void => {
  if (counters[encoding] !== undefined || scheduled.has(encoding)) return
  // A failed import stays in `loading`: whoever waits for the load next (`load`) fails with it.
  importTables(encoding).catch(() => {})
}

export const isLoaded = (encoding: Encoding): boolean => counters[encoding] !== undefined

/**
 * An upper bound of the count of `text` by any of the BPE encodings, without their tables:
 * its UTF-8 bytes (every token covers at least one byte). Admission uses it while the tables
 * are not loaded yet, where a count too high can do no wrong (a reservation, which settlement
 * trues up); a decision that a high count could get wrong (a context-window refusal, a budget
 * refusal, a charge made from the estimate) waits for the tables and counts exactly.
 */
export const upperBound = (text: string): number => bytesOf(text)

// ---- character classes for run detection (plain code on the hot path: one table lookup per char) ----

const OTHER = 1
const LETTER = 2
const SPACE = 3
const DIGIT = 4
/** A surrogate half: joins whatever run it is in (emoji and rare letters are pairs). */
const JOINS = 5

/** Class per BMP code unit, filled on first sight (0 = not yet classified). */
const classes = new Uint8Array(65536)
const classify = (c: number): number => {
  if (c >= 0xd800 && c <= 0xdfff) return JOINS
  const ch = String.fromCharCode(c)
  if (/[\p{L}\p{M}]/u.test(ch)) return LETTER
  if (/\s/u.test(ch)) return SPACE
  if (/\p{N}/u.test(ch)) return DIGIT
  return OTHER
}
const classOf = (c: number): number => {
  const k = classes[c]!
  if (k !== 0) return k
  const computed = classify(c)
  classes[c] = computed
  return computed
}

/** Whether `text[i]` is a pre-split boundary: a space after a non-space (no piece spans it). */
const isCut = (text: string, i: number): boolean =>
  text.charCodeAt(i) === 0x20 && i > 0 && classOf(text.charCodeAt(i - 1)) !== SPACE

/**
 * The first run of at least LONG_RUN same-class characters that starts in [from, to):
 * its start and class. Digits never form one (a digit piece is at most three long).
 */
const longRunIn = (text: string, from: number, to: number): readonly [number, number] | undefined => {
  let runClass = 0
  let runStart = from
  const end = Math.min(text.length, to + LONG_RUN)
  for (let i = from; i < end; i++) {
    const k = classOf(text.charCodeAt(i))
    if (k === runClass || (k === JOINS && runClass !== DIGIT && runClass !== 0)) {
      // the run goes on
    } else if (runClass === JOINS && k !== DIGIT) {
      runClass = k
    } else {
      if (i >= to) return undefined
      runClass = k
      runStart = i
    }
    if (runClass !== DIGIT && i + 1 - runStart >= LONG_RUN) return [runStart, runClass]
  }
  return undefined
}

/**
 * Where the run of class `runClass` going on at `start` ends, looking no further than
 * `limit`, and its class (a run of surrogate pairs takes the class of what follows).
 */
const runEnd = (text: string, start: number, runClass: number, limit: number): readonly [number, number] => {
  let i = start
  let cls = runClass
  while (i < limit) {
    const k = classOf(text.charCodeAt(i))
    if (k !== cls && k !== JOINS) {
      if (cls !== JOINS || k === DIGIT) break
      cls = k
    }
    i++
  }
  return [i, cls]
}

/** Moves `i` off the second half of a surrogate pair. */
const notInPair = (text: string, i: number): number => {
  const c = text.charCodeAt(i)
  return i < text.length && c >= 0xdc00 && c <= 0xdfff ? i + 1 : i
}

/** A pre-split boundary near `to` (ahead first, then back to the window's middle), or -1. */
const cutNear = (text: string, from: number, to: number): number => {
  const ahead = Math.min(text.length, to + CUT_SEARCH)
  for (let i = to; i < ahead; i++) if (isCut(text, i)) return i
  for (let i = to - 1; i > from + (to - from) / 2; i--) if (isCut(text, i)) return i
  return -1
}

/**
 * A resumable count of one text: each `step` processes about `WINDOW_CHARS` characters
 * (one BPE call) or skips part of a long run. Deterministic: where a caller yields never
 * changes where the text is cut.
 */
export class TokenCount {
  private pos = 0
  private tokens = 0
  /** Cuts off a pre-split boundary, one token each (the parts may count one lower than the whole). */
  private cuts = 0
  /** Tokens counted as bytes rather than BPE'd. */
  private estimated = 0
  /** The class of the long run `pos` is inside, or 0. */
  private inRun = 0
  private finished = false
  private readonly exactEnd: number

  constructor(
    private readonly counter: Counter,
    private readonly text: string,
    private readonly stopAbove: number = Number.POSITIVE_INFINITY
  ) {
    this.exactEnd = Math.min(text.length, EXACT_CHARS)
  }

  get done(): boolean {
    return this.finished
  }

  /** The count so far (final once `done`): never below the tokenizer's own count. */
  get total(): number {
    return this.tokens + this.cuts
  }

  /** Whether `total` is the tokenizer's own count (no estimate, no cut off a boundary). */
  get exact(): boolean {
    return this.finished && this.cuts === 0 && this.estimated === 0
  }

  private byBytes(from: number, to: number): void {
    const bytes = bytesOf(this.text.slice(from, to))
    this.tokens += bytes
    this.estimated += bytes
  }

  step(): void {
    if (this.finished) return
    const text = this.text
    if (this.pos >= text.length) {
      this.finished = true
      return
    }
    if (this.inRun !== 0) {
      const limit = Math.min(text.length, this.pos + WINDOW_CHARS * 8)
      const [end, runClass] = runEnd(text, this.pos, this.inRun, limit)
      this.byBytes(this.pos, end)
      this.pos = end
      this.inRun = runClass
      if (end < limit || end >= text.length) {
        this.inRun = 0
        if (end < text.length) this.cuts++
      }
      return
    }
    if (this.total > this.stopAbove) {
      // Over what the caller can accept: the rest is not counted at all.
      this.finished = true
      return
    }
    if (this.pos >= this.exactEnd) {
      // Past the exact bound: the rest as bytes.
      this.byBytes(this.pos, text.length)
      if (this.pos > 0) this.cuts++
      this.pos = text.length
      this.finished = true
      return
    }
    const from = this.pos
    let to = Math.min(this.exactEnd, from + WINDOW_CHARS)
    const run = longRunIn(text, from, to)
    if (run !== undefined) {
      const [start, runClass] = run
      if (start > from) this.tokens += this.counter(text.slice(from, start))
      if (start > 0) this.cuts++
      this.pos = start
      this.inRun = runClass
      return
    }
    if (to < text.length) {
      const cut = cutNear(text, from, to)
      if (cut === -1) {
        to = notInPair(text, to)
        if (to < text.length) this.cuts++
      } else {
        to = cut
      }
    }
    this.tokens += this.counter(text.slice(from, to))
    this.pos = to
    if (this.pos >= text.length) this.finished = true
  }
}

const counterFor = (encoding: Encoding): Counter => counters[encoding] ?? counters.chars!

/**
 * Counts tokens now, bounded as described above. Uses the byte approximation while the
 * encoding is still loading. With `stopAbove`, a count above it means "more than
 * `stopAbove`" (counting stopped there), not the total.
 */
export const count = (encoding: Encoding, text: string, stopAbove?: number): number => {
  if (encoding === "chars" || counters[encoding] === undefined) return counterFor(encoding)(text)
  const c = new TokenCount(counterFor(encoding), text, stopAbove)
  while (!c.done) c.step()
  return c.total
}

/** `count`, yielding to the event loop between windows when the text spans more than one. */
export const countYielding = (encoding: Encoding, text: string, stopAbove?: number): Effect.Effect<number> =>
  Effect.suspend(() => {
    if (encoding === "chars" || counters[encoding] === undefined) return Effect.succeed(counterFor(encoding)(text))
    const c = new TokenCount(counterFor(encoding), text, stopAbove)
    c.step()
    if (c.done) return Effect.succeed(c.total)
    const loop: Effect.Effect<number> = Effect.flatMap(Effect.yieldNow, () => {
      c.step()
      return c.done ? Effect.succeed(c.total) : loop
    })
    return loop
  })
