/**
 * Shared helpers for the simulator's wire tests: raw HTTP calls, SSE/NDJSON parsing, polling stats.
 */
import { Effect } from "effect"
import OpenAI from "openai"
import type { RunningSimulator } from "../../src/simulator/Simulator.ts"
import type { EngineStats } from "../../src/simulator/stats.ts"

export const openaiClient = (sim: RunningSimulator) =>
  new OpenAI({ baseURL: `${sim.url}/v1`, apiKey: "sim", maxRetries: 0, timeout: 20_000 })

export interface RawResponse {
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

export const post = (url: string, body: unknown, headers: Record<string, string> = {}): Effect.Effect<RawResponse> =>
  Effect.promise(async () => {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body)
    })
    return { status: res.status, headers: res.headers, text: await res.text() }
  })

export const get = (url: string): Effect.Effect<RawResponse> =>
  Effect.promise(async () => {
    const res = await fetch(url)
    return { status: res.status, headers: res.headers, text: await res.text() }
  })

export const put = (url: string, body: unknown): Effect.Effect<RawResponse> =>
  Effect.promise(async () => {
    const res = await fetch(url, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
    return { status: res.status, headers: res.headers, text: await res.text() }
  })

export interface SseEvent {
  readonly event: string | undefined
  readonly data: string
}

/** Splits an SSE body into events (enough for the simulator's output: one `data:` line per event). */
export const parseSse = (text: string): Array<SseEvent> =>
  text
    .split("\n\n")
    .filter((block) => block.trim().length > 0)
    .map((block) => {
      let event: string | undefined
      const data: Array<string> = []
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7)
        else if (line.startsWith("data: ")) data.push(line.slice(6))
      }
      return { event, data: data.join("\n") }
    })

export const parseNdjson = (text: string): Array<Record<string, unknown>> =>
  text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>)

/** Polls `stats` until `predicate` holds or `timeoutMs` passes; returns the last snapshot. */
export const waitForStats = (
  sim: RunningSimulator,
  predicate: (s: EngineStats) => boolean,
  timeoutMs = 3000
): Effect.Effect<EngineStats> =>
  Effect.gen(function*() {
    const deadline = performance.now() + timeoutMs
    let s = yield* sim.stats
    while (!predicate(s) && performance.now() < deadline) {
      yield* Effect.sleep(5)
      s = yield* sim.stats
    }
    return s
  })
