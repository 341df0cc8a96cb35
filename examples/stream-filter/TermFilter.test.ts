/**
 * The stream-filter example end to end: terms split across the engine's chunks are masked,
 * or end the stream with a `content_blocked` error event; a blocked stream is accounted
 * with the tokens the engine actually streamed (not the whole answer it would have sent),
 * and the gateway stops reading the engine.
 */
import { Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, fakeOpenAI, readStream, sample, startGateway } from "../support/harness.ts"
import * as TermFilter from "./TermFilter.ts"

const terms = ["password", "hunter2"]

describe("examples/stream-filter", () => {
  let engine: Awaited<ReturnType<typeof fakeOpenAI>>
  let gateway: Awaited<ReturnType<typeof startGateway>>
  let tokens: ReadonlyArray<string> = []
  let holdAfter: number | undefined

  beforeAll(async () => {
    engine = await fakeOpenAI(() => ({ tokens, gapMs: 20, ...(holdAfter === undefined ? {} : { holdAfter }) }))
    gateway = await startGateway(
      `
models:
  - { name: masked, tokenizer: chars, extensions: { response: [mask-secrets] } }
  - { name: blocked, tokenizer: chars, extensions: { response: [block-secrets] } }
backends:
  - { id: e, dialect: openai, url: "${engine.url}", models: [masked, blocked] }
health: { probe_interval: 0 }
`,
      Layer.mergeAll(
        TermFilter.layer({ name: "mask-secrets", terms, mode: "mask" }),
        TermFilter.layer({ name: "block-secrets", terms, mode: "block" })
      )
    )
  })
  afterAll(async () => {
    await gateway?.close()
    await engine?.close()
  })

  it("holds back only a tail that could start a term", () => {
    expect(TermFilter.heldLength("the pass", terms)).toBe(4)
    expect(TermFilter.heldLength("the passwor", terms)).toBe(7)
    expect(TermFilter.heldLength("the past", terms)).toBe(0)
    expect(TermFilter.heldLength("x".repeat(10_000) + "hunt", terms)).toBe(4)
  })

  it("masks a term split across three chunks, and one in a chunk of its own", async () => {
    tokens = ["The pass", "Wo", "rd is ", "hunter2", ". Bye"]
    const res = await gateway.chat({ model: "masked", stream: true, max_tokens: 16, messages: [{ role: "user", content: "hi" }] })
    expect(res.status).toBe(200)
    const { content, errors } = await readStream(res)
    expect(errors).toEqual([])
    expect(content).toBe("The [redacted] is [redacted]. Bye")
  })

  it("blocks a split term with an error event, and accounts only the tokens streamed", async () => {
    // The engine sends the chunk that completes the term, then nothing until the gateway leaves:
    // exactly four chunks were streamed, however the reads are cut.
    tokens = ["Hello", " there, the pass", "wo", "rd is ", "hunter2", " more"]
    holdAfter = 4
    const res = await gateway.chat({ model: "blocked", stream: true, max_tokens: 64, messages: [{ role: "user", content: "hi" }] })
    expect(res.status).toBe(200)
    const { content, errors } = await readStream(res)
    // Everything before the held "pass" went out; nothing of the term, nothing after it.
    expect(content).toBe("Hello there, the ")
    expect(errors).toHaveLength(1)
    expect(errors[0]!.code).toBe("content_blocked")

    // The gateway stopped reading: the engine's stream was closed before its end.
    expect(await eventually(async () => engine.aborted(), (n) => n === 1)).toBe(1)
    // Four chunks were streamed when the term completed; the engine reported no usage (it was cut).
    const metrics = await eventually(
      gateway.metrics,
      (m) => sample(m, "sluice_requests_total", { model: "blocked", outcome: "partial" }) === 1
    )
    expect(sample(metrics, "sluice_requests_total", { model: "blocked", outcome: "partial" })).toBe(1)
    expect(sample(metrics, "sluice_tokens_total", { model: "blocked", kind: "completion" })).toBe(4)
  })

  it("blocks a unary answer with a 400 content_blocked", async () => {
    tokens = ["my pass", "word"]
    holdAfter = undefined
    const res = await gateway.chat({ model: "blocked", max_tokens: 16, messages: [{ role: "user", content: "hi" }] })
    expect(res.status).toBe(400)
    const body: unknown = await res.json()
    expect(body).toMatchObject({ error: { code: "content_blocked" } })
  })
})
