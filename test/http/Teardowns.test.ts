/**
 * The request fibers' scheduler: a fiber interrupted while a client socket's close is being
 * emitted runs its teardown later (after the socket events waiting behind it), exactly once;
 * any other interruption runs at once, as with effect's own scheduler.
 */
import { Context, Effect, Scheduler } from "effect"
import { createServer, request } from "node:http"
import type { AddressInfo } from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { guard } from "../../src/http/Connections.ts"
import * as Teardowns from "../../src/http/Teardowns.ts"

const limits = { headersTimeoutMs: 0, bodyTimeoutMs: 0, maxConnections: 0, maxConnectionsPerAddress: 0 }

/** A fiber on the request scheduler, suspended forever, that counts its finalizer's runs. */
const suspended = () => {
  const ran = { count: 0 }
  const fiber = Effect.runForkWith(Context.make(Scheduler.Scheduler, Teardowns.scheduler))(
    Effect.never.pipe(Effect.ensuring(Effect.sync(() => ran.count++)))
  )
  return { fiber, ran }
}

const nextTurn = () => new Promise<void>((r) => setImmediate(r))

let close: (() => void) | undefined
afterEach(() => close?.())

describe("Teardowns.scheduler", () => {
  it("runs an interruption at once outside a client's leaving", () => {
    const { fiber, ran } = suspended()
    fiber.interruptUnsafe()
    expect(ran.count).toBe(1)
    expect(fiber.pollUnsafe()).toBeDefined()
  })

  it("defers an interruption while a client leaves, then runs it once", async () => {
    const { fiber, ran } = suspended()
    Teardowns.clientLeaving()
    fiber.interruptUnsafe()
    expect(ran.count).toBe(0)
    await new Promise<void>((r) => process.nextTick(r))
    // a second interruption after the close (the fiber is queued) runs it now, and only once
    const other = suspended()
    other.fiber.interruptUnsafe()
    expect(other.ran.count).toBe(1)
    await nextTurn()
    await nextTurn()
    expect(ran.count).toBe(1)
    expect(fiber.pollUnsafe()).toBeDefined()
  })

  it("defers the teardown of a request whose client left mid-stream (Connections.guard marks the close)", async () => {
    const seen: Array<string> = []
    const server = createServer()
    guard(server, limits)
    let done!: () => void
    const finished = new Promise<void>((r) => done = r)
    server.on("request", (_req, res) => {
      const { fiber, ran } = suspended()
      // what @effect/platform-node's handler does when the response closes unfinished
      res.on("close", () => {
        fiber.interruptUnsafe()
        seen.push(`in close: ${ran.count}`)
        setTimeout(() => {
          seen.push(`later: ${ran.count}`)
          done()
        }, 20)
      })
      res.writeHead(200, { "content-type": "text/event-stream" })
      res.write("data: 1\n\n")
    })
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
    close = () => server.close()
    const { port } = server.address() as AddressInfo
    const req = request({ host: "127.0.0.1", port, method: "POST", path: "/" })
    req.on("error", () => {})
    req.on("response", (res) => res.once("data", () => req.destroy()))
    req.end("{}")
    await finished
    expect(seen).toEqual(["in close: 0", "later: 1"])
  })
})
