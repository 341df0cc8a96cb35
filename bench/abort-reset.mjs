/**
 * What closing an aborted upstream connection with a reset (RST) instead of a FIN costs and
 * saves, at the socket level (src/backends/Upstream.ts, `resettingConnector`): N loopback
 * connections to a peer in a child process (the engine's side, pinned to the other CPU when
 * `taskset` is there), then all closed at once, alternating FIN (`destroy()`) and RST
 * (`resetAndDestroy()`) round by round. Per round: the wall time and CPU of this process's
 * close loop, when the peer saw the last close, and the sockets left in TIME_WAIT here.
 *
 *   taskset -c 0 node bench/abort-reset.mjs [N=5000] [rounds=8]
 */
import { execSync, fork } from "node:child_process"
import net from "node:net"
import { median } from "./lib/stats.mjs"

const n = Number(process.argv[2] ?? 5000)
const rounds = Number(process.argv[3] ?? 8)

if (process.env.ABORT_RESET_PEER === "1") {
  let closed = 0
  const server = net.createServer((s) => {
    s.on("error", () => {})
    s.on("close", () => {
      if (++closed === n) process.send({ lastCloseAt: performance.timeOrigin + performance.now() })
    })
  })
  server.listen(0, "127.0.0.1", () => process.send({ port: server.address().port }))
  // the next round's closes are counted from zero
  process.on("message", () => {
    closed = 0
  })
} else {
  const peer = fork(new URL(import.meta.url).pathname, process.argv.slice(2), { env: { ...process.env, ABORT_RESET_PEER: "1" } })
  try {
    execSync(`taskset -p -c 1 ${peer.pid}`, { stdio: "ignore" })
  } catch {
    // not pinned: the figures are noisier, not wrong
  }
  const next = () => new Promise((r) => peer.once("message", r))
  const { port } = await next()
  const timeWait = () => {
    try {
      return Number(execSync(`ss -tan state time-wait '( dport = :${port} )' | tail -n +2 | wc -l`).toString().trim())
    } catch {
      return NaN
    }
  }
  const rows = { fin: [], rst: [] }
  for (let round = 0; round < rounds; round++) {
    for (const mode of round % 2 === 0 ? ["fin", "rst"] : ["rst", "fin"]) {
      peer.send("next round")
      const sockets = []
      await Promise.all(Array.from({ length: n }, () =>
        new Promise((done) => {
          const s = net.connect(port, "127.0.0.1", done)
          s.on("error", () => {})
          sockets.push(s)
        })))
      await new Promise((r) => setTimeout(r, 200))
      const waiting = timeWait()
      const lastClose = next()
      const cpu0 = process.cpuUsage()
      const t0 = performance.timeOrigin + performance.now()
      for (const s of sockets) mode === "rst" ? s.resetAndDestroy() : s.destroy()
      const loopMs = performance.timeOrigin + performance.now() - t0
      const cpu = process.cpuUsage(cpu0)
      const { lastCloseAt } = await lastClose
      await new Promise((r) => setTimeout(r, 300))
      rows[mode].push({ loopMs, cpuMs: (cpu.user + cpu.system) / 1000, peerMs: lastCloseAt - t0, timeWait: timeWait() - waiting })
    }
  }
  peer.kill()
  const f = (x) => x.toFixed(1)
  for (const key of ["loopMs", "cpuMs", "peerMs", "timeWait"]) {
    const fin = rows.fin.map((r) => r[key])
    const rst = rows.rst.map((r) => r[key])
    console.log(`${key.padEnd(8)} fin ${fin.map(f).join(", ")} (median ${f(median(fin))}) | rst ${rst.map(f).join(", ")} (median ${f(median(rst))}) | rst ÷ fin ${(median(rst) / median(fin)).toFixed(2)}×`)
  }
}
