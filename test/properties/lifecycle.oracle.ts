/**
 * The oracle of the lifecycle property: what one request's observations must be, given
 * its scenario. It classifies what actually happened (from the accounting record, the
 * request log line and the bytes the client got) into an outcome class, so a run can
 * assert its outcome mix, and it lists every way a request broke the rules of
 * ARCHITECTURE.md §1.
 *
 * The charging policy is encoded here on its own terms, never by calling the gateway's
 * `charge`: reported usage when the backend sent it for a request that produced output;
 * otherwise, once a first token was produced, the prompt estimate plus the completion
 * chunks seen; nothing for a request that failed or produced nothing. Pure functions.
 */
import type { AccountingRecord } from "../../src/accounting/Accounting.ts"
import type { RequestLine } from "../../src/observability/RequestLog.ts"
import type { StreamResult, UnaryResult } from "../support/Client.ts"
import {
  type Attempt,
  completionId,
  HOLDER_TOKENS,
  isExtensionClass,
  type OutcomeClass,
  type Scenario,
  tagsOf
} from "./lifecycle.scenarios.ts"
import type { ProbeTrace } from "./lifecycle.world.ts"

export type ClientResult =
  | { readonly api: "stream"; readonly result: StreamResult }
  | { readonly api: "unary"; readonly result: UnaryResult }

export interface Observation {
  readonly key: string
  readonly scenario: Scenario
  readonly client: ClientResult
  /** The client got no answer within the harness's bound and gave up. */
  readonly hung: boolean
  /** Every accounting record with this request id (exactly one is right). */
  readonly records: ReadonlyArray<AccountingRecord>
  readonly line: RequestLine | undefined
  /** Requests the fake engines received for this request id. */
  readonly engineAttempts: number
  /** What the request-policy probe did for this request (undefined: it never ran). */
  readonly probe: ProbeTrace | undefined
}

const parse = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
const get = (o: unknown, key: string): unknown =>
  typeof o === "object" && o !== null && !Array.isArray(o) ? (o as Record<string, unknown>)[key] : undefined
const at = (o: unknown, i: number): unknown => Array.isArray(o) ? o[i] : undefined

/** The SSE data events of a stream, parsed (`[DONE]` and non-JSON events left out). */
const dataEvents = (r: StreamResult): Array<unknown> =>
  r.events.filter((e) => e.startsWith("{")).map(parse)

const isErrorEvent = (e: unknown) => get(e, "error") !== undefined
const isDelta = (e: unknown) => {
  const content = get(get(at(get(e, "choices"), 0), "delta"), "content")
  return typeof content === "string" && content !== ""
}
/** Content chunks the client received. */
export const deltasOf = (client: ClientResult): number =>
  client.api === "stream" ? dataEvents(client.result).filter(isDelta).length : 0

const isEnvelope = (body: unknown): boolean => {
  const e = get(body, "error")
  return typeof get(e, "message") === "string" && typeof get(e, "type") === "string" &&
    get(e, "param") !== undefined && get(e, "code") !== undefined
}

/** The status and error code of a request refused before admission, as the client saw them. */
const refusal = (client: ClientResult): { readonly status: number; readonly code: unknown; readonly aborted: boolean } => ({
  status: client.result.status,
  code: get(get(parse(client.result.text), "error"), "code"),
  aborted: client.result.aborted
})

/** A request the request policy stopped before admission, from the client's answer and the log line. */
const classifyRefused = (obs: Observation): OutcomeClass | `unclassified: ${string}` => {
  const { status, code, aborted } = refusal(obs.client)
  if (aborted && obs.line?.status === 499) return "extension:aborted"
  if (status === 400 && code === "request_blocked") return "extension:rejected"
  if (status === 500 && code === "extension_failed") return "extension:failed"
  if (status === 504 && code === "extension_failed") return "extension:timed_out"
  return `unclassified: not admitted, status ${status}, code ${String(code)}, log status ${String(obs.line?.status)}`
}

/** What actually happened to a request, from what the gateway recorded and the client saw. */
export const classify = (obs: Observation): OutcomeClass | `unclassified: ${string}` => {
  const record = obs.records[0]
  if (record === undefined) return classifyRefused(obs)
  const api = obs.scenario.stream ? "stream" : "unary"
  const tags = record.attempts.map((a) => a.reason)
  switch (record.outcome) {
    case "completed":
      return tags.length === 0 ? `${api}:completed` : `${api}:retried`
    case "failed":
      if (tags.includes("SlotsExhausted")) return "queue:timeout"
      if (api === "unary" && tags.includes("TotalTimeout")) return "unary:total_timeout"
      if (api === "stream" && tags.length > 0 && tags.every((t) => t === "TimeToFirstTokenExceeded")) {
        return "stream:first_token_timeout"
      }
      return `${api}:failed`
    case "partial":
      if (api === "unary") return "unclassified: a unary request accounted as partial"
      if (obs.line?.error === "StreamStalled") return "stream:stalled"
      if (obs.line?.error === "TotalTimeout") return "stream:total_timeout"
      return "stream:partial"
    case "client_aborted":
      if (obs.scenario.model === "q" && tags.length === 0 && obs.engineAttempts === 0) return "queue:aborted_while_queued"
      if (api === "unary") return "unary:aborted_before_response"
      return deltasOf(obs.client) > 0 ? "stream:aborted_after_first_token" : "stream:aborted_before_first_token"
    default:
      return `unclassified: outcome ${record.outcome}`
  }
}

type Outcome = "completed" | "failed" | "partial" | "client_aborted" | "not_admitted"

export const outcomeOf = (cls: OutcomeClass): Outcome => {
  switch (cls) {
    case "stream:completed":
    case "stream:retried":
    case "unary:completed":
    case "unary:retried":
      return "completed"
    case "stream:failed":
    case "stream:first_token_timeout":
    case "unary:failed":
    case "unary:total_timeout":
    case "queue:timeout":
      return "failed"
    case "stream:partial":
    case "stream:stalled":
    case "stream:total_timeout":
      return "partial"
    case "stream:aborted_before_first_token":
    case "stream:aborted_after_first_token":
    case "unary:aborted_before_response":
    case "queue:aborted_while_queued":
      return "client_aborted"
    case "extension:rejected":
    case "extension:failed":
    case "extension:timed_out":
    case "extension:aborted":
      return "not_admitted"
  }
}

/** The failure tags each recorded failed attempt may carry, in order. */
const expectedAttemptTags = (sc: Scenario): ReadonlyArray<ReadonlyArray<string>> => {
  const failTags = (attempts: ReadonlyArray<Attempt>) =>
    attempts.map((a) => a.kind === "fail" ? tagsOf(a.before) : [`(not a failure: ${a.kind})`])
  switch (sc.cls) {
    case "queue:timeout":
      return [["SlotsExhausted"]]
    case "queue:aborted_while_queued":
    case "extension:rejected":
    case "extension:failed":
    case "extension:timed_out":
    case "extension:aborted":
      return []
    case "stream:failed":
    case "stream:first_token_timeout":
    case "unary:failed":
      return failTags(sc.attempts)
    case "unary:total_timeout":
      return [...failTags(sc.attempts.slice(0, -1)), ["TotalTimeout"]]
    default:
      // Committed (or abandoned while waiting): every attempt before the last one failed.
      return failTags(sc.attempts.slice(0, -1))
  }
}

/** Content chunks the served attempt must have delivered, when the script fixes it. */
const expectedDeltas = (sc: Scenario): number | "at least one" | undefined => {
  const last = sc.attempts[sc.attempts.length - 1]
  if (!sc.stream || last === undefined) return undefined
  switch (last.kind) {
    case "ok":
      return last.tokens
    case "slot_holder":
      return HOLDER_TOKENS
    case "cut":
    case "stall":
      return last.tokens
    case "endless":
      return "at least one"
    case "hold":
      return last.at === "headers" ? 0 : last.at
    case "fail":
      return 0
  }
}

export interface Charge {
  readonly promptTokens: number
  readonly completionTokens: number
  readonly reported: boolean
}

/**
 * The charge for a request, from the policy: the backend's reported usage when the answer
 * carried it; else, once output was produced, the prompt estimate plus the content chunks
 * seen (a unary answer has none on the wire); else nothing. Failed requests cost nothing.
 */
export const expectedCharge = (sc: Scenario, promptEstimate: number, deltas: number): Charge => {
  const none = { promptTokens: 0, completionTokens: 0, reported: false }
  const outcome = outcomeOf(sc.cls)
  if (outcome === "failed" || outcome === "not_admitted") return none
  const last = sc.attempts[sc.attempts.length - 1]
  const reported = outcome === "completed" && (last?.kind === "ok" || last?.kind === "slot_holder") ? last.usage : null
  if (reported !== null) return { promptTokens: reported.prompt, completionTokens: reported.completion, reported: true }
  const produced = sc.stream ? deltas > 0 : outcome === "completed"
  if (!produced) return none
  return { promptTokens: promptEstimate, completionTokens: sc.stream ? deltas : 0, reported: false }
}

/**
 * A rule broken. `timing` marks what a starved process can cause on its own (a deadline
 * that fired before a prompt answer was read: another class, another attempt count, a
 * hang), and everything about a request whose class or attempts were already off.
 */
export interface Problem {
  readonly text: string
  readonly timing: boolean
}

/**
 * A request the request policy stopped: never admitted (no record, no settlement, no engine
 * attempt), answered with the status its behaviour maps to, and the probe released, by
 * interruption when its deadline or the client ended it.
 */
const checkRefused = (obs: Observation, fail: (what: string) => void, markTiming: () => void): void => {
  const { scenario: sc } = obs
  if (obs.records.length !== 0) fail(`${obs.records.length} accounting record(s) for a request its policy stopped before admission`)
  if (obs.engineAttempts !== 0) fail(`the engines saw ${obs.engineAttempts} attempt(s) of a request its policy stopped`)
  const cls = classify(obs)
  if (cls !== sc.cls) {
    // A deadline or a client that fired late on a starved machine picks the other class.
    if (sc.cls === "extension:aborted" || sc.cls === "extension:timed_out") markTiming()
    fail(`outcome class ${cls}, expected ${sc.cls} (probe ${sc.extension})`)
  }
  if (obs.line === undefined) fail("no request log line")
  const { status, aborted } = refusal(obs.client)
  if (!aborted) {
    if (!isEnvelope(parse(obs.client.result.text))) fail(`error body is not an OpenAI error envelope: ${obs.client.result.text.slice(0, 200)}`)
    if (obs.line !== undefined && obs.line.status !== status) fail(`logged status ${obs.line.status}, the client got ${status}`)
  }
  const probe = obs.probe
  if (probe === undefined || !probe.entered) fail("the request policy never ran")
  else if (!probe.released) fail("the request policy's resource was never released")
  else if ((sc.cls === "extension:timed_out" || sc.cls === "extension:aborted") && !probe.interrupted) {
    fail("a hung request policy was released without being interrupted")
  }
}

/** Every way this request broke the rules (empty when it behaved). */
export const check = (obs: Observation): Array<Problem> => {
  const { scenario: sc, client, key } = obs
  const texts: Array<string> = []
  let timing = false
  const fail = (what: string) => texts.push(`${key} [${sc.cls}]: ${what}`)
  const problems = () => texts.map((text) => ({ text, timing }))
  if (obs.hung) {
    timing = true
    fail("the client got no answer in time (hung)")
  }
  if (isExtensionClass(sc.cls)) {
    checkRefused(obs, fail, () => {
      timing = true
    })
    return problems()
  }
  // Every admitted request went through the request policy, which passed and released.
  if (obs.probe === undefined || !obs.probe.released || obs.probe.interrupted) {
    fail(`the request policy's call was not passed and released: ${JSON.stringify(obs.probe)}`)
  }
  if (obs.records.length !== 1) fail(`${obs.records.length} accounting records (exactly one expected)`)
  const record = obs.records[0]
  if (record === undefined) return problems()

  const cls = classify(obs)
  if (cls !== sc.cls) {
    timing = true
    fail(`outcome class ${cls}, expected ${sc.cls} (outcome ${record.outcome}, error ${String(obs.line?.error)}; scripted ${JSON.stringify(sc.attempts)})`)
  }
  const outcome = outcomeOf(sc.cls)
  if (record.outcome !== outcome) {
    timing = true
    fail(`outcome ${record.outcome}, expected ${outcome}`)
  }

  // Attempts: the engines saw exactly the scripted ones, and each failure was recorded as what it was.
  if (obs.engineAttempts !== sc.attempts.length) {
    timing = true
    fail(`the engines saw ${obs.engineAttempts} attempt(s), the scenario scripted ${sc.attempts.length}`)
  }
  const wantTags = expectedAttemptTags(sc)
  const tags = record.attempts.map((a) => a.reason)
  if (tags.length !== wantTags.length || tags.some((t, i) => !wantTags[i]!.includes(t))) {
    timing = true
    fail(`failed attempts ${JSON.stringify(tags)}, expected ${JSON.stringify(wantTags)}`)
  }

  // The bytes the client got.
  const servedIndex = sc.attempts.length - 1
  const deltas = deltasOf(client)
  if (client.api === "stream") {
    const r = client.result
    const data = dataEvents(r)
    if (outcome === "failed") {
      if (r.status < 502 || r.status > 504) fail(`status ${r.status} for a request that failed before its first token`)
      if (!isEnvelope(parse(r.text))) fail(`error body is not an OpenAI error envelope: ${r.text.slice(0, 200)}`)
    }
    if (sc.cls === "stream:first_token_timeout" && r.status !== 504) fail(`status ${r.status}, expected 504`)
    if (sc.cls === "queue:timeout" && r.status !== 503) fail(`status ${r.status}, expected 503`)
    if (outcome === "completed" || outcome === "partial") {
      if (r.status !== 200) fail(`status ${r.status}, expected 200`)
      if (r.headers["x-sluice-backend"] !== record.backend) {
        fail(`served by ${String(r.headers["x-sluice-backend"])} but accounted to ${String(record.backend)}`)
      }
    }
    if (r.status === 200) {
      // One backend, one attempt served the stream: every chunk carries that attempt's id.
      const ids = new Set(data.filter((e) => !isErrorEvent(e)).map((e) => get(e, "id")))
      const want = completionId(key, servedIndex)
      if (ids.size > 1 || (ids.size === 1 && !ids.has(want))) fail(`chunks from ${JSON.stringify([...ids])}, expected only ${want}`)
      const errAt = data.findIndex(isErrorEvent)
      const done = r.events.includes("[DONE]")
      if (errAt !== -1) {
        if (errAt !== data.length - 1) fail("an error event is not the last event")
        if (done) fail("[DONE] after an error event")
        if (!isEnvelope(data[errAt])) fail("the error event is not an OpenAI error envelope")
      }
      if (outcome === "partial" && errAt === -1) fail("a partial stream did not end with an error event")
      if (outcome === "completed" && (errAt !== -1 || r.events[r.events.length - 1] !== "[DONE]")) {
        fail("a completed stream did not end with [DONE] alone")
      }
    }
    const want = expectedDeltas(sc)
    if (typeof want === "number" && deltas !== want) fail(`${deltas} content chunks, expected ${want}`)
    if (want === "at least one" && deltas < 1) fail("no content chunk before the total deadline")
  } else {
    const r = client.result
    const body = parse(r.text)
    if (outcome === "completed") {
      if (r.status !== 200) fail(`status ${r.status}, expected 200`)
      if (get(body, "id") !== completionId(key, servedIndex)) fail(`answer ${String(get(body, "id"))}, expected ${completionId(key, servedIndex)}`)
      if (r.headers["x-sluice-backend"] !== record.backend) {
        fail(`served by ${String(r.headers["x-sluice-backend"])} but accounted to ${String(record.backend)}`)
      }
    }
    if (outcome === "failed") {
      if (r.status < 502 || r.status > 504) fail(`status ${r.status} for a failed request`)
      if (!isEnvelope(body)) fail(`error body is not an OpenAI error envelope: ${r.text.slice(0, 200)}`)
    }
    if (sc.cls === "unary:total_timeout" && r.status !== 504) fail(`status ${r.status}, expected 504`)
  }

  // The charge, exactly, from the policy; never for a backend that did not serve.
  const promptEstimate = record.reservedTokens - sc.maxTokens
  if (promptEstimate < 1 || promptEstimate > 3 * sc.prompt.length + 32) {
    fail(`prompt estimate ${promptEstimate} is implausible for a ${sc.prompt.length}-character prompt`)
  }
  const want = expectedCharge(sc, promptEstimate, deltas)
  const got = record.charged
  if (got.promptTokens !== want.promptTokens || got.completionTokens !== want.completionTokens || got.cachedTokens !== 0) {
    fail(`charged ${got.promptTokens}+${got.completionTokens} (cached ${got.cachedTokens}), expected ${want.promptTokens}+${want.completionTokens}`)
  }
  if (record.reported !== want.reported) fail(`charge ${record.reported ? "from" : "not from"} reported usage, expected the opposite`)
  if (outcome === "failed" && record.backend !== undefined) fail(`a failed request is accounted to backend ${record.backend}`)
  return problems()
}
