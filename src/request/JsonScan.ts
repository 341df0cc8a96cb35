/**
 * A linear, iterative pre-scan of a JSON body's bytes, before `JSON.parse` and before
 * anything recurses over it: nesting depth, the number of values and the number of object
 * keys, each against a limit. It is what bounds the cost of parsing (V8's `JSON.parse`
 * costs ~3 ns per byte of string but up to ~1 µs per object key) and keeps untrusted depth
 * away from every recursive walker (`JSON.stringify`, schema validation, translators).
 *
 * It does not validate JSON: bytes JSON.parse will reject pass or fail here harmlessly.
 * The scan is resumable (`step` takes a byte budget), so a large body is scanned in slices
 * with the event loop free between them. It never allocates per byte and never recurses;
 * the only strings it builds are the first few path segments, for the error's `param`.
 */
import { Effect } from "effect"

export interface JsonLimits {
  readonly maxDepth: number
  readonly maxValues: number
  readonly maxKeys: number
}

export type ScanFailure =
  | { readonly _tag: "TooDeep"; readonly limit: number; readonly path: string }
  | { readonly _tag: "TooManyValues"; readonly limit: number; readonly path: string }
  | { readonly _tag: "TooManyKeys"; readonly limit: number; readonly path: string }

/** Path segments kept for the error's `param` (e.g. `tools[0].function.parameters`). */
const PATH_SEGMENTS = 4
/** Characters of a key kept in the path. */
const KEY_CHARS = 64

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const COMMA = 0x2c
const COLON = 0x3a

/** 1 for the bytes the structural scan stops at; everything else is skipped in a tight loop. */
const STRUCTURAL = new Uint8Array(256)
for (const c of [QUOTE, OPEN_OBJECT, CLOSE_OBJECT, OPEN_ARRAY, CLOSE_ARRAY, COMMA, COLON]) STRUCTURAL[c] = 1

const decoder = new TextDecoder()

export class JsonScanner {
  private pos = 0
  private depth = 0
  private values = 1
  private keys = 0
  private inString = false
  private escaped = false
  private stringStart = 0
  /**
   * Per open container (depth ≥ 1): object or array, elements seen, whether a key is due;
   * and where the last key of each of the first PATH_SEGMENTS containers is (decoded only
   * for an error). Plain arrays: most bodies are small and nest a few levels, and typed
   * arrays cost more to allocate than such a body costs to scan.
   */
  private readonly isObject: Array<number> = [0]
  private readonly index: Array<number> = [0]
  private readonly keyDue: Array<number> = [0]
  private readonly keyStart: Array<number> = [0]
  private readonly keyEnd: Array<number> = [0]
  private failure: ScanFailure | undefined

  constructor(private readonly bytes: Uint8Array, private readonly limits: JsonLimits) {}

  get done(): boolean {
    return this.failure !== undefined || this.pos >= this.bytes.length
  }

  /** The failure found so far (final once `done`). */
  get result(): ScanFailure | undefined {
    return this.failure
  }

  /** Scans at most `budget` more bytes. */
  step(budget: number): void {
    const b = this.bytes
    const end = Math.min(b.length, this.pos + budget)
    let i = this.pos
    while (i < end && this.failure === undefined) {
      if (this.inString) {
        // Tight loop over string content: stop at a quote or a backslash only.
        let escaped = this.escaped
        while (i < end) {
          const c = b[i]!
          if (escaped) escaped = false
          else if (c === BACKSLASH) escaped = true
          else if (c === QUOTE) break
          i++
        }
        this.escaped = escaped
        if (i >= end) break
        this.inString = false
        this.endString(i)
        i++
        continue
      }
      const c = b[i]!
      if (STRUCTURAL[c] === 0) {
        i++
        continue
      }
      switch (c) {
        case QUOTE:
          this.inString = true
          this.stringStart = i + 1
          break
        case OPEN_OBJECT:
        case OPEN_ARRAY:
          this.open(c === OPEN_OBJECT)
          break
        case CLOSE_OBJECT:
        case CLOSE_ARRAY:
          if (this.depth > 0) this.depth--
          break
        case COMMA:
          this.values++
          if (this.depth > 0) {
            this.index[this.depth] = this.index[this.depth]! + 1
            if (this.isObject[this.depth] === 1) this.keyDue[this.depth] = 1
          }
          if (this.values > this.limits.maxValues) this.fail("TooManyValues", this.limits.maxValues)
          break
        case COLON:
          this.keys++
          if (this.depth > 0) this.keyDue[this.depth] = 0
          if (this.keys > this.limits.maxKeys) this.fail("TooManyKeys", this.limits.maxKeys)
          break
      }
      i++
    }
    this.pos = i
  }

  private open(object: boolean): void {
    this.values++
    const d = ++this.depth
    if (d > this.limits.maxDepth) return this.fail("TooDeep", this.limits.maxDepth)
    this.isObject[d] = object ? 1 : 0
    this.index[d] = 0
    this.keyDue[d] = object ? 1 : 0
    // Depth grows one level at a time, so these writes append: the arrays stay packed.
    if (d <= PATH_SEGMENTS) this.keyEnd[d] = this.keyStart[d] = 0
    if (this.values > this.limits.maxValues) this.fail("TooManyValues", this.limits.maxValues)
  }

  /** A string ended at `quote`: if it was a key of one of the first containers, remember where. */
  private endString(quote: number): void {
    const d = this.depth
    if (d === 0 || d > PATH_SEGMENTS || this.isObject[d] !== 1 || this.keyDue[d] !== 1) return
    this.keyStart[d] = this.stringStart
    this.keyEnd[d] = Math.min(quote, this.stringStart + KEY_CHARS * 4)
  }

  private key(d: number): string {
    const key = decoder.decode(this.bytes.subarray(this.keyStart[d]!, this.keyEnd[d]!))
    return key.length > KEY_CHARS ? key.slice(0, KEY_CHARS) : key
  }

  /** The path of the innermost open container, as the OpenAI `param` spells it, cut to a few segments. */
  private path(): string {
    let path = ""
    // Container d is the value at segment d-1 of its parent; the root (depth 1) has no segment.
    const last = Math.min(this.depth - 1, PATH_SEGMENTS)
    for (let d = 1; d <= last; d++) {
      if (this.isObject[d] === 1) {
        const key = this.key(d)
        path = path === "" ? key : `${path}.${key}`
      } else {
        path = `${path}[${this.index[d]}]`
      }
    }
    return path
  }

  private fail(tag: ScanFailure["_tag"], limit: number): void {
    if (tag === "TooDeep") {
      // The value that nests too deep: its container path at the limit.
      this.depth = Math.min(this.depth, this.limits.maxDepth + 1)
    }
    this.failure = { _tag: tag, limit, path: this.path() }
  }
}

/** Bytes scanned between two yields to the event loop (~0.3 ms of work). */
export const SLICE_BYTES = 256 * 1024

/**
 * Scans `bytes` against `limits`, yielding to the event loop between slices of
 * `SLICE_BYTES`; a body of one slice or less is scanned without yielding.
 */
export const scan = (bytes: Uint8Array, limits: JsonLimits): Effect.Effect<ScanFailure | undefined> =>
  Effect.suspend(() => {
    const scanner = new JsonScanner(bytes, limits)
    scanner.step(SLICE_BYTES)
    if (scanner.done) return Effect.succeed(scanner.result)
    const loop: Effect.Effect<ScanFailure | undefined> = Effect.flatMap(Effect.yieldNow, () => {
      scanner.step(SLICE_BYTES)
      return scanner.done ? Effect.succeed(scanner.result) : loop
    })
    return loop
  })
