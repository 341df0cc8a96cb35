/**
 * The workloads the router is judged on (backends.md §7), as request generators:
 *
 * - `shared-prefix`: many users behind long shared system prompts (SGLang's
 *   generated-shared-prefix / llm-d's "KV-cache wins" shape): 160 groups on the 8B model and 96 on
 *   the 70B, each with an ~8K-token system prompt, a fresh ~150-token question per request, uniform
 *   over groups. The prefixes' KV demand (≈1.3M tokens on the 8B pool, ≈770K on the 70B) is 1.7–3×
 *   what one engine holds (≈430K / ≈460K), so prefix-blind routing, which shows every group to
 *   every engine, thrashes the caches, while a prefix-aware split fits. Poisson arrivals.
 * - `multi-turn`: chat sessions (vLLM's multi-turn benchmark shape): conversations start as a
 *   Poisson process, each runs 4–8 turns; a turn is sent when the previous answer has arrived
 *   plus an exponential think time, and carries the whole history (system prompt, every
 *   question and every answer as streamed), with the session in the `user` field.
 * - `sharegpt`: a ShareGPT-like length mix (vLLM's filter: prompt ≤ 1024, prompt + output ≤ 2048;
 *   lognormal lengths, medians ≈ 200/180 tokens), unique prompts, Poisson arrivals.
 * - `bursty`: the same mix with Gamma(shape 0.25) inter-arrivals (vLLM `--burstiness 0.25`): the
 *   same mean rate, arriving in bursts.
 *
 * Every model split is 80% 8B / 20% 70B. Output lengths are forced with the simulator's
 * `sim_output_tokens`; `max_tokens` is a cap, as a client would send it. Times are simulated
 * milliseconds. Deterministic for a seed: every policy replays the same requests.
 */
import { MODEL_70B, MODEL_8B } from "./fleet.ts"
import { makeRng } from "../../src/domain/Random.ts"

export interface Message {
  readonly role: "system" | "user" | "assistant"
  readonly content: string
}

export interface Request {
  /** Send time, simulated ms from the start of the run (open loop). */
  readonly at: number
  readonly model: string
  readonly messages: ReadonlyArray<Message>
  readonly outputTokens: number
  readonly maxTokens: number
  readonly user?: string | undefined
}

export interface Workload {
  readonly name: string
  readonly description: string
  /** Open-loop arrivals in [0, durationMs). */
  readonly initial: ReadonlyArray<Request>
  /** Closed-loop follow-ups: the next request of a session once `done` completed at `atMs`, with its answer. */
  readonly next?: (done: Request, answer: string, atMs: number) => Request | undefined
  /** The answer text is needed by `next` (the client then decodes every chunk). */
  readonly collectText: boolean
}

// ---- deterministic randomness and text ----

export const rng = makeRng

const WORDS = (
  "the of and to in is that for it as with was on be by at this from or have an they which one you were all we " +
  "can her has there been if more when will would who so no about out up them some what its time only new could " +
  "two like other then first also after way many these may well should very through long where much before right " +
  "too any same just over such our most even work back good because each people those how three year made world " +
  "still between both under last never while another number since against place around however small great system " +
  "case part large end point group often given set important public few found high state during without water less " +
  "light early form line order river power model cache token batch engine request memory block queue stream latency"
).split(" ")

/** About `tokens` tokens of text (each word is one cl100k token), determined by `seed`. */
export const words = (tokens: number, seed: number): string => {
  const r = rng(seed)
  const out = new Array<string>(tokens)
  for (let i = 0; i < tokens; i++) out[i] = WORDS[Math.floor(r() * WORDS.length)]!
  return out.join(" ")
}

const exp = (r: () => number, mean: number) => -Math.log(1 - r()) * mean

/** Gamma(shape k, scale θ) by Marsaglia–Tsang (with the k < 1 boost). */
const gamma = (r: () => number, k: number, theta: number): number => {
  if (k < 1) return gamma(r, k + 1, theta) * Math.pow(r(), 1 / k)
  const d = k - 1 / 3
  const c = 1 / Math.sqrt(9 * d)
  for (;;) {
    let x: number
    let v: number
    do {
      const u1 = r()
      const u2 = r()
      x = Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2)
      v = 1 + c * x
    } while (v <= 0)
    v = v * v * v
    const u = r()
    if (Math.log(1 - u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v * theta
  }
}

const lognormal = (r: () => number, median: number, sigma: number) => {
  const z = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r())
  return median * Math.exp(sigma * z)
}

/** Arrival times in [0, durationMs): Poisson (burstiness 1) or Gamma(shape b, scale 1/(rate·b)). */
export const arrivals = (ratePerS: number, durationMs: number, burstiness: number, r: () => number): Array<number> => {
  const out: Array<number> = []
  const meanGap = 1000 / ratePerS
  let t = 0
  for (;;) {
    t += burstiness === 1 ? exp(r, meanGap) : gamma(r, burstiness, meanGap / burstiness)
    if (t >= durationMs) return out
    out.push(t)
  }
}

const pickModel = (r: () => number) => (r() < 0.8 ? MODEL_8B : MODEL_70B)

// ---- workloads ----

export interface Shape {
  /** Arrivals are generated in [0, durationMs); the first `warmupMs` warm the caches and are not measured. */
  readonly durationMs: number
  readonly seed: number
  /** Multiplies every rate (the bench's --load). */
  readonly load: number
}

export const sharedPrefix = (s: Shape, opts = { rate: 36, groups8b: 160, groups70b: 96, systemTokens: 6000 }): Workload => {
  const r = rng(s.seed)
  const systems = new Map<string, string>()
  const system = (model: string, g: number) => {
    const key = `${model}/${g}`
    let text = systems.get(key)
    if (text === undefined) {
      text = `Group ${key}. ` + words(opts.systemTokens, s.seed * 7919 + g * 31 + (model === MODEL_8B ? 0 : 1_000_003))
      systems.set(key, text)
    }
    return text
  }
  const initial = arrivals(opts.rate * s.load, s.durationMs, 1, r).map((at, i): Request => {
    const model = pickModel(r)
    const g = Math.floor(r() * (model === MODEL_8B ? opts.groups8b : opts.groups70b))
    return {
      at,
      model,
      messages: [
        { role: "system", content: system(model, g) },
        { role: "user", content: `Question ${i}: ` + words(150, s.seed * 104729 + i) }
      ],
      outputTokens: 32 + Math.floor(r() * 97),
      maxTokens: 256
    }
  })
  return {
    name: "shared-prefix",
    description: `${opts.groups8b} (8B) + ${opts.groups70b} (70B) groups × ${opts.systemTokens}-token system prompts, 150-token questions, ` +
      `32–128 output tokens, Poisson ${(opts.rate * s.load).toFixed(1)} req/s`,
    initial,
    collectText: false
  }
}

export const multiTurn = (s: Shape, opts = { conversationsPerS: 3, thinkMs: 3000, systemTokens: 800 }): Workload => {
  const r = rng(s.seed + 1)
  const turnsOf = new Map<string, number>()
  const initial = arrivals(opts.conversationsPerS * s.load, s.durationMs, 1, r).map((at, i): Request => {
    const model = pickModel(r)
    const user = `conv-${i}`
    turnsOf.set(user, 4 + Math.floor(r() * 5))
    return {
      at,
      model,
      messages: [
        { role: "system", content: `Conversation ${i}. ` + words(opts.systemTokens, s.seed * 15485863 + i) },
        { role: "user", content: words(120 + Math.floor(r() * 120), s.seed * 32452843 + i * 101) }
      ],
      outputTokens: 100 + Math.floor(r() * 151),
      maxTokens: 512,
      user
    }
  })
  const follow = rng(s.seed + 2)
  return {
    name: "multi-turn",
    description: `conversations at ${(opts.conversationsPerS * s.load).toFixed(1)}/s (Poisson), 4–8 turns, ` +
      `${opts.systemTokens}-token system prompt, 120–240-token questions, 100–250-token answers, think time exp(${opts.thinkMs / 1000} s)`,
    initial,
    collectText: true,
    next: (done, answer, atMs) => {
      const user = done.user!
      const turns = turnsOf.get(user) ?? 0
      const turn = (done.messages.length - 1) / 2 // questions asked so far
      if (turn >= turns) return undefined
      const at = atMs + exp(follow, opts.thinkMs)
      if (at >= s.durationMs) return undefined
      return {
        ...done,
        at,
        messages: [
          ...done.messages,
          { role: "assistant", content: answer },
          { role: "user", content: words(120 + Math.floor(follow() * 120), Math.floor(follow() * 2 ** 31)) }
        ],
        outputTokens: 100 + Math.floor(follow() * 151)
      }
    }
  }
}

const sharegptRequests = (s: Shape, rate: number, burstiness: number, salt: number): Array<Request> => {
  const r = rng(s.seed + salt)
  return arrivals(rate * s.load, s.durationMs, burstiness, r).map((at, i): Request => {
    const prompt = Math.max(4, Math.min(1024, Math.round(lognormal(r, 200, 0.9))))
    const output = Math.max(4, Math.min(1024, 2048 - prompt, Math.round(lognormal(r, 180, 0.9))))
    return {
      at,
      model: pickModel(r),
      messages: [{ role: "user", content: `Request ${salt}-${i}. ` + words(prompt, s.seed * 49979687 + salt * 7 + i) }],
      outputTokens: output,
      maxTokens: 1024
    }
  })
}

export const sharegpt = (s: Shape, opts = { rate: 14 }): Workload => ({
  name: "sharegpt",
  description: `ShareGPT-like lengths (lognormal, prompt ≤ 1024, prompt + output ≤ 2048), Poisson ${(opts.rate * s.load).toFixed(1)} req/s`,
  initial: sharegptRequests(s, opts.rate, 1, 3),
  collectText: false
})

export const bursty = (s: Shape, opts = { rate: 14, burstiness: 0.25 }): Workload => ({
  name: "bursty",
  description: `the ShareGPT-like mix with Gamma(shape ${opts.burstiness}) arrivals, mean ${(opts.rate * s.load).toFixed(1)} req/s`,
  initial: sharegptRequests(s, opts.rate, opts.burstiness, 4),
  collectText: false
})

export const WORKLOADS = { "shared-prefix": sharedPrefix, "multi-turn": multiTurn, sharegpt, bursty } as const
export type WorkloadName = keyof typeof WORKLOADS
