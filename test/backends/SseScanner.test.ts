import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { EventTooLarge, SseScanner } from "../../src/backends/SseScanner.ts"

const enc = new TextEncoder()

const scanAll = (chunks: ReadonlyArray<Uint8Array>, max?: number) => {
  const s = new SseScanner(max)
  const events = chunks.flatMap((c) => s.feed(c))
  const last = s.flush()
  return last === undefined ? events : [...events, last]
}

const splitAt = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let prev = 0
  for (const p of points) {
    out.push(bytes.subarray(prev, p))
    prev = p
  }
  out.push(bytes.subarray(prev))
  return out
}

describe("SseScanner", () => {
  it("returns each event's original bytes and parsed fields", () => {
    const text = "data: {\"a\":1}\n\nevent: error\ndata: {\"b\":2}\n\n: keepalive\n\ndata: [DONE]\n\n"
    const events = scanAll([enc.encode(text)])
    expect(events.map((e) => [e.event, e.data])).toEqual([
      [undefined, "{\"a\":1}"],
      ["error", "{\"b\":2}"],
      [undefined, "[DONE]"]
    ])
    expect(Buffer.from(events[0]!.raw).toString()).toBe("data: {\"a\":1}\n\n")
  })

  it("handles CRLF line endings and multi-line data", () => {
    const events = scanAll([enc.encode("data: one\r\ndata: two\r\n\r\ndata:three\r\n\r\n")])
    expect(events.map((e) => e.data)).toEqual(["one\ntwo", "three"])
  })

  it("holds an incomplete event until its blank line arrives", () => {
    const s = new SseScanner()
    expect(s.feed(enc.encode("data: par"))).toEqual([])
    expect(s.buffered).toBe(9)
    expect(s.feed(enc.encode("tial\n")).length).toBe(0)
    const out = s.feed(enc.encode("\n"))
    expect(out.map((e) => e.data)).toEqual(["partial"])
    expect(s.buffered).toBe(0)
  })

  it("bounds the carry-over buffer", () => {
    const s = new SseScanner(64)
    expect(() => s.feed(enc.encode(`data: ${"x".repeat(100)}`))).toThrow(EventTooLarge)
  })

  it("gives the same events and bytes for any chunk boundaries", () => {
    const event = fc.record({
      name: fc.option(fc.constantFrom("message", "error", "ping"), { nil: undefined }),
      data: fc.array(fc.string({ unit: "grapheme", maxLength: 20 }).filter((s) => !/[\r\n]/.test(s)), {
        minLength: 1,
        maxLength: 3
      }),
      crlf: fc.boolean()
    })
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (evs, cuts) => {
        const text = evs.map((e) => {
          const nl = e.crlf ? "\r\n" : "\n"
          const head = e.name === undefined ? "" : `event: ${e.name}${nl}`
          return head + e.data.map((d) => `data: ${d}${nl}`).join("") + nl
        }).join("")
        const bytes = enc.encode(text)
        const whole = scanAll([bytes])
        const split = scanAll(splitAt(bytes, cuts))
        expect(split.map((e) => [e.event, e.data])).toEqual(whole.map((e) => [e.event, e.data]))
        expect(split.map((e) => Buffer.from(e.raw).toString())).toEqual(whole.map((e) => Buffer.from(e.raw).toString()))
        expect(whole.map((e) => e.data)).toEqual(evs.map((e) => e.data.join("\n")))
        expect(Buffer.concat(split.map((e) => e.raw)).toString()).toBe(text)
      }),
      { numRuns: 300 }
    )
  })
})
