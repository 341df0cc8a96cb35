/**
 * The bounded tokenizer: exactly gpt-tokenizer's count on ordinary text (prose, code,
 * markdown, many languages, texts spanning many windows), never below it on anything else,
 * and bounded on the inputs that froze the gateway (one unbroken 400k-character word,
 * megabytes of one character class).
 */
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { countTokens as cl100k } from "gpt-tokenizer/encoding/cl100k_base"
import { countTokens as o200k } from "gpt-tokenizer/encoding/o200k_base"
import { beforeAll, describe, expect, it } from "vitest"
import * as Tokenizer from "../../src/admission/Tokenizer.ts"
import { makeRng } from "../../src/domain/Random.ts"

const reference = { cl100k: (t: string) => cl100k(t, { disallowedSpecial: new Set() }), o200k: (t: string) => o200k(t, { disallowedSpecial: new Set() }) }
const encodings = ["cl100k", "o200k"] as const

const file = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8")

const ordinary: ReadonlyArray<readonly [string, string]> = [
  ["README (markdown, tables, code)", file("README.md")],
  ["TypeScript source", file("src/request/Pipeline.ts") + file("src/admission/Estimate.ts")],
  ["YAML", file("config/sluice.yaml")],
  ["a chat prompt", "user\nWrite a haiku about GPUs, please. Don't rhyme; it's 5-7-5!\nassistant\n"],
  [
    "many languages",
    "Über die Brücke gehen Fußgänger. Москва — столица России. 東京は日本の首都です。北京是中国的首都。" +
    "مرحبا بالعالم. नमस्ते दुनिया। שלום עולם. Γειά σου Κόσμε. 안녕하세요 세계. Xin chào thế giới! 🎉🚀👩‍💻 café naïve"
  ],
  ["separators and indentation", `${"-".repeat(200)}\n${" ".repeat(120)}x = 1\n${"=".repeat(80)}\n\t\t\tend\n\n\n\r\n`],
  ["numbers", "Order 1234567890 shipped 2024-05-01 at 12:30:45.678, total $1,234.56 (±0.5%)."],
  ["special-token strings as text", "Ignore <|endoftext|> and <|im_start|>system<|im_end|> please"]
]

describe("Tokenizer", () => {
  beforeAll(async () => {
    await Effect.runPromise(Effect.all([Tokenizer.load("cl100k"), Tokenizer.load("o200k")]))
  })

  for (const encoding of encodings) {
    it(`counts ordinary text exactly as gpt-tokenizer does (${encoding})`, () => {
      for (const [name, text] of ordinary) {
        expect(Tokenizer.count(encoding, text), name).toBe(reference[encoding](text))
      }
      // A long ordinary prompt spans many windows, each cut at a pre-split boundary.
      let long = ""
      for (const [, text] of ordinary) long += text
      while (long.length < 5 * Tokenizer.WINDOW_CHARS) long += long
      const counter = new Tokenizer.TokenCount((t) => reference[encoding](t), long)
      let steps = 0
      while (!counter.done) {
        counter.step()
        steps++
      }
      expect(steps).toBeGreaterThan(4)
      expect(counter.exact).toBe(true)
      expect(counter.total).toBe(reference[encoding](long))
    })
  }

  it("never counts below gpt-tokenizer, whatever the text (seeded random texts, forced cuts, long runs)", () => {
    const rng = makeRng(9)
    const alphabets = [
      "abcdefghij", "ABCxyz", " ", "  ", "\n", "\r\n", "\t", "0123456789", "!?.,;:-_/\\\"'()[]{}<>|", "日本語中文한국",
      "éüßøñ", "🎉🚀👩‍💻", "\u0301\u0308", "<|endoftext|>", "'s", "'ll"
    ]
    for (let round = 0; round < 24; round++) {
      let text = ""
      const length = 200 + Math.floor(rng() * 24_000)
      while (text.length < length) {
        const a = alphabets[Math.floor(rng() * alphabets.length)]!
        const n = 1 + Math.floor(rng() * (rng() < 0.05 ? 1500 : 12))
        for (let i = 0; i < n; i++) text += a[Math.floor(rng() * a.length)]
      }
      for (const encoding of encodings) {
        const ours = Tokenizer.count(encoding, text)
        const theirs = reference[encoding](text)
        expect(ours, `round ${round} ${encoding}`).toBeGreaterThanOrEqual(theirs)
        // Err high, but not absurdly: cuts cost a token each, long runs at most their bytes.
        expect(ours).toBeLessThanOrEqual(Buffer.byteLength(text, "utf8") + 64)
      }
    }
  })

  it("is bounded on the inputs that froze the gateway", () => {
    const rng = makeRng(3)
    let word = ""
    while (word.length < 400_000) word += String.fromCharCode(97 + Math.floor(rng() * 26))
    const hostile: ReadonlyArray<readonly [string, string]> = [
      ["a 400k-character word", word],
      ["4M spaces", " ".repeat(4_000_000)],
      ["4M newlines after punctuation", `!${"\n".repeat(4_000_000)}`],
      ["1M emoji", "😀".repeat(1_000_000)],
      ["4M of one CJK character", "語".repeat(4_000_000)],
      ["4M digits", "7".repeat(4_000_000)]
    ]
    for (const [name, text] of hostile) {
      for (const encoding of encodings) {
        const counter = new Tokenizer.TokenCount((t) => reference[encoding](t), text)
        let steps = 0
        while (!counter.done) {
          counter.step()
          steps++
        }
        // Linear: a bounded number of windows per character, each a bounded amount of work.
        expect(steps, name).toBeLessThanOrEqual(Math.ceil(text.length / Tokenizer.WINDOW_CHARS) + 4)
        expect(counter.total, name).toBeGreaterThan(0)
        expect(counter.total, name).toBeLessThanOrEqual(Buffer.byteLength(text, "utf8") + steps)
      }
    }
    // Digits never form a long piece (three per piece): windows are BPE'd, cut off a boundary.
    const digits = "7".repeat(30_000)
    expect(Tokenizer.count("cl100k", digits)).toBeGreaterThanOrEqual(reference.cl100k(digits))
    const cuts = Math.ceil(digits.length / Tokenizer.WINDOW_CHARS)
    expect(Tokenizer.count("cl100k", digits)).toBeLessThanOrEqual(reference.cl100k(digits) + 2 * cuts)
  })

  it("counts the rest past EXACT_CHARS as bytes (an upper bound), and stops past `stopAbove`", () => {
    const text = "lorem ipsum dolor sit amet ".repeat(100_000) // 2.7M characters
    const full = Tokenizer.count("cl100k", text)
    const exactPart = Tokenizer.count("cl100k", text.slice(0, Tokenizer.EXACT_CHARS))
    expect(full).toBeGreaterThanOrEqual(reference.cl100k(text))
    expect(full).toBeGreaterThanOrEqual(exactPart + text.length - Tokenizer.EXACT_CHARS)
    const stopped = Tokenizer.count("cl100k", text, 1000)
    expect(stopped).toBeGreaterThan(1000)
    // It stopped within a window of the limit: the rest was not counted.
    expect(stopped).toBeLessThan(1000 + Tokenizer.WINDOW_CHARS)
  })

  it("yields to the event loop between windows and gives the same count", async () => {
    // Many windows, but under the 1M characters past which the count is bytes (an upper bound).
    const text = file("README.md").repeat(20).slice(0, 900_000)
    let ticks = 0
    const timer = setInterval(() => ticks++, 0)
    const counted = await Effect.runPromise(Tokenizer.countYielding("cl100k", text))
    clearInterval(timer)
    expect(counted).toBe(reference.cl100k(text))
    expect(ticks).toBeGreaterThan(0)
  })
})
