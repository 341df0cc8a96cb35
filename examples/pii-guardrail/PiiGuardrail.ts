/**
 * Example extension: a request guardrail that masks personal data in a chat or completions
 * request before it is dispatched: e-mail addresses (`[EMAIL]`), card numbers that pass the
 * Luhn check (`[CARD]`) and phone numbers (`[PHONE]`). What it masked is counted in an Effect
 * Metric, `pii_masked_total{kind}`, which the gateway's /metrics exports with its own.
 *
 * Register it with `PiiGuardrail.layer` in `Gateway.embedded({ extensions })`; it runs for
 * every model unless the config's `extensions.request` lists name the policies that run.
 *
 * Owns the masking rules and the metric. Must never: keep request text beyond the call
 * (nothing is stored), or do unbounded work on a hostile prompt (every pattern is linear
 * with bounded repetitions).
 */
import { Effect, Metric } from "effect"
import { Calls, Extensions, RequestPolicies, type InferenceCall, type RequestPolicy } from "sluice"

export type PiiKind = "email" | "card" | "phone"

/** Masked items, by kind. */
export const masked = Metric.counter("pii_masked_total", {
  description: "Personal data items masked in requests before dispatch, by kind",
  incremental: true
})

const EMAIL = /[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}/g
/**
 * A run of 9 to 19 digits with the usual separators, taken whole (never a part of a longer
 * run): 13 to 19 digits grouped by spaces or dashes that pass Luhn are a card, 9 to 15
 * digits a phone number, anything else (an order number) stays.
 */
const DIGITS = /(?<![\w+])\+?\(?\d(?:[\s().-]{0,2}\d){8,18}(?![\d])/g
const CARD_SHAPE = /^\d(?:[ -]?\d){12,18}$/

/** The Luhn checksum of a digit string (card numbers carry one; most random digit runs do not). */
export const luhn = (digits: string): boolean => {
  let sum = 0
  let double = false
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48
    if (double) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
    double = !double
  }
  return sum % 10 === 0
}

type Counts = Record<PiiKind, number>

/** `text` with its personal data masked; adds what it masked to `counts`. */
export const mask = (text: string, counts: Counts): string =>
  text
    .replace(EMAIL, () => {
      counts.email++
      return "[EMAIL]"
    })
    .replace(DIGITS, (match) => {
      const digits = match.replace(/\D/g, "")
      if (CARD_SHAPE.test(match) && luhn(digits)) {
        counts.card++
        return "[CARD]"
      }
      if (digits.length > 15) return match
      counts.phone++
      return "[PHONE]"
    })

/** A chat message's content: a string, or parts of which the text parts are masked. */
const maskContent = (content: string | ReadonlyArray<unknown> | null | undefined, counts: Counts) => {
  if (typeof content === "string") return mask(content, counts)
  if (content === null || content === undefined) return content
  return content.map((part) =>
    typeof part === "object" && part !== null && "text" in part && typeof part.text === "string"
      ? { ...part, text: mask(part.text, counts) }
      : part
  )
}

/** A text prompt (a string or strings), as opposed to token ids. */
const isText = (prompt: unknown): prompt is string | ReadonlyArray<string> =>
  typeof prompt === "string" || (Array.isArray(prompt) && prompt.every((p) => typeof p === "string"))

/** The call with every prompt text masked (embeddings and rerank pass unchanged). */
export const maskCall = (call: InferenceCall, counts: Counts): InferenceCall => {
  switch (call.kind) {
    case "chat":
      return Calls.withFields(call, {
        messages: call.body.messages.map((m) => ({ ...m, content: maskContent(m.content, counts) }))
      })
    case "completion": {
      const prompt = call.body.prompt
      // Token-id prompts carry no text to mask.
      if (!isText(prompt)) return call
      return Calls.withFields(call, {
        prompt: typeof prompt === "string" ? mask(prompt, counts) : prompt.map((p) => mask(p, counts))
      })
    }
    default:
      return call
  }
}

export const policy: RequestPolicy = {
  name: "pii",
  apply: (call) =>
    Effect.gen(function*() {
      const counts: Counts = { email: 0, card: 0, phone: 0 }
      const out = maskCall(call, counts)
      let total = 0
      for (const kind of ["email", "card", "phone"] as const) {
        if (counts[kind] === 0) continue
        total += counts[kind]
        yield* Metric.update(Metric.withAttributes(masked, { kind }), counts[kind])
      }
      return total === 0 ? Extensions.pass : Extensions.rewrite(out)
    })
}

/** The extension layer: registers the `pii` request policy. */
export const layer = RequestPolicies.add(policy)
