/**
 * Upstream.stream, the streamed call on undici's dispatch: chunks come through the answer's
 * `pull` in order; a reader that stops reading stops undici reading the socket (the queue is
 * bounded); when the client's HTTP/1.1 socket goes the engine's connection closes at once,
 * with a reset, before the request's scope closes, without waking the reader; a finished
 * answer's connection is kept; a read that has to wait is bounded by its deadline; a broken
 * body fails the read.
 */
import { Effect, Exit, Fiber, Redacted, Scope } from "effect"
import { HttpServerRequest } from "effect/http"
import { createServer, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Unavailable } from "../../src/backends/Failure.ts"
import * as Upstream from "../../src/backends/Upstream.ts"
import { fakeClient } from "../support/ClientSocket.ts"

const MiB = 1024 * 1024

/** 4 MiB of a counting pattern (byte i is i mod 251), so order and completeness can be checked. */
const PATTERN = Buffer.from(Array.from({ length: 4 * MiB }, (_, i) => i % 251))

interface Seen {
  readonly outcome: Promise<"finished" | "closed">
  /** How the gateway's side left the connection, read once `outcome` settled: a reset (RST) or an end of stream (FIN). */
  readonly leftBy: () => "reset" | "end" | "open"
  /** Bytes the engine had handed to its socket when asked. */
  readonly written: () => number
}

/**
 * An engine whose behaviour is its path: `sse` (an event every 20 ms, endless), `flood` (PATTERN
 * in 16 KiB writes, each after the last drained), `cut` (two events, then the connection is
 * destroyed), `busy` (503 with a text body).
 */
const startEngine = async () => {
  const seen: Array<Seen> = []
  const server: Server = createServer((req, res: ServerResponse) => {
    const path = req.url ?? ""
    let written = 0
    let leftBy: "reset" | "end" | "open" = "open"
    req.socket.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ECONNRESET") leftBy = "reset"
    })
    req.socket.on("end", () => {
      if (leftBy === "open") leftBy = "end"
    })
    seen.push({
      outcome: new Promise((r) => res.on("close", () => r(res.writableFinished ? "finished" : "closed"))),
      leftBy: () => leftBy,
      written: () => written
    })
    req.resume()
    req.on("end", () => {
      if (path.endsWith("/busy")) {
        res.writeHead(503, { "content-type": "text/plain" })
        return void res.end("overloaded, come back later")
      }
      res.writeHead(200, { "content-type": "text/event-stream" })
      if (path.endsWith("/sse")) {
        res.write("data: first\n\n")
        const timer = setInterval(() => res.write("data: more\n\n"), 20)
        res.on("close", () => clearInterval(timer))
      } else if (path.endsWith("/cut")) {
        res.write("data: one\n\n")
        res.write("data: two\n\n")
        setTimeout(() => res.socket?.destroy(), 30)
      } else if (path.endsWith("/flood")) {
        const step = () => {
          while (written < PATTERN.length) {
            const chunk = PATTERN.subarray(written, written + 16 * 1024)
            written += chunk.length
            if (written >= PATTERN.length) return void res.end(chunk)
            if (!res.write(chunk)) return void res.once("drain", step)
          }
        }
        step()
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    last: () => seen[seen.length - 1]!,
    close: () => {
      server.closeAllConnections()
      return new Promise<void>((r) => server.close(() => r()))
    }
  }
}

const failure = (message: string) => new Unavailable({ status: undefined, message })
const readFailure = (e: unknown) => failure(`read: ${(e as { code?: string }).code ?? String(e)}`)

describe("Upstream.stream (the streamed call)", () => {
  let engine: Awaited<ReturnType<typeof startEngine>>
  let pool: Upstream.UpstreamPool

  const stream = (path: string) =>
    pool.stream(`/${path}`, "{}", { "content-type": "application/json" }, 5000, () => failure("headers late"))

  beforeAll(async () => {
    engine = await startEngine()
    pool = Upstream.make(`${engine.url}/v1`, { connections: 4, apiKey: Redacted.make("k"), connectTimeoutMs: 1000 })
  })
  afterAll(async () => {
    await Effect.runPromise(pool.close)
    await engine.close()
  })

  it("stops reading the socket while its reader does not read, and then delivers every byte in order", async () => {
    const scope = Effect.runSync(Scope.make())
    const res = await Effect.runPromise(Scope.provide(stream("flood"), scope))
    const next = res.pull(readFailure)
    await new Promise((r) => setTimeout(r, 300))
    // what came while nobody read: the high-water mark and at most one socket read past it
    const first = (await Effect.runPromise(next()))!
    expect(first.length).toBeLessThanOrEqual(192 * 1024)
    // the engine is held back by the socket (undici stopped reading it), not done
    expect(engine.last().written()).toBeLessThan(PATTERN.length)
    const parts = [first]
    for (;;) {
      const chunk = await Effect.runPromise(next({ ms: 5000, onTimeout: () => failure("late") }))
      if (chunk === null) break
      parts.push(chunk)
    }
    expect(Buffer.concat(parts).equals(PATTERN)).toBe(true)
    expect(await engine.last().outcome).toBe("finished")
    // a finished answer's connection stays open for the next call (kept alive, not reset)
    expect(engine.last().leftBy()).toBe("open")
    await Effect.runPromise(Scope.close(scope, Exit.void))
    expect(pool.open()).toBe(0)
  })

  for (const event of ["end", "error", "close"] as const) {
    it(`closes the upstream when the client's socket emits '${event}', before the request's scope closes, without failing the reader`, async () => {
      const { socket, request } = fakeClient()
      const scope = Effect.runSync(Scope.make())
      const res = await Effect.runPromise(stream("sse").pipe(
        Scope.provide(scope),
        Effect.provideService(HttpServerRequest.HttpServerRequest, request)
      ))
      expect(socket.listenerCount(event)).toBe(1)
      const next = res.pull(readFailure)
      expect((await Effect.runPromise(next()))?.toString()).toContain("first")
      const reader = Effect.runFork(Effect.forever(next()))
      await new Promise((r) => setTimeout(r, 50))
      socket.emit(event, ...(event === "error" ? [Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" })] : []))
      // the engine saw its connection go while the request's scope is still open, reset (no FIN handshake)
      expect(await engine.last().outcome).toBe("closed")
      await new Promise((r) => setImmediate(r))
      expect(engine.last().leftBy()).toBe("reset")
      await new Promise((r) => setTimeout(r, 50))
      expect(reader.pollUnsafe()).toBeUndefined()
      await Effect.runPromise(Fiber.interrupt(reader))
      await Effect.runPromise(Scope.close(scope, Exit.void))
      for (const e of ["end", "error", "close"]) expect(socket.listenerCount(e)).toBe(0)
      expect(pool.open()).toBe(0)
    })
  }

  it("tells a reader still waiting a while after the client left (work that only inherited the request)", async () => {
    const { socket, request } = fakeClient()
    const scope = Effect.runSync(Scope.make())
    const res = await Effect.runPromise(stream("sse").pipe(
      Scope.provide(scope),
      Effect.provideService(HttpServerRequest.HttpServerRequest, request)
    ))
    const next = res.pull(readFailure)
    await Effect.runPromise(next())
    const reader = Effect.runFork(Effect.forever(next()))
    await new Promise((r) => setTimeout(r, 30))
    socket.emit("end")
    const exit = await Effect.runPromise(Fiber.await(reader))
    expect(exit).toStrictEqual(Exit.fail(failure("read: SLUICE_CLIENT_GONE")))
    await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  it("closes the upstream when the scope closes mid-stream", async () => {
    const scope = Effect.runSync(Scope.make())
    const res = await Effect.runPromise(Scope.provide(stream("sse"), scope))
    await Effect.runPromise(res.pull(readFailure)())
    const closed = Date.now()
    await Effect.runPromise(Scope.close(scope, Exit.interrupt(0)))
    expect(await engine.last().outcome).toBe("closed")
    await new Promise((r) => setImmediate(r))
    expect(engine.last().leftBy()).toBe("reset")
    expect(Date.now() - closed).toBeLessThan(1000)
    expect(pool.open()).toBe(0)
  })

  it("fails a read that waits past its deadline, with the deadline's failure", async () => {
    const exit = await Effect.runPromiseExit(Effect.scoped(Effect.flatMap(stream("sse"), (res) => {
      const next = res.pull(readFailure)
      // the first event is there; the next comes in 20 ms, past a 5 ms deadline
      return Effect.andThen(next(), next({ ms: 5, onTimeout: () => failure("idle") }))
    })))
    expect(exit).toStrictEqual(Exit.fail(failure("idle")))
  })

  it("fails the read when the engine's connection breaks mid-stream, after what came before it", async () => {
    const got: Array<string> = []
    const exit = await Effect.runPromiseExit(Effect.scoped(Effect.flatMap(stream("cut"), (res) => {
      const next = res.pull(readFailure)
      return Effect.forever(Effect.flatMap(next({ ms: 2000, onTimeout: () => failure("late") }), (chunk) =>
        chunk === null ? Effect.fail(failure("ended cleanly")) : Effect.sync(() => got.push(chunk.toString()))))
    })))
    expect(got.join("")).toBe("data: one\n\ndata: two\n\n")
    expect(Exit.isFailure(exit)).toBe(true)
    expect(JSON.stringify(exit)).toContain("read: ")
  })

  it("hands a non-2xx answer's body to failWith", async () => {
    const seen: Array<[number, string]> = []
    const exit = await Effect.runPromiseExit(Effect.scoped(Effect.flatMap(stream("busy"), (res) =>
      Upstream.failWith(res, (status, _retryAfter, text) => {
        seen.push([status, text])
        return failure("classified")
      }))))
    expect(exit).toStrictEqual(Exit.fail(failure("classified")))
    expect(seen).toStrictEqual([[503, "overloaded, come back later"]])
  })
})
