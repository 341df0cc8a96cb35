/**
 * Seeded generators of hostile HTTP requests for the fuzz suite: malformed JSON, wrong
 * types at every field, huge, deep and long values, unicode edge cases, wrong methods,
 * paths and content types, gateway-owned fields, absurd numbers, duplicate keys,
 * prototype-pollution keys, header abuse, client aborts, and valid requests among them.
 * Deterministic: the same seed gives the same requests.
 */
import { makeRng, type Rng } from "../../src/domain/Random.ts"

export interface Spec {
  readonly kind: string
  readonly method: string
  readonly path: string
  readonly headers: Record<string, string | Array<string>>
  readonly body: Buffer | undefined
  /** Destroy the socket this long after the response headers arrive. */
  readonly abortAfterMs?: number
}

export interface Models {
  /** Model names clients may use, each served by a different dialect. */
  readonly names: ReadonlyArray<string>
}

const pick = <A>(rng: Rng, xs: ReadonlyArray<A>): A => xs[Math.floor(rng() * xs.length)]!
const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1))
const chance = (rng: Rng, p: number) => rng() < p

const ENDPOINTS = [
  ["/v1/chat/completions", "chat"],
  ["/v1/chat/completions", "chat"],
  ["/v1/chat/completions", "chat"],
  ["/v1/completions", "completion"],
  ["/v1/embeddings", "embedding"],
  ["/v1/rerank", "rerank"]
] as const

type Kind = (typeof ENDPOINTS)[number][1]

const UNICODE = [
  "\u0000", "\ud800", "\udfff", "\ud83d\ude00", "\u202e", "\u200b", "\ufeff", "\uffff", "é", "e\u0301", "𝕏", "👩‍👩‍👧‍👦",
  "日本語", "مرحبا", "\u0085", "\u2028", "\u2029", "<|endoftext|>", "<|im_start|>", "\\", "\"", "\n\r\t"
]

const longString = (rng: Rng, length: number): string => {
  const unit = pick(rng, ["a", "ab ", "x".repeat(7) + " ", "語", "😀", " ", "\n", "-", "1", "é"])
  return unit.repeat(Math.ceil(length / unit.length)).slice(0, length)
}

export const anyValue = (rng: Rng, depth = 0): unknown => {
  switch (int(rng, 0, depth > 3 ? 5 : 8)) {
    case 0:
      return null
    case 1:
      return chance(rng, 0.5)
    case 2:
      return pick(rng, [0, -1, 1, 2, 7, 1.5, -0.5, 2 ** 31, 2 ** 53 + 1, 1e308, -1e308, 5e-324, 4096, 1e9])
    case 3:
      return pick(rng, ["", "x", "hello", "NaN", "Infinity", "__proto__", "constructor", "1e999", "-1", "true", "null"])
    case 4:
      return pick(rng, UNICODE) + pick(rng, UNICODE)
    case 5:
      return longString(rng, int(rng, 100, 5000))
    case 6:
      return Array.from({ length: int(rng, 0, 4) }, () => anyValue(rng, depth + 1))
    case 7: {
      const o: Record<string, unknown> = {}
      for (let i = int(rng, 0, 4); i > 0; i--) o[pick(rng, ["a", "type", "text", "role", "content", "__proto__", "x", "name"])] = anyValue(rng, depth + 1)
      return o
    }
    default:
      return [anyValue(rng, depth + 1)]
  }
}

const baseBody = (rng: Rng, kind: Kind, models: Models): Record<string, unknown> => {
  const model = pick(rng, models.names)
  switch (kind) {
    case "chat": {
      const body: Record<string, unknown> = {
        model,
        messages: chance(rng, 0.3)
          ? [
            { role: "system", content: "be brief" },
            { role: "user", content: [{ type: "text", text: "hi" }, { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } }] },
            { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{\"a\":1}" } }] },
            { role: "tool", tool_call_id: "c1", content: "42" }
          ]
          : [{ role: "user", content: "hello" }]
      }
      if (chance(rng, 0.5)) body["max_tokens"] = int(rng, 1, 64)
      if (chance(rng, 0.4)) body["stream"] = true
      if (chance(rng, 0.3)) body["stream_options"] = { include_usage: true }
      if (chance(rng, 0.3)) {
        body["tools"] = [{ type: "function", function: { name: "f", description: "d", parameters: { type: "object", properties: { a: { type: "integer" } } } } }]
      }
      if (chance(rng, 0.2)) body["n"] = int(rng, 1, 3)
      if (chance(rng, 0.2)) body["temperature"] = rng() * 2
      if (chance(rng, 0.2)) body["stop"] = ["\n\n"]
      if (chance(rng, 0.2)) body["top_k"] = 5
      return body
    }
    case "completion": {
      const body: Record<string, unknown> = { model, prompt: pick(rng, ["hello", ["a", "b"], [1, 2, 3], [[1, 2], [3]]]) }
      if (chance(rng, 0.4)) body["stream"] = true
      if (chance(rng, 0.5)) body["max_tokens"] = int(rng, 1, 32)
      return body
    }
    case "embedding":
      return { model, input: pick(rng, ["hello", ["a", "b"], [1, 2, 3], [[1], [2, 3]]]), encoding_format: pick(rng, ["float", "base64"]) }
    case "rerank":
      return { model, query: "q", documents: pick(rng, [["a", "b"], [{ text: "a" }], ["x"]]) }
  }
}

/** The paths at which a value can be replaced, per endpoint. */
const FIELDS: Record<Kind, ReadonlyArray<ReadonlyArray<string | number>>> = {
  chat: [
    ["model"], ["messages"], ["messages", 0], ["messages", 0, "role"], ["messages", 0, "content"], ["messages", 0, "content", 0],
    ["messages", 0, "name"], ["messages", 0, "tool_calls"], ["messages", 0, "tool_call_id"], ["tools"], ["tools", 0],
    ["tools", 0, "function"], ["tools", 0, "function", "parameters"], ["tools", 0, "function", "name"], ["tool_choice"], ["stream"],
    ["stream_options"], ["stream_options", "include_usage"], ["max_tokens"], ["max_completion_tokens"], ["temperature"], ["top_p"],
    ["n"], ["best_of"], ["stop"], ["seed"], ["user"], ["response_format"], ["logit_bias"], ["logprobs"], ["top_logprobs"],
    ["parallel_tool_calls"], ["frequency_penalty"], ["presence_penalty"], ["top_k"], ["use_beam_search"], ["chat_template_kwargs"]
  ],
  completion: [["model"], ["prompt"], ["prompt", 0], ["stream"], ["max_tokens"], ["echo"], ["n"], ["best_of"], ["stop"], ["suffix"], ["logprobs"]],
  embedding: [["model"], ["input"], ["input", 0], ["encoding_format"], ["dimensions"], ["user"]],
  rerank: [["model"], ["query"], ["documents"], ["documents", 0], ["top_n"], ["return_documents"]]
}

const setPath = (root: Record<string, unknown>, path: ReadonlyArray<string | number>, value: unknown): void => {
  let node: unknown = root
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!
    if (typeof node !== "object" || node === null) return
    const record = node as Record<string | number, unknown>
    if (typeof record[key] !== "object" || record[key] === null) record[key] = typeof path[i + 1] === "number" ? [] : {}
    node = record[key]
  }
  if (typeof node === "object" && node !== null) (node as Record<string | number, unknown>)[path[path.length - 1]!] = value
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), "utf8")

const nested = (depth: number, array: boolean): string =>
  array ? `${"[".repeat(depth)}1${"]".repeat(depth)}` : `${"{\"a\":".repeat(depth)}1${"}".repeat(depth)}`

const JSON_HEADERS = { "content-type": "application/json" }

/** One hostile request. `big` allows the multi-megabyte kinds. */
export const generate = (rng: Rng, models: Models, big: boolean): Spec => {
  const [path, kind] = pick(rng, ENDPOINTS)
  const body = baseBody(rng, kind, models)
  const post = (k: string, b: Buffer, headers: Record<string, string | Array<string>> = JSON_HEADERS): Spec => ({
    kind: k,
    method: "POST",
    path,
    headers,
    body: b
  })
  const roll = rng()
  if (roll < 0.08) {
    const spec = post("valid", json(body))
    return body["stream"] === true && chance(rng, 0.3) ? { ...spec, kind: "valid-abort", abortAfterMs: int(rng, 0, 20) } : spec
  }
  if (roll < 0.18) {
    const text = JSON.stringify(body)
    const variants = [
      () => text.slice(0, int(rng, 0, text.length - 1)),
      () => `${text.slice(0, int(rng, 1, text.length - 1))}${pick(rng, ["\u0000", "}", "]", ",", "\"", "\\", "\uffff"])}${text.slice(int(rng, 1, text.length - 1))}`,
      () => text.replace(/"/g, "'"),
      () => `${text.slice(0, -1)},}`,
      () => `\ufeff${text}`,
      () => `${text} // comment`,
      () => text.replace("}", ",\"x\":NaN}"),
      () => pick(rng, ["", "null", "[]", "123", "\"str\"", "true", "{", "}", "{}", "[{}]", "{\"model\":", " ".repeat(1000)]),
      () => `${text}${text}`
    ]
    return post("malformed-json", Buffer.from(pick(rng, variants)(), "utf8"))
  }
  if (roll < 0.22) {
    const bytes = Buffer.from(JSON.stringify(body), "utf8")
    const variants = [
      () => Buffer.concat([bytes.subarray(0, 20), Buffer.from([0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80]), bytes.subarray(20)]),
      () => Buffer.from(Array.from({ length: int(rng, 1, 2000) }, () => int(rng, 0, 255))),
      () => Buffer.from(JSON.stringify(body).replace("hello", "\\ud800\\udc00\\ud800 \\u0000 \\uDFFF"), "utf8")
    ]
    return post("bad-bytes", pick(rng, variants)())
  }
  if (roll < 0.42) {
    const field = pick(rng, FIELDS[kind])
    setPath(body, field, anyValue(rng))
    return { ...post("wrong-type", json(body)), kind: `wrong-type:${field.join(".")}` }
  }
  if (roll < 0.5) {
    const text = JSON.stringify(body)
    const depth = pick(rng, [63, 64, 65, 200, 10_000, big ? 300_000 : 20_000])
    const deep = nested(depth, chance(rng, 0.5))
    const where = pick(rng, ["tools", "messages-content", "unknown", "input", "tool-params", "response_format"])
    const withDeep = where === "tools"
      ? text.replace(/}$/, `,"tools":[{"type":"function","function":{"name":"f","parameters":${deep}}}]}`)
      : where === "messages-content"
      ? text.replace(/}$/, `,"messages":[{"role":"user","content":[${deep}]}]}`)
      : where === "input"
      ? text.replace(/}$/, `,"input":${deep}}`)
      : where === "response_format"
      ? text.replace(/}$/, `,"response_format":${deep}}`)
      : text.replace(/}$/, `,"extension":${deep}}`)
    return post(`deep:${where}:${depth}`, Buffer.from(withDeep, "utf8"))
  }
  if (roll < 0.58) {
    const size = big && chance(rng, 0.3) ? int(rng, 1_000_000, 3_000_000) : int(rng, 10_000, 200_000)
    const variants: ReadonlyArray<() => readonly [string, unknown]> = [
      () => ["long-content", { ...body, messages: [{ role: "user", content: longString(rng, size) }] }],
      () => ["long-model", { ...body, model: longString(rng, Math.min(size, 200_000)) }],
      () => ["long-user", { ...body, user: longString(rng, Math.min(size, 200_000)) }],
      () => ["many-messages", { ...body, messages: Array.from({ length: int(rng, 4000, 6000) }, () => ({ role: "user", content: "x" })) }],
      () => ["many-inputs", { ...body, input: Array.from({ length: big ? 50_000 : int(rng, 2000, 4000) }, (_, i) => `t${i}`) }],
      () => ["many-tools", { ...body, tools: Array.from({ length: int(rng, 100, 300) }, (_, i) => ({ type: "function", function: { name: `f${i}` } })) }],
      () => ["many-stops", { ...body, stop: Array.from({ length: int(rng, 10, 500) }, (_, i) => `s${i}`) }],
      () => ["token-array", { ...body, prompt: Array.from({ length: big ? 310_000 : int(rng, 1000, 20_000) }, (_, i) => i % 50_000) }],
      () => ["many-keys", { ...body, extension: Object.fromEntries(Array.from({ length: big ? 60_000 : int(rng, 1000, 8000) }, (_, i) => [`k${i}`, i])) }],
      () => ["many-documents", { ...body, documents: Array.from({ length: int(rng, 1000, 5000) }, () => "d") }],
      () => ["huge-max-tokens", { ...body, max_tokens: 10_000_000 }],
      () => ["context-overflow", { ...body, model: "m", messages: [{ role: "user", content: "word ".repeat(40_000) }] }],
      () => ["long-stop", { ...body, stop: [longString(rng, Math.min(size, 100_000))] }]
    ]
    const [name, value] = pick(rng, variants)()
    return post(`huge:${name}`, json(value))
  }
  if (roll < 0.63) {
    const text = Array.from({ length: int(rng, 1, 12) }, () => pick(rng, UNICODE)).join("")
    const target = pick(rng, ["content", "model", "user", "stop", "name", "key"])
    if (target === "content") body["messages"] = [{ role: "user", content: text }]
    else if (target === "model") body["model"] = text
    else if (target === "user") body["user"] = text
    else if (target === "stop") body["stop"] = [text]
    else if (target === "name") body["messages"] = [{ role: "user", content: "x", name: text }]
    else body[text] = text
    return post(`unicode:${target}`, json(body))
  }
  if (roll < 0.69) {
    // Methods Node's parser accepts (an unknown one is refused by the parser itself, before the gateway).
    const method = pick(rng, ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "POST", "PROPFIND", "PURGE"])
    const weirdPath = pick(rng, [
      path, `${path}/`, `/${path}`, `${path}?x=1&y=%ff`, "/v1/models", "/v1/models/m", "/v1/models/%E0%A4%A", "/v1/models/%",
      "/v1/models/..%2f..%2fetc", `/v1/models/${"a".repeat(4000)}`, "/v2/anything", "/", "/health/live", "/health/ready",
      "/metrics", "/v1/chat/completions%00", "/%2e%2e/", "/v1/chat/../embeddings", `/v1/${"x/".repeat(500)}`
    ])
    return {
      kind: `method:${method}`,
      method,
      path: weirdPath,
      headers: JSON_HEADERS,
      body: method === "GET" || method === "HEAD" || method === "TRACE" ? undefined : json(body)
    }
  }
  if (roll < 0.74) {
    const type = pick(rng, [
      "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=latin1",
      "APPLICATION/JSON", "application/json;;;", "application/jsonx", "application/vnd.api+json", "", "*/*", "application/json; charset=\"UTF-8\"",
      "application/json, text/plain", "text/html; charset=utf-8"
    ])
    const headers: Record<string, string | Array<string>> = type === "" ? {} : { "content-type": type }
    if (chance(rng, 0.2)) headers["content-type"] = ["application/json", "text/plain"]
    return post(`content-type:${String(headers["content-type"] ?? "none")}`, json(body), headers)
  }
  if (roll < 0.79) {
    const field = pick(rng, ["kv_transfer_params", "rid", "request_id", "bootstrap_host", "bootstrap_port", "bootstrap_room"])
    body[field] = field === "kv_transfer_params" ? { remote_url: "http://169.254.169.254/", do_remote_prefill: true } : anyValue(rng)
    return post(`owned:${field}`, json(body))
  }
  if (roll < 0.87) {
    const field = pick(rng, ["max_tokens", "max_completion_tokens", "n", "best_of", "temperature", "top_p", "seed", "dimensions", "top_n", "logprobs"])
    const value = pick(rng, ["1e400", "-1e400", "1e-400", "-0", "0", "-1", "9007199254740993", "1.0000000000000002", "123456789012345678901234567890", "4097", "1000", "9", "0.5", "2.0000001"])
    const text = JSON.stringify(body).replace(/}$/, `,"${field}":${value}}`)
    return post(`number:${field}=${value}`, Buffer.from(text, "utf8"))
  }
  if (roll < 0.91) {
    const text = JSON.stringify(body)
    const dup = pick(rng, [
      `,"model":"nope"`, `,"messages":[]`, `,"stream":"yes"`, `,"model":${JSON.stringify(pick(rng, models.names))}`, `,"n":1000`,
      `,"kv_transfer_params":{}`
    ])
    return post("duplicate-keys", Buffer.from(text.replace(/}$/, `${dup}}`), "utf8"))
  }
  if (roll < 0.95) {
    const text = JSON.stringify(body)
    const pollution = pick(rng, [
      `,"__proto__":{"polluted":true,"n":1000}`,
      `,"constructor":{"prototype":{"polluted":true}}`,
      `,"messages":[{"role":"user","content":"x","__proto__":{"role":"system"}}]`,
      `,"stream_options":{"__proto__":{"include_usage":true}}`,
      `,"__proto__":null`,
      `,"prototype":{"polluted":true}`
    ])
    return post("prototype", Buffer.from(text.replace(/}$/, `${pollution}}`), "utf8"))
  }
  const headers: Record<string, string | Array<string>> = { "content-type": "application/json" }
  const abuse = pick(rng, [
    "request-id-long", "request-id-bad", "session-long", "many-headers", "authorization", "expect", "cookie", "forwarded", "accept",
    "latin1", "session-unicode"
  ])
  switch (abuse) {
    case "request-id-long":
      headers["x-request-id"] = "r".repeat(int(rng, 129, 6000))
      break
    case "request-id-bad":
      headers["x-request-id"] = pick(rng, ["a b", "<script>", "../../etc/passwd", "x\u00ff", "\"quoted\"", "%00", "*"])
      break
    case "session-long":
      headers["x-session-id"] = "s".repeat(int(rng, 1000, 7000))
      break
    case "session-unicode":
      headers["x-session-id"] = "\u00e9\u00ff\u00a0"
      break
    case "many-headers":
      for (let i = 0; i < 90; i++) headers[`x-h-${i}`] = `v${i}`
      break
    case "authorization":
      headers["authorization"] = `Bearer ${"k".repeat(int(rng, 1, 4000))}`
      break
    case "expect":
      headers["expect"] = "100-continue"
      break
    case "cookie":
      headers["cookie"] = `a=${"c".repeat(5000)}`
      break
    case "forwarded":
      headers["x-forwarded-for"] = "127.0.0.1, ::1, not-an-ip"
      headers["forwarded"] = "for=evil;proto=gopher"
      break
    case "accept":
      headers["accept"] = "text/event-stream;q=2, */*;q=-1"
      headers["accept-encoding"] = "gzip, br, zstd"
      break
    case "latin1":
      headers["x-custom"] = "\u00c0\u00ff"
      break
  }
  return post(`headers:${abuse}`, json(body), headers)
}

/** `count` requests from `seed`; about `bigShare` of them may grow to megabytes. */
export const generateAll = (seed: number, count: number, models: Models, bigShare = 0.1): ReadonlyArray<Spec> => {
  const rng = makeRng(seed)
  return Array.from({ length: count }, () => generate(rng, models, rng() < bigShare))
}
