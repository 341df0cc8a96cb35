/**
 * Upstream.call, the unary call on undici's dispatch: the body is held in memory as it
 * arrives, capped; every way an attempt ends before its answer is whole (the scope closing in
 * either phase, a deadline, the cap, the client's socket going) closes the engine's connection,
 * so the engine stops; and the pool's `open` count comes back to zero.
 */
import { Effect, Exit, Fiber, Redacted, Scope } from "effect"
import { HttpServerRequest } from "effect/http"
import fc from "fast-check"
import { createServer, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ResponseTooLarge, Unavailable } from "../../src/backends/Failure.ts"
import * as Upstream from "../../src/backends/Upstream.ts"
import { fakeClient } from "../support/ClientSocket.ts"

const ANSWER = JSON.stringify({ id: "x", choices: [{ message: { content: "Rivers run to the sea." } }] })

interface Seen {
  readonly path: string
  /** Resolves when the engine's response ends: "finished" (sent whole) or "closed" (the connection went first). */
  readonly outcome: Promise<"finished" | "closed">
}

/**
 * An engine whose behaviour is its path: `ok` (the answer in three chunks 10 ms apart), `big`
 * (256 KiB), `stall-body` (headers and half a body, then nothing), `stall-head` (nothing),
 * `slow` (the answer in ten chunks 15 ms apart), `busy` (429 with a JSON error and retry-after).
 */
const startEngine = async () => {
  const seen: Array<Seen> = []
  const timers = new Set<NodeJS.Timeout>()
  const later = (ms: number, f: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t)
      f()
    }, ms)
    timers.add(t)
  }
  const chunked = (res: ServerResponse, parts: Array<string>, gapMs: number) => {
    res.writeHead(200, { "content-type": "application/json" })
    const step = (i: number) => {
      if (res.destroyed) return
      if (i === parts.length - 1) return void res.end(parts[i])
      res.write(parts[i])
      later(gapMs, () => step(i + 1))
    }
    step(0)
  }
  const server: Server = createServer((req, res) => {
    const path = req.url ?? ""
    seen.push({
      path,
      outcome: new Promise((r) => res.on("close", () => r(res.writableFinished ? "finished" : "closed")))
    })
    req.resume()
    req.on("end", () => {
      if (path.endsWith("/ok")) chunked(res, [ANSWER.slice(0, 10), ANSWER.slice(10, 30), ANSWER.slice(30)], 10)
      else if (path.endsWith("/slow")) chunked(res, Array.from({ length: 10 }, (_, i) => ANSWER.slice(i * 7, i === 9 ? undefined : (i + 1) * 7)), 15)
      else if (path.endsWith("/big")) chunked(res, Array.from({ length: 8 }, () => "x".repeat(32 * 1024)), 10)
      else if (path.endsWith("/stall-body")) {
        res.writeHead(200, { "content-type": "application/json" })
        res.write(ANSWER.slice(0, 20))
      } else if (path.endsWith("/busy")) {
        res.writeHead(429, { "content-type": "application/json", "retry-after": "3" })
        res.end(JSON.stringify({ error: { message: "slow down", type: "rate_limit" } }))
      }
      // stall-head: no answer
    })
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    last: () => seen[seen.length - 1]!,
    close: () => {
      for (const t of timers) clearTimeout(t)
      server.closeAllConnections()
      return new Promise<void>((r) => server.close(() => r()))
    }
  }
}

const failure = (message: string) => new Unavailable({ status: undefined, message })
const readFailure = (e: unknown) => failure(`read: ${String(e)}`)
const within = (ms: number) => ({ ms, onTimeout: () => failure("body late") })

describe("Upstream.call (the unary call)", () => {
  let engine: Awaited<ReturnType<typeof startEngine>>
  let pool: Upstream.UpstreamPool

  const call = (path: string, headersMs = 5000, maxBytes = 1 << 20) =>
    pool.call(`/${path}`, "{}", { "content-type": "application/json" }, headersMs, () => failure("headers late"), maxBytes)

  beforeAll(async () => {
    engine = await startEngine()
    pool = Upstream.make(`${engine.url}/v1`, { connections: 4, apiKey: Redacted.make("k"), connectTimeoutMs: 1000 })
  })
  afterAll(async () => {
    await Effect.runPromise(pool.close)
    await engine.close()
  })

  it("reads a body that comes in several chunks whole, and counts the call open until its scope closes", async () => {
    const scope = Effect.runSync(Scope.make())
    const res = await Effect.runPromise(Scope.provide(call("ok"), scope))
    expect(res.status).toBe(200)
    expect(Upstream.header(res.headers, "content-type")).toBe("application/json")
    expect(pool.open()).toBe(1)
    const body = await Effect.runPromise(res.readAll(1 << 20, readFailure, within(5000)))
    expect(body.toString()).toBe(ANSWER)
    expect(await engine.last().outcome).toBe("finished")
    await Effect.runPromise(Scope.close(scope, Exit.void))
    expect(pool.open()).toBe(0)
  })

  it("fails a body past the call's cap with ResponseTooLarge and closes that connection", async () => {
    const exit = await Effect.runPromiseExit(Effect.scoped(Effect.flatMap(call("big", 5000, 64 * 1024), (res) => res.readAll(1 << 20, readFailure))))
    // the cap in force is the call's, the smaller of the two
    expect(exit).toStrictEqual(Exit.fail(new ResponseTooLarge({ limit: 64 * 1024 })))
    expect(await engine.last().outcome).toBe("closed")
    expect(pool.open()).toBe(0)
  })

  it("applies a read's own smaller cap (an error body's 64 KiB) to bytes that came before it asked", async () => {
    const exit = await Effect.runPromiseExit(Effect.scoped(Effect.flatMap(call("big"), (res) =>
      // let a chunk arrive first
      Effect.andThen(Effect.sleep(5), res.readAll(1024, readFailure)))))
    expect(exit).toStrictEqual(Exit.fail(new ResponseTooLarge({ limit: 1024 })))
  })

  it("fails a body that stops coming with the read's deadline, and closes that connection", async () => {
    const started = Date.now()
    const exit = await Effect.runPromiseExit(Effect.scoped(Effect.flatMap(call("stall-body"), (res) => res.readAll(1 << 20, readFailure, within(150)))))
    expect(exit).toStrictEqual(Exit.fail(failure("body late")))
    expect(Date.now() - started).toBeLessThan(1000)
    expect(await engine.last().outcome).toBe("closed")
    expect(pool.open()).toBe(0)
  })

  it("fails with the caller's headers deadline on time (not undici's coarse timer), and closes that connection", async () => {
    const started = Date.now()
    const exit = await Effect.runPromiseExit(Effect.scoped(call("stall-head", 150)))
    expect(exit).toStrictEqual(Exit.fail(failure("headers late")))
    expect(Date.now() - started).toBeLessThan(900)
    expect(await engine.last().outcome).toBe("closed")
    expect(pool.open()).toBe(0)
  })

  it("hands a non-2xx answer's body to failWith", async () => {
    const seen: Array<[number, string | undefined, string]> = []
    const exit = await Effect.runPromiseExit(Effect.scoped(Effect.flatMap(call("busy"), (res) =>
      Upstream.failWith(res, (status, retryAfter, text) => {
        seen.push([status, retryAfter, text])
        return failure("classified")
      }, within(1000)))))
    expect(exit).toStrictEqual(Exit.fail(failure("classified")))
    expect(seen).toStrictEqual([[429, "3", JSON.stringify({ error: { message: "slow down", type: "rate_limit" } })]])
  })

  it("aborts a call still waiting for its headers when the fiber is interrupted", async () => {
    const fiber = Effect.runFork(Effect.scoped(call("stall-head")))
    await new Promise((r) => setTimeout(r, 50))
    expect(pool.open()).toBe(1)
    const interrupted = Date.now()
    await Effect.runPromise(Fiber.interrupt(fiber))
    expect(await engine.last().outcome).toBe("closed")
    // at once, not when the 5 s headers deadline would have ended it anyway
    expect(Date.now() - interrupted).toBeLessThan(1000)
    expect(pool.open()).toBe(0)
  })

  it("closes the upstream when the client's socket ends mid-body, before the scope closes, without waking the reader", async () => {
    const { socket, request } = fakeClient()
    const scope = Effect.runSync(Scope.make())
    const res = await Effect.runPromise(call("stall-body").pipe(
      Scope.provide(scope),
      Effect.provideService(HttpServerRequest.HttpServerRequest, request)
    ))
    expect(socket.listenerCount("end")).toBe(1)
    const reader = Effect.runFork(res.readAll(1 << 20, readFailure, within(5000)))
    await new Promise((r) => setTimeout(r, 20))
    socket.emit("end")
    expect(await engine.last().outcome).toBe("closed")
    await new Promise((r) => setTimeout(r, 50))
    // the client left, the backend did not fail: only the fiber's interruption ends the reader
    expect(reader.pollUnsafe()).toBeUndefined()
    await Effect.runPromise(Fiber.interrupt(reader))
    await Effect.runPromise(Scope.close(scope, Exit.void))
    for (const e of ["end", "error", "close"]) expect(socket.listenerCount(e)).toBe(0)
    expect(pool.open()).toBe(0)
  })

  it("property: wherever the scope closes, the engine's answer is finished or its connection closed, and nothing stays open", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 200 }), fc.boolean(), async (closeAfterMs, read) => {
        const before = engine.seen.length
        const scope = Effect.runSync(Scope.make())
        const fiber = Effect.runFork(Scope.provide(
          Effect.flatMap(call("slow"), (res) => read ? res.readAll(1 << 20, readFailure, within(5000)) : Effect.never),
          scope
        ))
        await new Promise((r) => setTimeout(r, closeAfterMs))
        await Effect.runPromise(Fiber.interrupt(fiber))
        await Effect.runPromise(Scope.close(scope, Exit.void))
        expect(pool.open()).toBe(0)
        // the request may not have reached the engine at all when the scope closed at once
        if (engine.seen.length > before) {
          const outcome = await engine.seen[before]!.outcome
          if (closeAfterMs < 100) expect(outcome).toBe("closed")
        }
      }),
      { numRuns: 15 }
    )
  })
})
