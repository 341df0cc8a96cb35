/**
 * The simulator's KV-cache events (`GET /kv_events`): vLLM's BlockStored / BlockRemoved / AllBlocksCleared with
 * sequence numbers, block hashes the gateway can compute from the prompt (domain/KvBlocks.ts), evictions under
 * a small cache, clears on an engine reset, and replay from a sequence number.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { decodeLine, type KvEventBatch } from "../../src/api/KvEvents.ts"
import { blockHashes, rootHash } from "../../src/domain/KvBlocks.ts"
import { KvEventLog, MAX_PENDING } from "../../src/simulator/engine/kvEvents.ts"
import * as Simulator from "../../src/simulator/Simulator.ts"
import { chatPromptTokens } from "../../src/simulator/tokens.ts"
import { post } from "./helpers.ts"

const MODEL = "kv-events-model"
const options: Simulator.SimulatorOptions = {
  profile: "llama-3.1-8b-fp8-h100",
  model: MODEL,
  timeScale: 50,
  jitter: 0,
  kvBlocks: 64
}

/** Reads the NDJSON stream in the background; `batches` fills as lines arrive. */
const subscribe = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const controller = new AbortController()
      const res = await fetch(url, { signal: controller.signal })
      const batches: Array<KvEventBatch> = []
      const reader = res.body!.getReader()
      const decoder = new TextDecoder()
      let buffered = ""
      void (async () => {
        try {
          for (;;) {
            const { done, value } = await reader.read()
            if (done) return
            buffered += decoder.decode(value, { stream: true })
            let nl: number
            while ((nl = buffered.indexOf("\n")) >= 0) {
              const line = buffered.slice(0, nl)
              buffered = buffered.slice(nl + 1)
              batches.push(Option.getOrThrow(decodeLine(line)))
            }
          }
        } catch {
          // aborted
        }
      })()
      return { res, batches, controller }
    }),
    (s) => Effect.sync(() => s.controller.abort())
  )

const waitFor = (predicate: () => boolean, timeoutMs = 5000) =>
  Effect.gen(function*() {
    const deadline = performance.now() + timeoutMs
    while (!predicate() && performance.now() < deadline) yield* Effect.sleep(10)
    assert.isTrue(predicate(), "condition not met in time")
  })

const chat = (sim: Simulator.RunningSimulator, content: string) =>
  post(`${sim.url}/v1/chat/completions`, {
    model: MODEL,
    messages: [{ role: "user", content }],
    max_tokens: 1
  })

const stored = (batches: ReadonlyArray<KvEventBatch>): Array<number> =>
  batches.flatMap((b) => b.events.flatMap((e) => (e.type === "BlockStored" ? [...e.block_hashes] : [])))
const removed = (batches: ReadonlyArray<KvEventBatch>): Array<number> =>
  batches.flatMap((b) => b.events.flatMap((e) => (e.type === "BlockRemoved" ? [...e.block_hashes] : [])))

const text = (i: number) => `Document ${i}: ` + "the river keeps its own counsel in the valley below. ".repeat(20)

describe("simulator KV events", () => {
  it.live("BlockStored carries the chained hashes of the prompt's full blocks, as the gateway computes them", () =>
    Effect.scoped(Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      const sub = yield* subscribe(`${sim.url}/kv_events`)
      expect(sub.res.headers.get("content-type")).toBe("application/x-ndjson")
      expect(sub.res.headers.get("x-kv-events-epoch")).toBeTruthy()
      const r = yield* chat(sim, text(1))
      expect(r.status).toBe(200)
      const tokens = chatPromptTokens([{ role: "user", content: text(1) }])
      const expected = blockHashes(tokens, 16, 1 << 20, rootHash(MODEL))
      yield* waitFor(() => stored(sub.batches).length >= expected.length)
      expect(stored(sub.batches).slice(0, expected.length)).toEqual([...expected])
      const first = sub.batches.flatMap((b) => b.events).find((e) => e.type === "BlockStored")!
      assert(first.type === "BlockStored")
      expect(first.parent_block_hash).toBeNull()
      expect(first.block_size).toBe(16)
      expect(first.token_ids.slice(0, 16)).toEqual([...tokens.slice(0, 16)])
      // sequence numbers: 0, 1, 2, … without gaps
      sub.batches.forEach((b, i) => expect(b.seq).toBe(i))
    })))

  it.live("a small cache evicts: BlockRemoved names blocks stored earlier; replay from `since` resends only later batches", () =>
    Effect.scoped(Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      const sub = yield* subscribe(`${sim.url}/kv_events`)
      // 64 blocks of 16 tokens; each prompt is ≈ 13 blocks: six distinct prompts must evict.
      for (let i = 0; i < 6; i++) expect((yield* chat(sim, text(i))).status).toBe(200)
      yield* waitFor(() => removed(sub.batches).length > 0)
      const storedSet = new Set(stored(sub.batches))
      for (const h of removed(sub.batches)) expect(storedSet.has(h)).toBe(true)
      const last = sub.batches[sub.batches.length - 1]!.seq
      const replay = yield* subscribe(`${sim.url}/kv_events?since=${last - 2}`)
      yield* waitFor(() => replay.batches.length >= 2)
      expect(replay.batches.map((b) => b.seq)).toEqual([last - 1, last])
      expect(replay.res.headers.get("x-kv-events-epoch")).toBe(sub.res.headers.get("x-kv-events-epoch"))
    })))

  it.live("an engine reset (admin crash) publishes AllBlocksCleared, kept for replay", () =>
    Effect.scoped(Effect.gen(function*() {
      const sim = yield* Simulator.start(options)
      expect((yield* chat(sim, text(7))).status).toBe(200)
      const live = yield* subscribe(`${sim.url}/kv_events`)
      yield* waitFor(() => stored(live.batches).length > 0)
      expect((yield* post(`${sim.url}/admin/crash`, { mode: "reset" })).status).toBe(202)
      const sub = yield* subscribe(`${sim.url}/kv_events?since=-1`)
      yield* waitFor(() => sub.batches.some((b) => b.events.some((e) => e.type === "AllBlocksCleared")))
    })))
})

describe("KvEventLog", () => {
  it("merges consecutive removals, keeps order, and collapses to AllBlocksCleared past its bound", () => {
    const log = new KvEventLog(16)
    log.stored([1, 2], null, [])
    log.removed(5)
    log.removed(6)
    log.stored([3], 2, [])
    log.removed(7)
    expect(log.drain()).toEqual([
      { type: "BlockStored", block_hashes: [1, 2], parent_block_hash: null, token_ids: [], block_size: 16, lora_id: null, medium: "GPU" },
      { type: "BlockRemoved", block_hashes: [5, 6], medium: "GPU" },
      { type: "BlockStored", block_hashes: [3], parent_block_hash: 2, token_ids: [], block_size: 16, lora_id: null, medium: "GPU" },
      { type: "BlockRemoved", block_hashes: [7], medium: "GPU" }
    ])
    expect(log.drain()).toBeUndefined()
    for (let i = 0; i <= MAX_PENDING; i++) log.stored([i], null, [])
    expect(log.drain()).toEqual([{ type: "AllBlocksCleared" }])
  })
})
