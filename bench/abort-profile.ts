/**
 * The gateway's CPU for a mass abort, in process: the real gateway graph (test/support/Gateway.ts)
 * in this process, a fake engine and the clients in a child process. N streams are opened, each
 * gets its first token (the engine then holds it), the child destroys every client socket at
 * once and reports when the engine has seen every upstream close. This process's CPU from the
 * destroy to the last upstream close is the gateway's (plus its idle event loop). Run it under
 * `--cpu-prof` for where it goes.
 *
 *   npx tsx bench/abort-profile.ts [N=2000] [rounds=3] [root=.]
 *
 * `root` is a checkout of Sluice whose src/ and test/support/ are used (e.g. a "before" worktree).
 * ABORT_PROFILE_OUT=file.cpuprofile profiles the gateway's process (inspector) from the destroy to
 * the last request's end, each round (the last round's profile is kept).
 */
import { fork } from "node:child_process"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"

const n = Number(process.argv[2] ?? 2000)
const rounds = Number(process.argv[3] ?? 3)
const root = resolve(process.argv[4] ?? ".")

if (process.env["ABORT_PROFILE_CHILD"] === "1") {
  const Fake = await import(pathToFileURL(`${root}/test/support/FakeEngine.ts`).href)
  const { request } = await import("node:http")
  const engine = await Fake.start(() => ({ tokens: ["a", "b"], holdAfter: 1 }))
  process.send!({ url: engine.url })
  process.on("message", async (m: { gateway: string; n: number }) => {
    const target = new URL(m.gateway)
    const reqs: Array<import("node:http").ClientRequest> = []
    let first = 0
    await new Promise<void>((done) => {
      for (let i = 0; i < m.n; i++) {
        const body = JSON.stringify({ model: "m", messages: [{ role: "user", content: `abort ${i}` }], stream: true })
        const r = request({ host: target.hostname, port: target.port, method: "POST", path: "/v1/chat/completions", agent: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
          res.once("data", () => { if (++first === m.n) done() })
          res.on("error", () => {})
        })
        r.on("error", () => {})
        r.end(body)
        reqs.push(r)
      }
    })
    process.send!({ ready: true })
    await new Promise((r) => setTimeout(r, 200))
    const t0 = performance.now()
    process.send!({ destroying: true })
    for (const r of reqs) r.destroy()
    while (engine.active() > 0) await new Promise((r) => setTimeout(r, 1))
    process.send!({ closedMs: performance.now() - t0 })
  })
} else {
  const { startGateway } = await import(pathToFileURL(`${root}/test/support/Gateway.ts`).href)
  const child = fork(new URL(import.meta.url).pathname, process.argv.slice(2), { env: { ...process.env, ABORT_PROFILE_CHILD: "1" }, execArgv: process.execArgv })
  const next = () => new Promise<any>((r) => child.once("message", r))
  const { url } = await next()
  const gw = await startGateway(`
backends:
  - id: a
    url: ${url}
    models: [m]
    max_concurrency: ${n + 10}
timeouts: { first_token: 30s, idle: 60s, queue: 10s }
`)
  const out = process.env["ABORT_PROFILE_OUT"]
  const inspector = out === undefined ? undefined : new (await import("node:inspector/promises")).Session()
  if (inspector !== undefined) {
    inspector.connect()
    await inspector.post("Profiler.enable")
    await inspector.post("Profiler.setSamplingInterval", { interval: 100 })
  }
  for (let round = 0; round < rounds; round++) {
    child.send({ gateway: gw.url, n })
    await next() // every stream has its first chunk
    if (inspector !== undefined) await inspector.post("Profiler.start")
    await next() // destroying
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    const { closedMs } = await next()
    const cpu = process.cpuUsage(cpu0)
    // then until every request has finished its teardown (settlement, ledger, metrics)
    while (gw.lifecycle.state.inFlight > 0) await new Promise((r) => setTimeout(r, 1))
    const all = process.cpuUsage(cpu0)
    const allMs = performance.now() - t0
    if (inspector !== undefined) {
      const { profile } = await inspector.post("Profiler.stop")
      ;(await import("node:fs")).writeFileSync(out!, JSON.stringify(profile))
    }
    const ms = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000
    await new Promise((r) => setTimeout(r, 1000))
    console.log(`${root} ×${n} round ${round + 1}: CPU destroy → last upstream close ${ms(cpu).toFixed(0)} ms (after ${closedMs.toFixed(0)} ms), → all requests finished ${ms(all).toFixed(0)} ms (${(ms(all) * 1000 / n).toFixed(0)} µs/stream, after ${allMs.toFixed(0)} ms)`)
  }
  child.kill()
  await gw.close()
}
