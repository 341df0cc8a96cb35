/**
 * Issue 9, item 9: the repetition detector observes by default and tells loops from
 * legitimate repetition; `end_stream` is a per-model opt-in; unary answers are checked too.
 *
 * Real sockets: a fake engine streams the scripted tokens one per chunk (a non-streaming
 * answer carries them joined), chosen by the user message.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { BackendId } from "../../src/domain/Ids.ts"
import { streamChat } from "../support/Client.ts"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

/** A true loop: one sentence of 7 tokens, over and over, until max_tokens. */
const LOOP = Array.from({ length: 600 }, (_, i) => [" The", " answer", " is", " the", " same", " answer", "."][i % 7]!)
/** What a user asked for: one word, 40 times. */
const WORD = Array.from({ length: 40 }, () => " buffalo")

const outputs: Record<string, ReadonlyArray<string>> = { loop: LOOP, word: WORD }

const degenerateCount = async (url: string, model: string): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text()
  const m = new RegExp(`sluice_degenerate_output_total\\{model="${model}",backend="a"\\} (\\d+)`).exec(text)
  return m === null ? 0 : Number(m[1])
}

describe("repetition: observe by default, end_stream by opt-in, unary checked (item 9)", () => {
  let a: Fake.FakeEngine
  let b: Fake.FakeEngine
  let gw: TestGateway
  const body = (model: string, output: string, stream: boolean) => ({
    model,
    messages: [{ role: "user", content: output }],
    stream,
    max_tokens: 1000
  })
  const unary = (model: string, output: string) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body(model, output, false))
    })

  beforeAll(async () => {
    const script: Fake.FakeEngine["script"] = (_model, req) => {
      const messages = req["messages"] as ReadonlyArray<{ readonly content: string }>
      const tokens = outputs[messages[0]!.content]!
      return { tokens, usage: { prompt_tokens: 9, completion_tokens: tokens.length } }
    }
    a = await Fake.start(script)
    b = await Fake.start(script)
    gw = await startGateway(`
models:
  - { name: m }
  - { name: strict, repetition: end_stream }
backends:
  - { id: a, url: "${a.url}", models: [m, strict] }
  - { id: b, url: "${b.url}", models: [m, strict] }
routing: { policy: ordered }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await a?.close()
    await b?.close()
  })

  it("serves a stream that repeats one word on request, whole, and leaves the backend alone", async () => {
    const result = await streamChat(gw.url, body("m", "word", true))
    expect(result.status).toBe(200)
    expect(result.events.at(-1)).toBe("[DONE]")
    expect(result.events.filter((e) => e.includes("buffalo")).length).toBe(40)
    expect(gw.fleet.byId(BackendId("a"))!.health).toBe("healthy")
    expect(await degenerateCount(gw.url, "m")).toBe(0)
  })

  it("observes a true loop by default: the stream is served whole, counted, and is health evidence", async () => {
    const result = await streamChat(gw.url, body("m", "loop", true))
    expect(result.status).toBe(200)
    expect(result.events.at(-1)).toBe("[DONE]")
    expect(result.events.filter((e) => e.includes("\"content\"")).length).toBe(LOOP.length)
    expect(await degenerateCount(gw.url, "m")).toBe(1)
    expect(gw.fleet.byId(BackendId("a"))!.health).toBe("degraded")
    const line = await eventually(async () => gw.lines.at(-1), (l) => l?.model === "m")
    expect(line?.outcome).toBe("completed")
  })

  it("ends a looping stream with an error event when the model opts in (end_stream), within the stated bound", async () => {
    const result = await streamChat(gw.url, body("strict", "loop", true))
    expect(result.status).toBe(200)
    expect(result.events.at(-1)).toContain("\"code\":\"backend_error\"")
    expect(result.events).not.toContain("[DONE]")
    const delivered = result.events.filter((e) => e.includes("\"content\"")).length
    // The rule: a period of p ≤ max_period units repeated verbatim over the last
    // max(min_run, min_repeats·p) units. This loop has p = 7 units (one per token here).
    const { repetitionMinRun, repetitionMinRepeats } = gw.plan.health
    const bound = Math.max(repetitionMinRun, repetitionMinRepeats * 7)
    expect(delivered).toBeGreaterThanOrEqual(bound - 7)
    expect(delivered).toBeLessThanOrEqual(bound + 7)
    const line = await eventually(async () => gw.lines.at(-1), (l) => l?.model === "strict")
    expect(line?.error).toBe("DegenerateOutput")
    expect(line?.outcome).toBe("partial")
    expect(b.seen.length).toBe(0)
  })

  it("checks unary answers: a looping completion is observed (served, counted) by default", async () => {
    const before = await degenerateCount(gw.url, "m")
    const res = await unary("m", "loop")
    expect(res.status).toBe(200)
    const json = await res.json() as { choices: Array<{ message: { content: string } }> }
    expect(json.choices[0]!.message.content).toBe(LOOP.join(""))
    expect(await degenerateCount(gw.url, "m")).toBe(before + 1)
    // A unary answer that repeats a word on request is not a loop.
    expect((await unary("m", "word")).status).toBe(200)
    expect(await degenerateCount(gw.url, "m")).toBe(before + 1)
  })

  it("refuses a looping unary answer under end_stream: 502, no retry, the generation recorded as waste", async () => {
    const seenB = b.seen.length
    const res = await unary("strict", "loop")
    expect(res.status).toBe(502)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("backend_error")
    expect(b.seen.length).toBe(seenB)
    const snap = await eventually(() => gw.run(gw.sink.snapshot), (s) => s.recent.at(-1)?.model === "strict" && s.recent.at(-1)?.outcome === "failed")
    const record = snap.recent.at(-1)!
    expect(record.attempts.map((x) => x.reason)).toEqual(["DegenerateOutput"])
    expect(record.attempts[0]!.wastedPromptTokens).toBeGreaterThan(0)
    expect(record.attempts[0]!.wastedCompletionTokens).toBe(LOOP.length)
    expect(record.charged.completionTokens).toBe(0)
  })
})
