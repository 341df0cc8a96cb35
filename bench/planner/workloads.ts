/**
 * The routing bench's workloads (bench/routing/workloads.ts) as planner traces, and one planner run of
 * a (workload, policy) at the bench's phases. A chat request becomes keyed segments: `<|begin_of_text|>`,
 * then one segment per message (its content, one token per generated word as the bench's text is built,
 * plus the Llama 3 template's 5 tokens per message), so a group's system prompt or a conversation's
 * history is the same token run wherever it recurs. Multi-turn follow-ups use the bench's own `next`,
 * with the previous answer standing for the tokens the engine generated (the planner's `answerKey`).
 *
 * Owns the conversion only. Must never: change a workload (every policy and both benches replay the same).
 */
import type { Plan } from "../../src/config/Plan.ts"
import * as Planner from "../../src/planner/Planner.ts"
import type { Arrival, Segment } from "../../src/planner/Trace.ts"
import type { Request, Workload } from "../routing/workloads.ts"

export interface Phases {
  readonly warmup: number
  readonly duration: number
  readonly drain: number
}

const ANSWER = "\u0000answer:"

const wordCount = (text: string): number => {
  let n = 1
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 32) n++
  return n
}

/** A bench request as an arrival; an assistant message that stands for answer `i` is that answer's tokens. */
export const toArrival = (req: Request, outputOf: (index: number) => number): Arrival => {
  const segments: Array<Segment> = [{ key: "<bos>", tokens: 1 }]
  for (const m of req.messages) {
    if (m.role === "assistant" && m.content.startsWith(ANSWER)) {
      const index = Number(m.content.slice(ANSWER.length))
      segments.push({ key: `hdr:${m.role}`, tokens: 4 })
      segments.push({ key: Planner.answerKey(index), tokens: outputOf(index) })
      segments.push({ key: "<eot>", tokens: 1 })
    } else {
      segments.push({ key: `${m.role}:${m.content}`, tokens: wordCount(m.content) + 5 })
    }
  }
  return {
    atMs: req.at,
    tenant: "default",
    model: req.model,
    segments,
    outputTokens: req.outputTokens,
    maxTokens: req.maxTokens,
    session: req.user
  }
}

/** Runs `workload` through the planner under `options` (phases in seconds, as the routing bench's). */
export const run = (
  plan: Plan,
  workload: Workload,
  phases: Phases,
  options: Omit<Planner.Options, "measure" | "next">
): Planner.Report => {
  const requests = new Map<Arrival, Request>()
  const outputs = new Map<number, number>()
  const arrivals = workload.initial.map((req) => {
    const a = toArrival(req, (i) => outputs.get(i) ?? 0)
    requests.set(a, req)
    return a
  })
  const next = workload.next
  return Planner.run(plan, arrivals, {
    ...options,
    measure: { warmupMs: phases.warmup * 1000, durationMs: phases.duration * 1000, drainMs: phases.drain * 1000 },
    next: next === undefined ? undefined : (done, index, atMs) => {
      const req = requests.get(done)
      if (req === undefined) return undefined
      outputs.set(index, done.outputTokens)
      const follow = next(req, `${ANSWER}${index}`, atMs)
      if (follow === undefined) return undefined
      const a = toArrival(follow, (i) => outputs.get(i) ?? 0)
      requests.set(a, follow)
      return a
    }
  })
}
