/**
 * Running extensions inside a request: the request policies of the guard phase (in order,
 * each seeing the call the previous one left) and the response text filters of the stream
 * phase (chained: each filter's output is the next one's input).
 *
 * What an extension is guaranteed and what it must respect (docs/EXTENDING.md): every call
 * runs inside the request's fiber and scope, under `extensions.timeout`; a failure, a defect
 * or a call past its deadline becomes a typed `ExtensionFailed` naming the extension (a
 * 500/504 before the first byte, an error event after it), never a crash; the client leaving
 * interrupts it like the rest of the request. Nothing here holds a resource of its own, so
 * nothing can leak, and settlement stays with the reservation's release.
 */
import { Cause, Effect } from "effect"
import type { InferenceCall } from "../api/openai/Calls.ts"
import * as Deadline from "../domain/Deadline.ts"
import type { FilterStep, PolicyContext, RequestPolicy, ResponsePolicy, TextFilter } from "../extensions/Contract.ts"
import { ExtensionFailed, PolicyRejected } from "./Errors.ts"

/** `effect` bounded by the deadline; its failure, defect or timeout is the extension's `ExtensionFailed`. */
const bounded = <A>(
  effect: Effect.Effect<A>,
  extension: string,
  phase: ExtensionFailed["phase"],
  timeoutMs: number
): Effect.Effect<A, ExtensionFailed> =>
  // One fork per call, not Effect.timeoutOrElse's two (domain/Deadline.ts): a response filter
  // runs on every text chunk of a stream.
  Deadline.within(effect, timeoutMs, () => Effect.fail(new ExtensionFailed({ extension, phase, reason: "timeout" }))).pipe(
    Effect.catchCause((cause) => {
      // The client left (or the gateway shuts down): the interruption goes on as it came.
      if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
      const typed = cause.reasons.find((r) => r._tag === "Fail")
      if (typed !== undefined && typed._tag === "Fail" && typed.error instanceof ExtensionFailed) return Effect.fail(typed.error)
      return Effect.andThen(
        Effect.logError("extension failed").pipe(Effect.annotateLogs({ extension, phase, cause: Cause.pretty(cause) })),
        Effect.fail(new ExtensionFailed({ extension, phase, reason: Cause.hasDies(cause) ? "died" : "failed" }))
      )
    })
  )

/** The guard phase: the request policies in order; the call the last one leaves goes on. */
export const guard = (
  policies: ReadonlyArray<RequestPolicy>,
  call: InferenceCall,
  ctx: PolicyContext,
  timeoutMs: number
): Effect.Effect<{ readonly call: InferenceCall; readonly rewritten: boolean }, PolicyRejected | ExtensionFailed> => {
  if (policies.length === 0) return Effect.succeed({ call, rewritten: false })
  return Effect.gen(function*() {
    let current = call
    let rewritten = false
    for (const policy of policies) {
      const verdict = yield* bounded(policy.apply(current, ctx), policy.name, "request", timeoutMs)
      switch (verdict._tag) {
        case "Pass":
          break
        case "Rewrite":
          current = verdict.call
          rewritten = true
          break
        case "Reject":
          return yield* new PolicyRejected({ policy: policy.name, message: verdict.message, code: verdict.code ?? "request_blocked" })
      }
    }
    return { call: current, rewritten }
  })
}

/** The response filters of one answer, chained; a block names the filter that blocked. */
export interface FilterChain {
  readonly push: (text: string) => Effect.Effect<Step, ExtensionFailed>
  readonly end: Effect.Effect<Step, ExtensionFailed>
}

export type Step =
  | { readonly _tag: "Emit"; readonly text: string }
  | { readonly _tag: "Block"; readonly message: string; readonly policy: string }

/** Starts every response policy's filter for this answer (undefined: none selected). */
export const startFilters = (
  policies: ReadonlyArray<ResponsePolicy>,
  ctx: PolicyContext,
  timeoutMs: number
): Effect.Effect<FilterChain | undefined, ExtensionFailed> => {
  if (policies.length === 0) return Effect.succeed(undefined)
  return Effect.gen(function*() {
    const filters: Array<{ readonly name: string; readonly filter: TextFilter }> = []
    for (const policy of policies) {
      filters.push({ name: policy.name, filter: yield* bounded(policy.start(ctx), policy.name, "response", timeoutMs) })
    }
    const step = (name: string, s: FilterStep): Step =>
      s._tag === "Emit" ? s : { _tag: "Block", message: s.message, policy: name }
    /** Feeds `text` through the filters from `from` on. */
    const feed = (text: string, from: number): Effect.Effect<Step, ExtensionFailed> =>
      Effect.gen(function*() {
        let current = text
        for (let i = from; i < filters.length; i++) {
          const { name, filter } = filters[i]!
          const out = step(name, yield* bounded(filter.push(current), name, "response", timeoutMs))
          if (out._tag === "Block") return out
          current = out.text
        }
        return { _tag: "Emit", text: current } satisfies Step
      })
    return {
      push: (text) => feed(text, 0),
      // Each filter releases what it held, in chain order; that text still goes through the
      // filters after it (which release it with their own at their end).
      end: Effect.gen(function*() {
        let out = ""
        for (let i = 0; i < filters.length; i++) {
          const { name, filter } = filters[i]!
          const released = step(name, yield* bounded(filter.end, name, "response", timeoutMs))
          if (released._tag === "Block") return released
          if (released.text === "") continue
          const passed = yield* feed(released.text, i + 1)
          if (passed._tag === "Block") return passed
          out += passed.text
        }
        return { _tag: "Emit", text: out } satisfies Step
      })
    }
  })
}
