/**
 * The hostile request bodies of the event-loop benchmark (bench/event-loop.mjs), built
 * once from a fixed seed: long words, huge arrays, deep nesting, many messages, many keys
 * and values at the decode limits, and bodies just under the 4 MiB body limit. Each is
 * what a single client can send to stall a gateway that does not bound its admission
 * work. Pure: returns `{ name, path, body, expect }` objects; sends nothing.
 */
import { readFileSync } from "node:fs"
import { MODEL } from "./mock.mjs"

/** Just under `limits.max_body_bytes` (4 MiB) with room for the JSON around the payload. */
const MAX = 4 * 1024 * 1024 - 4096

/** mulberry32, as src/domain/Random.ts. */
const rngOf = (seed) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const letters = (rng, n) => {
  const out = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) out[i] = 97 + Math.floor(rng() * 26)
  return out.toString("latin1")
}

const words = (rng, n) => {
  let s = ""
  while (s.length < n) s += `${letters(rng, 3 + Math.floor(rng() * 6))} `
  return s.slice(0, n)
}

const chat = (content, extra = {}) => JSON.stringify({ model: MODEL, messages: [{ role: "user", content }], max_tokens: 16, ...extra })

/** The hostile bodies, in the order they are cycled. `expect` is the status a bounded gateway answers. */
export const hostileBodies = (readmePath) => {
  const rng = rngOf(9)
  // ASCII only, so characters are bytes and the body stays under the limit.
  let english = readFileSync(readmePath, "utf8").replace(/[^\x20-\x7e\n]/g, " ")
  while (english.length < MAX) english += english
  const nested = (depth) => `${"{\"a\":".repeat(depth)}1${"}".repeat(depth)}`
  // At the cap with the body's own keys (model, messages, role, content, max_tokens, extension).
  const keys = 49_990
  const manyKeys = Object.fromEntries(Array.from({ length: keys }, (_, i) => [`k${i}_${letters(rng, 4)}`, i]))
  return [
    { name: "one 4 MiB word", path: "/v1/chat/completions", body: chat(letters(rng, MAX)), expect: 400 },
    { name: "one 400k-char word", path: "/v1/chat/completions", body: chat(letters(rng, 400_000)), expect: 400 },
    { name: "400k chars of random words", path: "/v1/chat/completions", body: chat(words(rng, 400_000)), expect: "any" },
    // Escaped newlines and quotes grow the JSON: leave room for them.
    { name: "4 MiB of English prose", path: "/v1/chat/completions", body: chat(english.slice(0, MAX - 150_000)), expect: 400 },
    {
      name: "50,000 embedding inputs",
      path: "/v1/embeddings",
      body: JSON.stringify({ model: MODEL, input: Array.from({ length: 50_000 }, (_, i) => `input ${i}`) }),
      expect: 400
    },
    {
      name: "4 MiB array of 2M numbers",
      path: "/v1/embeddings",
      body: `{"model":"${MODEL}","input":[${"1,".repeat(MAX / 2 - 8)}1]}`,
      expect: 400
    },
    {
      name: "depth 10,000 in tools[].function.parameters",
      path: "/v1/chat/completions",
      body: chat("hi", { tools: [{ type: "function", function: { name: "f", parameters: "__DEEP__" } }] }).replace("\"__DEEP__\"", nested(10_000)),
      expect: 400
    },
    {
      name: "depth 2M (4 MiB of brackets)",
      path: "/v1/chat/completions",
      body: chat("hi", { x: "__DEEP__" }).replace("\"__DEEP__\"", `${"[".repeat(MAX / 2)}${"]".repeat(MAX / 2)}`),
      expect: 400
    },
    {
      name: "120,000 messages (3.9 MiB)",
      path: "/v1/chat/completions",
      body: JSON.stringify({ model: MODEL, messages: Array.from({ length: 120_000 }, () => ({ role: "user", content: "hi" })) }),
      expect: 400
    },
    {
      name: "5,000 messages (just over max_messages)",
      path: "/v1/chat/completions",
      body: JSON.stringify({ model: MODEL, messages: Array.from({ length: 5_000 }, (_, i) => ({ role: "user", content: `message ${i}` })) }),
      expect: 400
    },
    {
      name: `${keys.toLocaleString("en")} distinct keys (at max_json_keys)`,
      path: "/v1/chat/completions",
      body: chat("hi", { extension: manyKeys }),
      expect: "any"
    },
    {
      name: "299,900 short strings (at max_json_values)",
      path: "/v1/chat/completions",
      body: chat("hi", { extension: Array.from({ length: 299_900 }, () => "ab") }),
      expect: "any"
    }
  ].map((h) => ({ ...h, body: Buffer.from(h.body, "utf8") }))
}
