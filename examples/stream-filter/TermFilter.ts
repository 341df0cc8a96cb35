/**
 * Example extension: a streamed response filter that masks or blocks terms in the generated
 * text, even when a term arrives split across chunks ("pass" + "wo" + "rd").
 *
 * The filter holds back a bounded carry-over tail: only the longest end of the text seen so
 * far that could still be the start of a term (at most the longest term's length − 1
 * characters); everything before it goes out at once. A complete term is masked (`mask`) or
 * ends the response (`block`): the gateway then sends the client a `content_blocked` error
 * event (a unary answer: 400), stops reading the engine, and accounts the tokens the engine
 * actually streamed. When the generation ends, the held tail (never a whole term) goes out.
 *
 * Owns one filter state per response. Must never: hold more than the tail, or keep text
 * beyond the response (the state lives in the response's scope).
 */
import { Effect } from "effect"
import { Extensions, ResponsePolicies, type ResponsePolicy, type TextFilter } from "sluice"

export interface TermFilterOptions {
  /** The policy's name (what `extensions.response` lists). */
  readonly name: string
  /** The terms, matched case-insensitively. */
  readonly terms: ReadonlyArray<string>
  /** `mask`: replace each occurrence with `replacement`; `block`: end the response. */
  readonly mode: "mask" | "block"
  readonly replacement?: string
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** Length of the longest end of `text` that begins one of `terms` (but is not a whole term). */
export const heldLength = (text: string, terms: ReadonlyArray<string>): number => {
  const lower = text.toLowerCase()
  let held = 0
  for (const term of terms) {
    const t = term.toLowerCase()
    for (let k = Math.min(t.length - 1, lower.length); k > held; k--) {
      if (lower.endsWith(t.slice(0, k))) {
        held = k
        break
      }
    }
  }
  return held
}

export const termFilter = (options: TermFilterOptions): ResponsePolicy => {
  const terms = options.terms.filter((t) => t !== "")
  const pattern = terms.length === 0 ? /(?!)/g : new RegExp(terms.map(escape).join("|"), "gi")
  const replacement = options.replacement ?? "[redacted]"
  const start = (): TextFilter => {
    /** The carry-over tail: shorter than the longest term. */
    let tail = ""
    return {
      push: (text) =>
        Effect.sync(() => {
          let buffer = tail + text
          if (options.mode === "block") {
            pattern.lastIndex = 0
            if (pattern.test(buffer)) return Extensions.block(`The response contained a blocked term.`)
          } else {
            buffer = buffer.replace(pattern, replacement)
          }
          const hold = heldLength(buffer, terms)
          tail = buffer.slice(buffer.length - hold)
          return Extensions.emit(buffer.slice(0, buffer.length - hold))
        }),
      // The generation ended: the tail cannot become a term any more.
      end: Effect.sync(() => {
        const rest = tail
        tail = ""
        return Extensions.emit(rest)
      })
    }
  }
  return { name: options.name, start: () => Effect.sync(start) }
}

/** The extension layer: registers one term filter as a response policy. */
export const layer = (options: TermFilterOptions) => ResponsePolicies.add(termFilter(options))
