/**
 * The repetition detector against a held set of legitimate repetitive outputs (which must
 * never trigger it, however they are chunked) and true loops (which must trigger within
 * the stated bound: max(minRun, minRepeats·p) + p units of the loop's start).
 */
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  defaultRepetitionConfig as config,
  isDegenerate,
  tooShortForLoop,
  RepetitionDetector,
  UNARY_TAIL_CHARS
} from "../../src/resilience/Repetition.ts"

/** Engine-like chunks: BPE-style pieces (a word with its leading space, a punctuation run, newlines). */
const tokens = (text: string): Array<string> => text.match(/ ?[A-Za-z0-9_]+| ?[^A-Za-z0-9_\s]|\n|\s+/g) ?? []

/** Feeds chunks; the index of the chunk that triggered, or -1. */
const feed = (chunks: ReadonlyArray<string>, d = new RepetitionDetector(config)) => chunks.findIndex((c) => d.push(c))

/** Fixed-size random chunkings (1..n characters per chunk), seeded. */
const chunked = (text: string, seed: number, max: number): Array<string> => {
  const out: Array<string> = []
  let s = seed
  for (let i = 0; i < text.length;) {
    s = (s * 1103515245 + 12345) & 0x7fffffff
    const n = 1 + (s % max)
    out.push(text.slice(i, i + n))
    i += n
  }
  return out
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)
const names = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj"]
const cities = ["Paris", "Lagos", "Lima", "Oslo", "Pune", "Quito", "Rome", "Seoul", "Tunis", "Vigo"]

/** Legitimate repetitive answers: none of these may ever trigger the detector. */
const held: Record<string, string> = {
  "markdown table, 60 rows": "| # | Name | City | Score |\n|---|------|------|-------|\n" +
    range(60).map((i) => `| ${i + 1} | ${names[i % names.length]} | ${cities[(i * 7) % cities.length]} | ${(i * 37) % 100} |\n`).join(""),
  "markdown table of dates with mostly zero cells": "| Date | A | B | C | D |\n|---|---|---|---|---|\n" +
    range(45).map((i) => `| 2024-03-${String((i % 28) + 1).padStart(2, "0")} | 0 | 0 | ${i % 3 === 0 ? 1 : 0} | 0 |\n`).join(""),
  "JSON array of 80 similar objects": "```json\n[\n" +
    range(80).map((i) => `  {"id": ${i}, "name": "item-${i}", "active": true, "tags": [], "price": 9.99}`).join(",\n") + "\n]\n```",
  "numbered list of 100 identical items": range(100).map((i) => `${i + 1}. Review the pull request.\n`).join(""),
  "checklist of 40 identical items": "Tasks:\n" + range(40).map(() => "- [ ] TODO\n").join(""),
  "80 '=' separator": "Results\n" + "=".repeat(80) + "\nAll good.\n",
  "120 '-' separator between sections": range(3).map((i) => `Section ${i}\n${"-".repeat(120)}\nBody of section ${i}.\n`).join(""),
  "box-drawing rule": "┌" + "─".repeat(78) + "┐\n│ Report │\n└" + "─".repeat(78) + "┘\n",
  "asterisk rule": "* * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * * *\n",
  "switch with 40 cases": "switch (code) {\n" + range(40).map((i) => `  case ${i}: return "status-${i}";\n`).join("") + "}\n",
  "C array of 64 numbers": "static const int table[64] = {\n" + range(8).map((r) => "  " + range(8).map((c) => String((r * 8 + c) * 3 % 256)).join(", ") + ",\n").join("") + "};\n",
  "8×8 zero matrix": "M = [\n" + range(8).map(() => "    [0, 0, 0, 0, 0, 0, 0, 0],\n").join("") + "]\n",
  "30 test assertions": range(30).map((i) => `    assert square(${i}) == ${i * i}\n`).join(""),
  "CSS rules": range(25).map((i) => `.col-${i} { width: ${i * 4}%; margin: 0; padding: 0; }\n`).join(""),
  "HTML list": "<ul>\n" + range(50).map((i) => `  <li>Item ${i}</li>\n`).join("") + "</ul>\n",
  "CSV": "name,city,score\n" + range(80).map((i) => `${names[i % 12]},${cities[i % 10]},${i * 13 % 97}\n`).join(""),
  "multiplication table": range(12).map((i) => `7 x ${i + 1} = ${7 * (i + 1)}\n`).join(""),
  "log lines": range(60).map((i) => `2024-05-01T10:${String(i).padStart(2, "0")}:00Z INFO request served in ${i * 3} ms\n`).join(""),
  "song with a chorus": [
    "Verse one: the morning breaks on quiet streets, the baker hums a tune.",
    "Chorus: Oh sing it loud, oh sing it clear, the river runs to you, the river runs to you.",
    "Verse two: the evening falls on harbour lights, the sailors count the moon.",
    "Chorus: Oh sing it loud, oh sing it clear, the river runs to you, the river runs to you.",
    "Bridge: and when the tide comes in again, we'll find our way back home.",
    "Chorus: Oh sing it loud, oh sing it clear, the river runs to you, the river runs to you.",
    "Chorus: Oh sing it loud, oh sing it clear, the river runs to you, the river runs to you.",
    "Chorus: Oh sing it loud, oh sing it clear, the river runs to you, the river runs to you."
  ].join("\n"),
  "one word, 100 times, by request": "Here you go:\n" + range(100).map(() => "buffalo").join(" ") + "\n",
  "'yes, ' 100 times": range(100).map(() => "yes, ").join(""),
  "'ha' 300 times": "ha".repeat(300),
  "a sentence repeated three times, by request": range(3).map(() => "I will not talk in class. I will not run in the hall. ").join(""),
  "repeated headings across sections": range(12).map((i) => `## Step ${i + 1}\n\nRun the command and check the output of step ${i + 1}.\n\n`).join(""),
  "YAML list of similar entries": "servers:\n" + range(40).map((i) => `  - name: node-${i}\n    port: ${8000 + i}\n    enabled: true\n`).join(""),
  "blank template table": "| Name | Role | Email |\n|------|------|-------|\n" + range(20).map(() => "|      |      |       |\n").join("")
}

/** True loops: a passage repeated verbatim until max_tokens, after a legitimate start. */
const loops: Record<string, { readonly intro: string; readonly unit: string }> = {
  "one sentence (the simulator's loop)": { intro: "Let me think.", unit: " The answer is the same answer." },
  "newlines": { intro: "Sure.", unit: "\n" },
  "one word": { intro: "Here is the list:", unit: " the" },
  "two alternating sentences": { intro: "Well.", unit: " I cannot do that. I am sorry." },
  "a code line": { intro: "def f():\n", unit: "    return None\n" },
  "CJK": { intro: "回答：", unit: "我不知道。" },
  "a paragraph of about 100 units": {
    intro: "Summary:",
    unit: " " + range(40).map((i) => `w${i}`).join(" ") + ", and then the story goes on with " + range(20).map((i) => `x${i}`).join(" ") + ". Then again:"
  },
  "a table row": { intro: "| a | b |\n|---|---|\n", unit: "| 0 | 0 |\n" }
}

/** Units of a text, as the detector cuts them (for the bound). */
const unitsOf = (text: string): number => {
  // Count by feeding a detector that can never trigger.
  const d = new RepetitionDetector({ minRun: 1e9, maxPeriod: 1, minRepeats: 1e9 })
  d.push(text + "\u0001")
  return d.seen
}

describe("RepetitionDetector", () => {
  it.each(Object.entries(held))("never triggers on legitimate repetition: %s", (_, text) => {
    expect(feed(tokens(text))).toBe(-1)
    expect(feed([text])).toBe(-1)
    for (const seed of [1, 2, 3]) expect(feed(chunked(text, seed, 7))).toBe(-1)
    expect(isDegenerate(text, config)).toBe(false)
  })

  it.each(Object.entries(loops))("flags a loop within max(minRun, minRepeats·p) + p units: %s", (_, { intro, unit }) => {
    const p = unitsOf(unit + unit) - unitsOf(unit)
    expect(p).toBeGreaterThan(0)
    expect(p).toBeLessThanOrEqual(config.maxPeriod)
    const bound = Math.max(config.minRun, config.minRepeats * p) + p
    const repeats = Math.ceil((bound + 50) / p) + 1
    const text = intro + unit.repeat(repeats)
    // Per token: the units consumed after the intro when it fired.
    const d = new RepetitionDetector(config)
    const introUnits = unitsOf(intro)
    const chunks = [...tokens(intro), ...tokens(unit.repeat(repeats))]
    expect(feed(chunks, d)).toBeGreaterThan(-1)
    expect(d.period).toBe(p)
    expect(d.seen - introUnits).toBeLessThanOrEqual(bound + 1)
    // The same verdict whatever the chunking, and for the whole (unary) text.
    for (const seed of [4, 5]) expect(feed(chunked(text, seed, 9))).toBeGreaterThan(-1)
    expect(isDegenerate(text, config)).toBe(true)
  })

  it("does not flag the looping passage before it has covered minRun units", () => {
    const unit = " The answer is the same answer."
    const short = "Let me think." + unit.repeat(Math.floor((config.minRun - 20) / 7))
    expect(feed(tokens(short))).toBe(-1)
  })

  it("does not flag varied text", () => {
    const words = Array.from({ length: 5000 }, (_, i) => ` w${(i * 7919) % 1000}`)
    expect(feed(words)).toBe(-1)
  })

  it("finds a loop in a unary answer's tail even when the answer is longer than the checked tail", () => {
    const prose = Array.from({ length: 20_000 }, (_, i) => ` w${(i * 7919) % 1000}`).join("")
    expect(prose.length).toBeGreaterThan(UNARY_TAIL_CHARS)
    expect(isDegenerate(prose, config)).toBe(false)
    expect(isDegenerate(prose + " I am stuck.".repeat(400), config)).toBe(true)
  })

  // Whatever the chunking, the detector cuts the same units: the verdict and the unit at
  // which it fires are those of the whole text fed at once.
  it("is independent of chunk boundaries", () => {
    const word = fc.constantFrom(" a", " b", " the", ".", "\n", ",", "  x", "ok", "—", "é")
    fc.assert(fc.property(fc.array(word, { maxLength: 700 }), fc.integer({ min: 1, max: 1000 }), (words, seed) => {
      const text = words.join("")
      const small = { minRun: 24, maxPeriod: 8, minRepeats: 3 }
      const whole = new RepetitionDetector(small)
      const wholeHit = whole.push(text)
      const parts = new RepetitionDetector(small)
      const partsHit = feed(chunked(text, seed, 5), parts) !== -1
      expect(partsHit).toBe(wholeHit)
      if (wholeHit) {
        expect(parts.seen).toBe(whole.seen)
        expect(parts.period).toBe(whole.period)
      }
    }), { numRuns: 300 })
  })

  it("keeps bounded state: memory grows with the output only up to a fixed size", () => {
    const d = new RepetitionDetector(config)
    const length = () => (d as unknown as { state: Int32Array | undefined }).state?.length ?? 0
    expect(length()).toBe(0)
    // a stream that has produced a few units holds a few dozen entries, not ~3·maxPeriod
    d.push(" one two three")
    expect(length()).toBeGreaterThan(0)
    expect(length()).toBeLessThanOrEqual(64)
    for (let i = 0; i < 1_000; i++) d.push(` w${(i * 7919) % 5000}`)
    const full = length()
    for (let i = 0; i < 50_000; i++) d.push(` w${(i * 7919) % 5000}`)
    expect(length()).toBe(full)
    expect(full).toBeGreaterThan(2 * config.maxPeriod)
    expect(full).toBeLessThanOrEqual(3 * (config.maxPeriod + 1) + 1)
  })

  // The detector grows its ring and its run counters with the output; it must answer exactly as
  // the fixed-size detector it replaced (a ring of the next power of two above maxPeriod and one
  // counter per period, allocated up front), kept here as the reference.
  it("answers as the fixed-size detector it replaced, across its growth steps", () => {
    const reference = (cfg: { minRun: number; maxPeriod: number; minRepeats: number }, text: string) => {
      let size = 2
      while (size <= cfg.maxPeriod) size *= 2
      const ring = new Int32Array(size)
      const run = new Int32Array(cfg.maxPeriod + 1)
      const need = Array.from({ length: cfg.maxPeriod + 1 }, (_, p) => Math.max(cfg.minRun, cfg.minRepeats * p) - p)
      // units from the real cutter: a detector that never loops reports its unit count, and each
      // unit's text is what its hash is made of
      const units: Array<string> = []
      let cur = ""
      const cls = (c: string) => (c === " " || c === "\t" || c === "\r" ? 0 : /[A-Za-z0-9_]/.test(c) ? 1 : 2)
      let prev = -1
      for (const c of text) {
        const k = cls(c)
        const starts = cur.length > 0 && ((k === 0 && prev !== 0) || (k === 1 && prev === 2) || (k === 2 && prev !== 0) || cur.length >= 16)
        if (starts) {
          units.push(cur)
          cur = ""
        }
        cur += c
        prev = k
      }
      const ids = new Map<string, number>()
      for (let pos = 0; pos < units.length; pos++) {
        const h = ids.get(units[pos]!) ?? ids.set(units[pos]!, ids.size + 1).get(units[pos]!)!
        ring[pos & (size - 1)] = h
        for (let p = 1; p <= cfg.maxPeriod; p++) {
          if (ring[(pos - p) & (size - 1)] === h) {
            if (++run[p]! >= need[p]!) return { found: p, seen: pos + 1 }
          } else run[p] = 0
        }
      }
      return { found: 0, seen: units.length }
    }
    const unit = fc.constantFrom(" a", " b", " c", " the", ".", ",", "x", " yy")
    fc.assert(fc.property(
      fc.record({ minRun: fc.integer({ min: 2, max: 90 }), maxPeriod: fc.integer({ min: 1, max: 70 }), minRepeats: fc.integer({ min: 2, max: 5 }) }),
      fc.array(unit, { maxLength: 120 }),
      fc.array(unit, { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 0, max: 12 }),
      fc.array(unit, { maxLength: 40 }),
      (cfg, head, loop, times, tail) => {
        const text = head.join("") + loop.join("").repeat(times) + tail.join("")
        const d = new RepetitionDetector(cfg)
        const hit = d.push(text)
        const want = reference(cfg, text)
        expect(d.period).toBe(want.found)
        expect(hit).toBe(want.found > 0)
        if (hit) expect(d.seen).toBe(want.seen)
      }
    ), { numRuns: 2000 })
  })
})

describe("isDegenerate on short texts", () => {
  // The unary check answers texts no longer than `tooShortForLoop` without a detector: for any
  // config, no detector ever flags such a text (loops of one-character units included, the
  // shortest a loop can be).
  it("a text the shortcut answers is one no detector flags", () => {
    fc.assert(
      fc.property(
        fc.record({ minRun: fc.integer({ min: 0, max: 12 }), maxPeriod: fc.integer({ min: 1, max: 6 }), minRepeats: fc.integer({ min: 0, max: 4 }) }),
        fc.array(fc.constantFrom("a", "b", " ", ".", "ab", " a", "\n"), { maxLength: 20 }),
        (cfg, parts) => {
          const text = parts.join("")
          const detector = new RepetitionDetector(cfg).push(text)
          expect(isDegenerate(text, cfg)).toBe(detector)
          if (text.length <= tooShortForLoop(cfg)) expect(detector).toBe(false)
        }
      ),
      { numRuns: 3000 }
    )
  })

  it("still flags the shortest loop just past the bound", () => {
    const cfg = { minRun: 4, maxPeriod: 2, minRepeats: 2 }
    expect(isDegenerate(".".repeat(tooShortForLoop(cfg) + 1), cfg)).toBe(true)
  })
})
