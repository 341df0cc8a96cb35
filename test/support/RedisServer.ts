/**
 * A throwaway redis-server of a test's own (never the machine's shared one), on a free
 * port, without persistence, so a test may stop, freeze or kill it. Fails loudly when
 * `redis-server` is not installed.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"
import type { AddressInfo } from "node:net"
import { Redis } from "ioredis"

export interface RedisServer {
  readonly url: string
  readonly port: number
  readonly process: ChildProcess
  /** SIGSTOP: the server keeps its sockets and its data but answers nothing. */
  readonly freeze: () => void
  /** SIGCONT: it answers again, including what was sent while it was frozen. */
  readonly thaw: () => void
  readonly stop: () => Promise<void>
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as AddressInfo).port
      s.close(() => resolve(port))
    })
  })

export const start = async (): Promise<RedisServer> => {
  const port = await freePort()
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore"
  })
  const failed = new Promise<never>((_, reject) => child.once("error", reject))
  const url = `redis://127.0.0.1:${port}`
  // Ready when it answers PING.
  const deadline = performance.now() + 5000
  for (;;) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null })
    probe.on("error", () => undefined)
    const ok = await Promise.race([probe.connect().then(() => probe.ping()).then(() => true, () => false), failed])
    probe.disconnect()
    if (ok) break
    if (performance.now() > deadline) throw new Error(`redis-server did not start on port ${port}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    url,
    port,
    process: child,
    freeze: () => void child.kill("SIGSTOP"),
    thaw: () => void child.kill("SIGCONT"),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((r) => child.once("exit", r))
      child.kill("SIGCONT")
      child.kill("SIGTERM")
      await exited
    }
  }
}
