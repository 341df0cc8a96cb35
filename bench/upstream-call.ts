/**
 * CPU per upstream call, in one process: Sluice's `Upstream.call` + its `readAll` (the unary
 * upstream call without the adapter) and `Upstream.post` + `readAll` (the stream-shaped call,
 * which the unary path used before) against undici's bare `request` + `body.text()`, on the
 * same kind of pool, to a node:http mock in a child process (one JSON answer of ~250 bytes).
 * 5,000 calls per round, 8 at a time, the two alternated; 3 warm-up rounds, then medians of
 * 7. Client-side CPU (`process.cpuUsage`) per call.
 *
 *   npx tsx bench/upstream-call.ts
 */
import { Effect } from "effect"
import { createServer } from "node:http"
import Pool from "undici/lib/dispatcher/pool.js"
import undiciRequest from "undici/lib/api/api-request.js"
import * as Upstream from "../src/backends/Upstream.ts"
import { Unavailable } from "../src/backends/Failure.ts"
import { fork } from "node:child_process"
import type { AddressInfo } from "node:net"

const ANSWER = JSON.stringify({ id: "x", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: "Rivers run to the sea." }, finish_reason: "stop" }], usage: { prompt_tokens: 20, completion_tokens: 6, total_tokens: 26 } })
if (process.argv[2] === "mock") {
  const server = createServer((req, res) => {
    req.resume()
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(ANSWER) })
      res.end(ANSWER)
    })
  })
  server.listen(0, "127.0.0.1", () => process.send!((server.address() as AddressInfo).port))
} else {
  const child = fork(process.argv[1]!, ["mock"], { execArgv: process.execArgv })
  const port: number = await new Promise((r) => child.once("message", r as any))
  const base = `http://127.0.0.1:${port}`
  const body = JSON.stringify({ model: "m", messages: [{ role: "user", content: "Write one short sentence about rivers and the sea." }], max_tokens: 32 })
  const headers = { "content-type": "application/json" }
  const bare = new Pool(base, { connections: 16, pipelining: 1 })
  const up = Upstream.make(`${base}/v1`, { connections: 16, apiKey: undefined, connectTimeoutMs: 5000 })
  const viaBare = async () => { const r = await undiciRequest.call(bare, { method: "POST", path: "/v1/chat/completions", headers, body }); return (await r.body.text()).length }
  const viaSluice = Effect.scoped(Effect.flatMap(up.post("/chat/completions", body, headers, 30_000, () => new Unavailable({ status: undefined, message: "t" })), (res) => Upstream.readAll(res.body, 1 << 20, (e) => new Unavailable({ status: undefined, message: String(e) }))))
  const runSluice = () => Effect.runPromise(viaSluice)
  const onError = (e: unknown) => new Unavailable({ status: undefined, message: String(e) })
  const viaCall = Effect.scoped(Effect.flatMap(up.call("/chat/completions", body, headers, 30_000, () => new Unavailable({ status: undefined, message: "t" }), 1 << 20), (res) => res.readAll(1 << 20, onError)))
  const runCall = () => Effect.runPromise(viaCall)
  const batch = async (f: () => Promise<unknown>, n: number, conc: number) => {
    const c0 = process.cpuUsage(); let i = 0
    await Promise.all(Array.from({ length: conc }, async () => { while (i++ < n) await f() }))
    const c = process.cpuUsage(c0); return (c.user + c.system) / n
  }
  for (let w = 0; w < 3; w++) { await batch(viaBare, 3000, 8); await batch(runSluice, 3000, 8); await batch(runCall, 3000, 8) }
  const rows: Array<[number, number, number]> = []
  for (let r = 0; r < 7; r++) rows.push([await batch(viaBare, 5000, 8), await batch(runSluice, 5000, 8), await batch(runCall, 5000, 8)])
  const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  console.log("bare undici µs/call (whole process, client side):", rows.map((r) => r[0].toFixed(1)).join(" "), "median", med(rows.map((r) => r[0])).toFixed(1))
  console.log("Upstream.post+readAll µs/call:", rows.map((r) => r[1].toFixed(1)).join(" "), "median", med(rows.map((r) => r[1])).toFixed(1))
  console.log("Upstream.call+readAll µs/call:", rows.map((r) => r[2].toFixed(1)).join(" "), "median", med(rows.map((r) => r[2])).toFixed(1))
  child.kill(); process.exit(0)
}
