/**
 * Decode-time limits on a request body (the `limits:` section and `models[].max_n`), each
 * exceeded limit a 400 whose `param` names the field: nesting, values and keys (from the
 * byte pre-scan, JsonScan.ts), item counts of the batch fields, gateway-owned fields, and
 * `n` / `best_of`, which also give the number of sequences the engine will generate (the
 * reservation's output multiplier).
 *
 * Runs on the parsed body before schema validation, so nothing downstream (validation,
 * estimation, routing, translation) ever sees an unbounded array or depth. Constant work
 * per field; it never walks the body.
 */
import { GATEWAY_OWNED_FIELDS } from "../api/openai/Requests.ts"
import type { CallKind, InferenceCall } from "../api/openai/Calls.ts"
import type { LimitsPlan, ModelPlan } from "../config/Plan.ts"
import type { ScanFailure } from "./JsonScan.ts"
import { GatewayOwnedField, LimitExceeded } from "./Errors.ts"

/** The 400 for what the byte pre-scan found. */
export const fromScan = (failure: ScanFailure): LimitExceeded => {
  const where = failure.path === "" ? "the request body" : `'${failure.path}'`
  const param = failure.path === "" ? null : failure.path
  switch (failure._tag) {
    case "TooDeep":
      return new LimitExceeded({
        message: `Arrays and objects in ${where} nest deeper than ${failure.limit} levels.`,
        param,
        code: "json_too_deep"
      })
    case "TooManyValues":
      return new LimitExceeded({
        message: `The request body has more than ${failure.limit} JSON values (in ${where}).`,
        param,
        code: "too_many_json_values"
      })
    case "TooManyKeys":
      return new LimitExceeded({
        message: `The request body has more than ${failure.limit} object keys (in ${where}).`,
        param,
        code: "too_many_json_keys"
      })
  }
}

/** A batch field: an array of prompts/inputs, not one prompt given as token ids. */
const batchLength = (value: unknown): number =>
  Array.isArray(value) && value.length > 0 && typeof value[0] !== "number" ? value.length : 0

const arrayLength = (value: unknown): number => Array.isArray(value) ? value.length : 0

/** The counted fields of each endpoint: field, its length, the limit and the limit's key. */
/** Whose body the limits read: an OpenAI endpoint's, or a translating API's (before translation). */
export type LimitKind = CallKind | "messages" | "responses"

const countedFields = (
  kind: LimitKind,
  body: Readonly<Record<string, unknown>>,
  limits: LimitsPlan
): ReadonlyArray<readonly [string, number, number, string]> => {
  switch (kind) {
    case "chat":
      return [
        ["messages", arrayLength(body["messages"]), limits.maxMessages, "max_messages"],
        ["tools", arrayLength(body["tools"]), limits.maxTools, "max_tools"],
        ["functions", arrayLength(body["functions"]), limits.maxTools, "max_tools"],
        ["stop", arrayLength(body["stop"]), limits.maxStopSequences, "max_stop_sequences"]
      ]
    case "completion":
      return [
        ["prompt", batchLength(body["prompt"]), limits.maxInputs, "max_inputs"],
        ["stop", arrayLength(body["stop"]), limits.maxStopSequences, "max_stop_sequences"]
      ]
    case "embedding":
      return [["input", batchLength(body["input"]), limits.maxInputs, "max_inputs"]]
    case "rerank":
      return [["documents", arrayLength(body["documents"]), limits.maxInputs, "max_inputs"]]
    case "messages":
      return [
        ["messages", arrayLength(body["messages"]), limits.maxMessages, "max_messages"],
        ["system", arrayLength(body["system"]), limits.maxMessages, "max_messages"],
        ["tools", arrayLength(body["tools"]), limits.maxTools, "max_tools"],
        ["stop_sequences", arrayLength(body["stop_sequences"]), limits.maxStopSequences, "max_stop_sequences"]
      ]
    case "responses":
      return [
        ["input", arrayLength(body["input"]), limits.maxMessages, "max_messages"],
        ["tools", arrayLength(body["tools"]), limits.maxTools, "max_tools"]
      ]
  }
}

/** Gateway-owned fields and item counts; undefined when the body is within bounds. */
export const check = (
  kind: LimitKind,
  body: Readonly<Record<string, unknown>>,
  limits: LimitsPlan
): LimitExceeded | GatewayOwnedField | undefined => {
  for (const field of GATEWAY_OWNED_FIELDS) {
    if (Object.hasOwn(body, field)) return new GatewayOwnedField({ field })
  }
  for (const [field, length, limit, key] of countedFields(kind, body, limits)) {
    if (length > limit) {
      return new LimitExceeded({
        message: `Too many items in '${field}': ${length}. At most ${limit} are allowed (limits.${key}).`,
        param: field,
        code: "too_many_items"
      })
    }
  }
  return undefined
}

const count = (value: unknown): number | undefined =>
  typeof value === "number" && Number.isInteger(value) && value > 0 ? value : undefined

/**
 * The sequences a generation request makes the engine decode: `n` choices, or vLLM's
 * `best_of` candidates when larger, for each prompt of a completions batch. `n` and
 * `best_of` above the model's `max_n` are refused. Embeddings and rerank decode nothing: 0.
 */
export const sequences = (call: InferenceCall, model: ModelPlan): number | LimitExceeded => {
  if (call.kind !== "chat" && call.kind !== "completion") return 0
  const n = call.body.n ?? 1
  // `best_of` is vLLM's (not in the OpenAI schema): the body keeps it as an unknown field.
  const bestOf = count(call.body["best_of"]) ?? 1
  for (const [field, value] of [["n", n], ["best_of", bestOf]] as const) {
    if (value > model.maxN) {
      return new LimitExceeded({
        message: `${field} is too large: ${value}. This model allows at most ${model.maxN} (models[].max_n).`,
        param: field,
        code: "n_too_large"
      })
    }
  }
  const prompts = call.kind === "completion" ? Math.max(1, batchLength(call.body.prompt)) : 1
  return Math.max(n, bestOf) * prompts
}
