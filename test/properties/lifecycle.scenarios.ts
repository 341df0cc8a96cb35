/**
 * The generators of the lifecycle property: one scenario per request, each aimed at one
 * outcome class (completed, retried, failed, each timeout, partial, client aborts before
 * and after the first token, the queue), streaming and unary, with random prompt sizes and
 * reported usage that differs from the estimate (or is missing).
 *
 * Every request also passes a request-policy extension (the guard phase) whose behaviour the
 * scenario draws: it passes (every class above), or it rejects the request, fails with a
 * typed error, dies, hangs past `extensions.timeout`, or hangs until the client leaves (the
 * extension classes, which never reach admission or an engine).
 *
 * A scenario is data: the scripted attempts the fake engines will serve in order (whatever
 * backend the router picks, the n-th attempt of a request gets the n-th script) and what
 * the client does. Everything the oracle expects is derived from it. Timing never decides
 * an outcome on its own: engines that must not answer before the client leaves hold until
 * the gateway closes the request, and every deadline has a wide margin over the gaps.
 * Nothing here talks to the gateway.
 */
import * as fc from "fast-check"
import type { Script } from "../support/FakeEngine.ts"

/**
 * The gateway's timeouts for the property (ms). Every script keeps a margin of at least
 * ~450 ms under the deadline it must not hit (the machine is shared: a starved process
 * loses 100-200 ms at a time), and the total deadline is well past the longest scenario
 * that must not reach it (two first-token deadlines in a row).
 */
export const TIMEOUTS = { firstTokenMs: 500, idleMs: 500, totalMs: 1500, queueMs: 250, extensionMs: 400 } as const
export const MAX_ATTEMPTS = 2

export const STREAM_CLASSES = [
  "stream:completed",
  "stream:retried",
  "stream:failed",
  "stream:first_token_timeout",
  "stream:partial",
  "stream:stalled",
  "stream:total_timeout",
  "stream:aborted_before_first_token",
  "stream:aborted_after_first_token"
] as const
export const UNARY_CLASSES = [
  "unary:completed",
  "unary:retried",
  "unary:failed",
  "unary:total_timeout",
  "unary:aborted_before_response"
] as const
export const QUEUE_CLASSES = ["queue:timeout", "queue:aborted_while_queued"] as const
/** Requests the request-policy extension stops before admission (streamed or not). */
export const EXTENSION_CLASSES = ["extension:rejected", "extension:failed", "extension:timed_out", "extension:aborted"] as const

export type ExtensionClass = typeof EXTENSION_CLASSES[number]
export type OutcomeClass =
  | typeof STREAM_CLASSES[number]
  | typeof UNARY_CLASSES[number]
  | typeof QUEUE_CLASSES[number]
  | ExtensionClass
export const ALL_CLASSES: ReadonlyArray<OutcomeClass> = [...STREAM_CLASSES, ...UNARY_CLASSES, ...QUEUE_CLASSES, ...EXTENSION_CLASSES]

export const isExtensionClass = (cls: OutcomeClass): cls is ExtensionClass => cls.startsWith("extension:")

/**
 * What the request policy does with the request: `pass` (it goes on), `reject` (a typed
 * refusal: 400), `fail` (a typed error outside its contract: 500), `die` (a defect: 500),
 * `hang` (never answers: interrupted at `extensions.timeout`, 504), `hang` with a client that
 * leaves while it runs (interrupted by the abort).
 */
export type ExtensionBehaviour = "pass" | "reject" | "fail" | "die" | "hang"

/** A failure before the first token, and the failure tags it may be recorded as. */
export type Before =
  | { readonly kind: "status"; readonly status: 429 | 500 | 502 | 503 }
  | { readonly kind: "first_token_held" }
  | { readonly kind: "headers_held" }
  | { readonly kind: "error_event" }
  | { readonly kind: "malformed" }
  | { readonly kind: "reset" }

export const tagsOf = (b: Before): ReadonlyArray<string> => {
  switch (b.kind) {
    case "status":
      return b.status === 429 ? ["Overloaded"] : b.status === 500 ? ["UpstreamError"] : ["Unavailable"]
    case "first_token_held":
    case "headers_held":
      return ["TimeToFirstTokenExceeded"]
    case "error_event":
      return ["MidStreamError"]
    case "malformed":
      return ["MalformedChunk"]
    case "reset":
      // A socket destroyed right after the headers: a failed read, or a body that ended early.
      return ["Unavailable", "MidStreamError"]
  }
}

/** Usage the engine reports (independent of the prompt estimate), or none at all. */
export type Reported = { readonly prompt: number; readonly completion: number } | null

/** One scripted attempt, in the order the engines see them. */
export type Attempt =
  | { readonly kind: "fail"; readonly before: Before }
  | { readonly kind: "ok"; readonly tokens: number; readonly gapMs: number; readonly usage: Reported }
  /** A complete answer that keeps its slot for well over the queue deadline (the queue group's holder). */
  | { readonly kind: "slot_holder"; readonly usage: Reported }
  /** `tokens` tokens, then: an error event, a malformed chunk, or a reset once the client has them. */
  | { readonly kind: "cut"; readonly tokens: number; readonly end: "error_event" | "malformed" | "reset" }
  /** `tokens` tokens, then silence until the gateway closes the request (idle-gap deadline). */
  | { readonly kind: "stall"; readonly tokens: number }
  /** Tokens every `gapMs` (well under the idle deadline) until the total deadline cuts them. */
  | { readonly kind: "endless"; readonly gapMs: number }
  /** Holds until the gateway closes the request: before the headers, or after `tokens` tokens. */
  | { readonly kind: "hold"; readonly at: "headers" | number }

export type ClientAction =
  | { readonly kind: "read" }
  /** Leaves once the engines have seen attempt `attempt` (it is holding). */
  | { readonly kind: "leave_when_seen"; readonly attempt: number }
  /** Leaves after `events` SSE events. */
  | { readonly kind: "leave_after_events"; readonly events: number }
  /** Leaves while it waits in the slot queue. */
  | { readonly kind: "leave_when_queued" }
  /** Leaves once the request policy is running for it. */
  | { readonly kind: "leave_when_policy_runs" }

export interface Scenario {
  readonly cls: OutcomeClass
  readonly stream: boolean
  /** `m` is served by two backends; `q` by one backend with a single slot (the queue group). */
  readonly model: "m" | "q"
  readonly attempts: ReadonlyArray<Attempt>
  readonly client: ClientAction
  /** What the request policy does (`pass` for every class but the extension ones). */
  readonly extension: ExtensionBehaviour
  readonly prompt: string
  readonly maxTokens: number
  readonly includeUsage: boolean
  readonly session: "user" | "header"
  /** When the client sends, after the batch starts (requests overlap; their admissions spread). */
  readonly delayMs: number
}

const WORDS = ["gpu", "token", "stream", "kernel", "cache", "prefill", "decode", "batch", "the", "a", "of", "sluice", "inference", "latency"]

const common = fc.record({
  prompt: fc.array(fc.constantFrom(...WORDS), { minLength: 1, maxLength: 160 }).map((w) => w.join(" ")),
  maxTokens: fc.integer({ min: 16, max: 2048 }),
  includeUsage: fc.boolean(),
  session: fc.constantFrom("user" as const, "header" as const),
  delayMs: fc.integer({ min: 0, max: 80 })
})

const statusFail = fc.constantFrom(429 as const, 500 as const, 502 as const, 503 as const).map((status): Before => ({ kind: "status", status }))
const streamFail: fc.Arbitrary<Before> = fc.oneof(
  statusFail,
  fc.constant<Before>({ kind: "first_token_held" }),
  fc.constant<Before>({ kind: "headers_held" }),
  fc.constant<Before>({ kind: "error_event" }),
  fc.constant<Before>({ kind: "malformed" }),
  fc.constant<Before>({ kind: "reset" })
)
const isTimeout = (b: Before) => b.kind === "first_token_held" || b.kind === "headers_held"
const timeoutFail = fc.constantFrom<Before>({ kind: "first_token_held" }, { kind: "headers_held" })

const reported: fc.Arbitrary<Reported> = fc.option(
  fc.record({ prompt: fc.integer({ min: 1, max: 5000 }), completion: fc.integer({ min: 1, max: 5000 }) }),
  { nil: null, freq: 3 }
)
const ok = fc.record({
  kind: fc.constant("ok" as const),
  tokens: fc.integer({ min: 1, max: 8 }),
  gapMs: fc.integer({ min: 0, max: 10 }),
  usage: reported
})
/** Tokens before a failure or a client abort after the first token (1 is the edge case). */
const someTokens = fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 5 }))
/** At most one failed attempt before the one that matters. */
const prefix = (fail: fc.Arbitrary<Before>) =>
  fc.array(fail.map((before): Attempt => ({ kind: "fail", before })), { maxLength: 1 })

type Shape = Pick<Scenario, "cls" | "stream" | "attempts" | "client"> & { readonly extension?: ExtensionBehaviour }

const shape = (
  cls: OutcomeClass,
  stream: boolean,
  attempts: fc.Arbitrary<ReadonlyArray<Attempt>>,
  client: (attempts: ReadonlyArray<Attempt>) => fc.Arbitrary<ClientAction> = () => fc.constant({ kind: "read" })
): fc.Arbitrary<Shape> => attempts.chain((a) => client(a).map((c) => ({ cls, stream, attempts: a, client: c })))

const fails = (list: ReadonlyArray<Before>): ReadonlyArray<Attempt> => list.map((before) => ({ kind: "fail", before }))

/** A request the policy stops: no attempt reaches an engine. */
const stopped = (cls: ExtensionClass, extension: fc.Arbitrary<ExtensionBehaviour>, client: ClientAction = { kind: "read" }) =>
  fc.tuple(fc.boolean(), extension).map(([stream, e]): Shape => ({ cls, stream, attempts: [], client, extension: e }))

const shapes: Record<Exclude<OutcomeClass, typeof QUEUE_CLASSES[number]>, fc.Arbitrary<Shape>> = {
  "extension:rejected": stopped("extension:rejected", fc.constant("reject")),
  "extension:failed": stopped("extension:failed", fc.constantFrom("fail", "die")),
  "extension:timed_out": stopped("extension:timed_out", fc.constant("hang")),
  "extension:aborted": stopped("extension:aborted", fc.constant("hang"), { kind: "leave_when_policy_runs" }),
  "stream:completed": shape("stream:completed", true, ok.map((o) => [o])),
  "stream:retried": shape("stream:retried", true, fc.tuple(streamFail, ok).map(([f, o]) => [...fails([f]), o])),
  "stream:failed": shape(
    "stream:failed",
    true,
    fc.tuple(streamFail, streamFail).filter(([x, y]) => !(isTimeout(x) && isTimeout(y))).map(fails)
  ),
  "stream:first_token_timeout": shape("stream:first_token_timeout", true, fc.tuple(timeoutFail, timeoutFail).map(fails)),
  "stream:partial": shape(
    "stream:partial",
    true,
    fc.tuple(prefix(streamFail), someTokens, fc.constantFrom("error_event" as const, "malformed" as const, "reset" as const))
      .map(([p, tokens, end]) => [...p, { kind: "cut", tokens, end }])
  ),
  "stream:stalled": shape(
    "stream:stalled",
    true,
    fc.tuple(prefix(streamFail), someTokens).map(([p, tokens]) => [...p, { kind: "stall", tokens }])
  ),
  "stream:total_timeout": shape(
    "stream:total_timeout",
    true,
    fc.integer({ min: 30, max: 60 }).map((gapMs) => [{ kind: "endless", gapMs }])
  ),
  "stream:aborted_before_first_token": shape(
    "stream:aborted_before_first_token",
    true,
    fc.tuple(prefix(streamFail), fc.constantFrom<"headers" | number>("headers", 0)).map(([p, at]) => [...p, { kind: "hold", at }]),
    (a) => fc.constant({ kind: "leave_when_seen", attempt: a.length - 1 })
  ),
  "stream:aborted_after_first_token": shape(
    "stream:aborted_after_first_token",
    true,
    fc.tuple(prefix(streamFail), someTokens).map(([p, tokens]) => [...p, { kind: "hold", at: tokens }]),
    (a) => {
      const last = a[a.length - 1]
      return fc.constant({ kind: "leave_after_events", events: last?.kind === "hold" && typeof last.at === "number" ? last.at : 1 })
    }
  ),
  "unary:completed": shape("unary:completed", false, ok.map((o) => [o])),
  "unary:retried": shape("unary:retried", false, fc.tuple(statusFail, ok).map(([f, o]) => [...fails([f]), o])),
  "unary:failed": shape("unary:failed", false, fc.tuple(statusFail, statusFail).map(fails)),
  "unary:total_timeout": shape(
    "unary:total_timeout",
    false,
    fc.tuple(prefix(statusFail), fc.constantFrom<"headers" | number>("headers", 0)).map(([p, at]) => [...p, { kind: "hold", at }])
  ),
  "unary:aborted_before_response": shape(
    "unary:aborted_before_response",
    false,
    fc.tuple(prefix(statusFail), fc.constantFrom<"headers" | number>("headers", 0)).map(([p, at]) => [...p, { kind: "hold", at }]),
    (a) => fc.constant({ kind: "leave_when_seen", attempt: a.length - 1 })
  )
}

const withCommon = (s: fc.Arbitrary<Shape>, model: Scenario["model"] = "m"): fc.Arbitrary<Scenario> =>
  fc.tuple(s, common).map(([sh, c]) => ({ ...sh, ...c, model, extension: sh.extension ?? "pass" }))

/**
 * The queue group, on the single-slot backend: a holder that keeps the slot for well over
 * the queue deadline, a waiter that times out in the queue, and one that leaves while queued.
 */
export interface QueueGroup {
  readonly holder: Scenario
  readonly timesOut: Scenario
  readonly leaves: Scenario
}

const queueGroup: fc.Arbitrary<QueueGroup> = fc.record({
  holder: withCommon(
    fc.tuple(fc.boolean(), reported).map(([stream, usage]): Shape => ({
      cls: stream ? "stream:completed" : "unary:completed",
      stream,
      attempts: [{ kind: "slot_holder", usage }],
      client: { kind: "read" }
    })),
    "q"
  ),
  timesOut: withCommon(fc.boolean().map((stream): Shape => ({ cls: "queue:timeout", stream, attempts: [], client: { kind: "read" } })), "q"),
  leaves: withCommon(
    fc.boolean().map((stream): Shape => ({ cls: "queue:aborted_while_queued", stream, attempts: [], client: { kind: "leave_when_queued" } })),
    "q"
  )
})

export interface Batch {
  /** Requests on the two-backend model, sent all at once. */
  readonly concurrent: ReadonlyArray<Scenario>
  readonly queue: QueueGroup
}

/** Extra requests on top of one of each class. */
export const MAX_EXTRA = 8
/** Requests in a batch at most: one of each class, the queue holder, and the extras. */
export const MAX_BATCH = ALL_CLASSES.length + 1 + MAX_EXTRA

/**
 * One run: at least one request of every outcome class (so each class is at least
 * 1/MAX_BATCH of the run), plus up to MAX_EXTRA more of random classes, in random order.
 */
export const batch: fc.Arbitrary<Batch> = fc.record({
  required: fc.tuple(...Object.values(shapes).map((s) => withCommon(s))),
  extra: fc.array(fc.oneof(...Object.values(shapes)).chain((s) => withCommon(fc.constant(s))), { maxLength: MAX_EXTRA }),
  queue: queueGroup
}).chain(({ required, extra, queue }) =>
  fc.shuffledSubarray([...required, ...extra], { minLength: required.length + extra.length }).map((concurrent) => ({ concurrent, queue }))
)

/** The completion id an attempt's chunks carry, so the client can tell attempts apart. */
export const completionId = (key: string, attempt: number) => `chatcmpl-${key}-${attempt}`

const tokensOf = (n: number) => Array.from({ length: n }, (_, i) => ` t${i}`)

/**
 * The fake engine's script for attempt `index` of a request. `clientSaw(n)` resolves once
 * the client has received n events (a reset waits for it, so the tokens are out first).
 */
const failScript = (id: string, b: Before): Script => {
  switch (b.kind) {
    case "status":
      return { id, status: b.status, ...(b.status === 429 ? { headers: { "retry-after": "0" } } : {}) }
    case "first_token_held":
      return { id, tokens: tokensOf(3), holdAfter: 0 }
    case "headers_held":
      return { id, holdHeaders: true }
    case "error_event":
      return { id, tokens: tokensOf(3), errorAfter: 0 }
    case "malformed":
      return { id, tokens: tokensOf(3), malformedAfter: 0 }
    case "reset":
      return { id, tokens: tokensOf(3), resetAfter: 0 }
  }
}

const usageOf = (u: Reported): NonNullable<Script["usage"]> | null => u === null ? null : { prompt_tokens: u.prompt, completion_tokens: u.completion }

/** Tokens of the queue holder's answer: streamed every 30 ms, or sent whole after 900 ms (unary). */
export const HOLDER_TOKENS = 30

/**
 * The fake engine's script for attempt `index` of a request. `clientSaw(n)` resolves once
 * the client has received n events (a reset waits for it, so the tokens are out first).
 */
export const scriptOf = (
  key: string,
  stream: boolean,
  index: number,
  attempt: Attempt | undefined,
  clientSaw: (events: number) => Promise<unknown>
): Script => {
  const id = completionId(key, index)
  // An attempt the scenario did not expect (a retry it should not have had) answers normally:
  // the oracle sees the extra attempt and the wrong outcome.
  if (attempt === undefined) return { id, tokens: tokensOf(2), usage: null }
  switch (attempt.kind) {
    case "fail":
      return failScript(id, attempt.before)
    case "ok":
      return { id, tokens: tokensOf(attempt.tokens), gapMs: attempt.gapMs, usage: usageOf(attempt.usage) }
    case "slot_holder":
      // The slot stays taken for ~900 ms, long enough for one waiter to time out and another
      // to queue and leave after it; a stream's gaps stay
      // far under idle (a unary answer has no first-token deadline: it is late as a whole).
      return stream
        ? { id, tokens: tokensOf(HOLDER_TOKENS), gapMs: 30, usage: usageOf(attempt.usage) }
        : { id, tokens: tokensOf(HOLDER_TOKENS), firstDelayMs: 900, usage: usageOf(attempt.usage) }
    case "cut": {
      const base = { id, tokens: tokensOf(attempt.tokens + 2), usage: null }
      if (attempt.end === "error_event") return { ...base, errorAfter: attempt.tokens, gapMs: 2 }
      if (attempt.end === "malformed") return { ...base, malformedAfter: attempt.tokens, gapMs: 2 }
      return { ...base, pauseAfter: { tokens: attempt.tokens, until: clientSaw(attempt.tokens) }, resetAfter: attempt.tokens }
    }
    case "stall":
      return { id, tokens: tokensOf(attempt.tokens + 2), holdAfter: attempt.tokens, gapMs: 2, usage: null }
    case "endless":
      return { id, tokens: tokensOf(1000), gapMs: attempt.gapMs, usage: null }
    case "hold":
      return attempt.at === "headers"
        ? { id, holdHeaders: true }
        : { id, tokens: tokensOf(attempt.at + 2), holdAfter: attempt.at, usage: null }
  }
}
