/**
 * A client that leaves while its response streams: node:http fails the request with an
 * "aborted" error on the socket's close. The guard turns stack traces off for that moment only
 * (nobody reads that error; its trace was ~5% of a mass abort's CPU) and back on afterwards.
 */
import { Agent, createServer, type IncomingMessage, request } from "node:http"
import type { AddressInfo } from "node:net"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { afterEach, describe, expect, it } from "vitest"
import { guard } from "../../src/http/Connections.ts"

const limits = { headersTimeoutMs: 0, bodyTimeoutMs: 0, maxConnections: 0, maxConnectionsPerAddress: 0 }

const serve = async (onRequest: (req: IncomingMessage) => void) => {
  const server = createServer()
  guard(server, limits)
  server.on("request", (req, res) => {
    onRequest(req)
    res.writeHead(200, { "content-type": "text/event-stream" })
    res.write("data: 1\n\n")
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  return server
}

let close: (() => void) | undefined
afterEach(() => close?.())

describe("Connections.guard, a client leaving mid-stream", () => {
  it("node:http's aborted error carries no stack trace, and traces are back on after the close", async () => {
    const before = Error.stackTraceLimit
    const aborted = new Promise<Error>((resolve) => {
      void serve((req) => req.on("error", resolve)).then((server) => {
        close = () => server.close()
        const { port } = server.address() as AddressInfo
        const client = request({ host: "127.0.0.1", port, method: "POST", path: "/", agent: false }, (res) => {
          res.once("data", () => client.destroy())
          res.on("error", () => {})
        })
        client.on("error", () => {})
        client.end("{}")
      })
    })
    const error = await aborted
    expect((error as { code?: string }).code).toBe("ECONNRESET")
    expect(error.stack ?? "").not.toMatch(/\n\s+at /)
    await new Promise((r) => setImmediate(r))
    expect(Error.stackTraceLimit).toBe(before)
    expect(new Error("x").stack).toMatch(/\n\s+at /)
  })
})

describe("Connections.guard, a keep-alive connection between requests", () => {
  it("does not keep the connection's last response (nor what its listeners hold) once it is sent", async () => {
    setFlagsFromString("--expose-gc")
    const gc: () => void = runInNewContext("gc")
    setFlagsFromString("--no-expose-gc")
    let sent: WeakRef<object> | undefined
    let held: WeakRef<object> | undefined
    const server = createServer()
    guard(server, limits)
    server.on("request", (_req, res) => {
      // What a platform's close listener holds: the request's fiber and all it reached.
      const state = { fiber: new Array(10_000).fill(0) }
      res.on("close", () => state.fiber.length)
      sent = new WeakRef(res)
      held = new WeakRef(state)
      res.end("ok")
    })
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
    close = () => server.close()
    const { port } = server.address() as AddressInfo
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    await new Promise<void>((resolve, reject) => {
      const client = request({ host: "127.0.0.1", port, path: "/", agent }, (res) => {
        res.resume()
        res.on("end", resolve)
      })
      client.on("error", reject)
      client.end()
    })
    // The connection stays open (kept alive by the agent) while the heap is collected.
    await new Promise((r) => setTimeout(r, 50))
    expect(Object.values(agent.freeSockets).flat()).toHaveLength(1)
    for (let i = 0; i < 3; i++) {
      gc()
      await new Promise((r) => setImmediate(r))
    }
    expect(sent?.deref()).toBeUndefined()
    expect(held?.deref()).toBeUndefined()
    agent.destroy()
  })
})
