/**
 * A client that leaves while its response streams: node:http fails the request with an
 * "aborted" error on the socket's close. The guard turns stack traces off for that moment only
 * (nobody reads that error; its trace was ~5% of a mass abort's CPU) and back on afterwards.
 */
import { createServer, type IncomingMessage, request } from "node:http"
import type { AddressInfo } from "node:net"
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
