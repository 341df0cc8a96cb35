/**
 * Upstream.post and the client's socket: when the HTTP/1.1 socket the request came on ends or
 * closes, the upstream body is destroyed at once, before the request's scope closes (its
 * fiber's interruption and finalizers come later), and its reader is not woken with a
 * failure (the client left, the backend did not fail). Listeners are removed with the scope.
 */
import { Effect, Exit, Fiber, Redacted, Scope } from "effect"
import { HttpServerRequest } from "effect/http"
import { PassThrough } from "node:stream"
import { performance } from "node:perf_hooks"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Unavailable } from "../../src/backends/Failure.ts"
import * as Upstream from "../../src/backends/Upstream.ts"
import { fakeClient } from "../support/ClientSocket.ts"

/** An endless SSE stream; resolves `closed` per request when its socket goes. */
const startEngine = async () => {
  const closes: Array<() => void> = []
  const server: Server = createServer((req, res) => {
    req.resume()
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/event-stream" })
      res.write("data: first\n\n")
      const timer = setInterval(() => res.write("data: more\n\n"), 50)
      res.on("close", () => {
        clearInterval(timer)
        closes.shift()?.()
      })
    })
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    nextClose: () => new Promise<void>((r) => closes.push(r)),
    close: () => new Promise<void>((r) => server.close(() => r()))
  }
}

const readFailure = (e: unknown) => new Unavailable({ status: undefined, message: String(e) })

describe("Upstream and the client's socket", () => {
  let engine: Awaited<ReturnType<typeof startEngine>>
  let pool: Upstream.UpstreamPool

  beforeAll(async () => {
    engine = await startEngine()
    pool = Upstream.make(`${engine.url}/v1`, { connections: 4, apiKey: Redacted.make("k"), connectTimeoutMs: 1000 })
  })
  afterAll(async () => {
    await Effect.runPromise(pool.close)
    await engine.close()
  })

  for (const event of ["end", "error", "close"] as const) {
    it(`closes the upstream when the client's socket emits '${event}', before the request's scope closes, without failing the reader`, async () => {
      const { socket, request } = fakeClient()
      const scope = Effect.runSync(Scope.make())
      const closed = engine.nextClose()
      const res = await Effect.runPromise(
        pool.post("/chat/completions", "{}", { "content-type": "application/json" }, 5000, () => readFailure("late")).pipe(
          Scope.provide(scope),
          Effect.provideService(HttpServerRequest.HttpServerRequest, request)
        )
      )
      expect(socket.listenerCount(event)).toBe(1)
      const next = Upstream.pullBody(res.body, readFailure)
      const first = await Effect.runPromise(next())
      expect(first?.toString()).toContain("first")
      // drain what is buffered, then wait on the body like the relay does
      const reader = Effect.runFork(Effect.forever(next()))
      await new Promise((r) => setTimeout(r, 20))

      socket.emit(event, ...(event === "error" ? [Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" })] : []))
      await closed // the engine saw its connection go while the request's scope is still open
      expect(res.body.destroyed).toBe(true)
      await new Promise((r) => setTimeout(r, 50))
      // the reader is still waiting: only the fiber's interruption ends it
      expect(reader.pollUnsafe()).toBeUndefined()
      await Effect.runPromise(Fiber.interrupt(reader))

      await Effect.runPromise(Scope.close(scope, Exit.void))
      for (const e of ["end", "error", "close"]) expect(socket.listenerCount(e)).toBe(0)
    })
  }

  it("leaves the upstream alone when the client leaves after its response finished", async () => {
    const { socket, response, request } = fakeClient()
    const scope = Effect.runSync(Scope.make())
    const res = await Effect.runPromise(
      pool.post("/chat/completions", "{}", {}, 5000, () => readFailure("late")).pipe(
        Scope.provide(scope),
        Effect.provideService(HttpServerRequest.HttpServerRequest, request)
      )
    )
    // e.g. a backend's own work that inherited an admin request's context
    response.writableFinished = true
    socket.emit("end")
    socket.emit("close")
    await new Promise((r) => setTimeout(r, 50))
    expect(res.body.destroyed).toBe(false)
    const closed = engine.nextClose()
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await closed
  })

  it("fails a reader that is still waiting a while after the client left (work that only inherited the request)", async () => {
    const { socket, request } = fakeClient()
    const scope = Effect.runSync(Scope.make())
    const res = await Effect.runPromise(
      pool.post("/chat/completions", "{}", {}, 5000, () => readFailure("late")).pipe(
        Scope.provide(scope),
        Effect.provideService(HttpServerRequest.HttpServerRequest, request)
      )
    )
    const next = Upstream.pullBody(res.body, readFailure)
    await Effect.runPromise(next())
    const reader = Effect.runFork(Effect.forever(next()))
    await new Promise((r) => setTimeout(r, 20))
    socket.emit("end")
    const exit = await Effect.runPromise(Fiber.await(reader))
    expect(Exit.isFailure(exit)).toBe(true)
    await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  it("leaves a finished body alone and stops listening when the scope closes", async () => {
    const { socket, request } = fakeClient()
    const scope = Effect.runSync(Scope.make())
    await Effect.runPromise(
      pool.post("/chat/completions", "{}", {}, 5000, () => readFailure("late")).pipe(
        Scope.provide(scope),
        Effect.provideService(HttpServerRequest.HttpServerRequest, request)
      )
    )
    expect(socket.listenerCount("end")).toBe(1)
    const closed = engine.nextClose()
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await closed
    for (const e of ["end", "error", "close"]) expect(socket.listenerCount(e)).toBe(0)
    socket.emit("end")
  })
})

describe("pullBody's read deadline", () => {
  const late = (ms: number) => ({ ms, onTimeout: () => new Unavailable({ status: undefined, message: `late ${ms}` }) })
  const failureOf = (exit: Exit.Exit<unknown, unknown>) =>
    Exit.isFailure(exit) ? String((exit.cause.reasons[0] as { error?: { message?: string } })?.error?.message) : "success"

  it("counts every wait from its own start, also when the timer of an answered wait is re-armed", async () => {
    const body = new PassThrough()
    const next = Upstream.pullBody(body, (e) => new Unavailable({ status: undefined, message: String(e) }))
    // answered before its deadline: the timer stays armed for the next wait of the same length
    setTimeout(() => body.write("a"), 60)
    expect((await Effect.runPromise(next(late(150))))?.toString()).toBe("a")
    // a second wait of the same length: it fails a full 150 ms after it began, not 150 ms after the first
    const began = performance.now()
    const second = await Effect.runPromise(Effect.exit(next(late(150))))
    expect(failureOf(second)).toBe("late 150")
    expect(performance.now() - began).toBeGreaterThanOrEqual(140)
    // a wait of another length gets its own deadline
    const third = performance.now()
    expect(failureOf(await Effect.runPromise(Effect.exit(next(late(30)))))).toBe("late 30")
    expect(performance.now() - third).toBeLessThan(140)
    // data that came while nobody waited is read at once; the end is null
    body.write("b")
    expect((await Effect.runPromise(next(late(150))))?.toString()).toBe("b")
    body.end()
    expect(await Effect.runPromise(next(late(150)))).toBeNull()
  })

  it("does not fail an answered wait when its timer fires later, nor a wait that was interrupted", async () => {
    const body = new PassThrough()
    const next = Upstream.pullBody(body, (e) => new Unavailable({ status: undefined, message: String(e) }))
    setTimeout(() => body.write("a"), 5)
    expect((await Effect.runPromise(next(late(40))))?.toString()).toBe("a")
    // the re-armed timer of the answered wait fires into nothing while nobody waits
    await new Promise((r) => setTimeout(r, 80))
    const waiting = Effect.runFork(next(late(40)))
    await Effect.runPromise(Fiber.interrupt(waiting))
    setTimeout(() => body.write("c"), 60)
    // no wait left behind: the interrupted one neither took the chunk nor left a deadline armed
    expect((await Effect.runPromise(next(late(200))))?.toString()).toBe("c")
  })
})
