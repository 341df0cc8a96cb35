/**
 * Issue 9, item 7: slow clients must not hold sockets forever. The listener has a deadline for a request's
 * headers and one for the whole request, a cap on open connections and one per client address; parser-level
 * rejections (431, 408, 400 for bad framing) answer in the OpenAI envelope. None of it may cut a long
 * response stream: the deadlines are for receiving the request.
 *
 * Raw sockets throughout, since an HTTP client library would not trickle bytes. Addresses 127.0.0.2 and
 * 127.0.0.3 (loopback on Linux) stand for other clients.
 */
import { connect, type Socket } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

const HEADERS_MS = 300
const BODY_MS = 600
/** Node checks the deadlines on a timer; the test allows that plus a loaded machine. */
const SLACK_MS = 1500

interface Probe {
  readonly socket: Socket
  /** Everything the server sent. */
  data: string
  /** performance.now() at close, once closed. */
  closedAt: number | undefined
  readonly openedAt: number
  readonly closed: Promise<void>
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("connection-level limits", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway
  let port: number
  const probes: Array<Probe> = []

  const open = (localAddress = "127.0.0.1"): Promise<Probe> =>
    new Promise((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port, localAddress })
      let done: () => void = () => undefined
      const probe: Probe = {
        socket,
        data: "",
        closedAt: undefined,
        openedAt: performance.now(),
        closed: new Promise<void>((r) => (done = r))
      }
      probes.push(probe)
      socket.setEncoding("utf8")
      socket.on("data", (d: string) => (probe.data += d))
      socket.on("error", () => undefined)
      socket.on("close", () => {
        probe.closedAt = performance.now()
        done()
      })
      socket.once("connect", () => resolve(probe))
      socket.once("error", reject)
    })

  /** Writes `chunks` one by one every `everyMs` while the socket is open. */
  const trickle = (p: Probe, chunks: ReadonlyArray<string>, everyMs: number) => {
    let i = 0
    const timer = setInterval(() => {
      if (p.socket.destroyed || i >= chunks.length) return clearInterval(timer)
      p.socket.write(chunks[i++]!)
    }, everyMs)
  }

  const within = async (p: Probe, ms: number) => {
    await Promise.race([p.closed, sleep(ms + 200)])
    return p.closedAt === undefined ? Infinity : p.closedAt - p.openedAt
  }

  const envelopeOf = (raw: string) => {
    const [head, body] = [raw.slice(0, raw.indexOf("\r\n\r\n")), raw.slice(raw.indexOf("\r\n\r\n") + 4)]
    return {
      status: Number(head.split(" ")[1]),
      head: head.toLowerCase(),
      error: (JSON.parse(body) as { error: { message: string; type: string; param: unknown; code: unknown } }).error
    }
  }

  /** A keep-alive connection that completed one request and now sits idle (within the caps, not a deadline). */
  const idleKeepAlive = async (localAddress: string) => {
    const p = await open(localAddress)
    p.socket.write("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    const start = performance.now()
    while (!p.data.includes("\r\n\r\n") && p.closedAt === undefined && performance.now() - start < 5000) await sleep(5)
    return p
  }

  beforeAll(async () => {
    engine = await Fake.start((_model, body) =>
      body["messages"] !== undefined && JSON.stringify(body).includes("long stream")
        ? { tokens: Array.from({ length: 15 }, (_, i) => `t${i} `), gapMs: 100 }
        : {}
    )
    gw = await startGateway(`
server: { headers_timeout: ${HEADERS_MS}ms, body_timeout: ${BODY_MS}ms, max_connections: 30, max_connections_per_address: 12 }
backends:
  - { id: a, url: ${engine.url}, models: [m] }
`)
    port = Number(new URL(gw.url).port)
  })
  afterAll(async () => {
    for (const p of probes) p.socket.destroy()
    await gw?.close()
    await engine?.close()
  })

  it("closes slowloris sockets (headers trickled) at the headers deadline, with a 408 in the envelope", async () => {
    const slow = await Promise.all(Array.from({ length: 8 }, () => open("127.0.0.2")))
    for (const p of slow) trickle(p, ["POST /v1/chat/completions HTTP/1.1\r\n", ...Array.from({ length: 100 }, (_, i) => `X-Slow-${i}: y\r\n`)], 50)
    const silent = await open("127.0.0.2")
    for (const p of [...slow, silent]) expect(await within(p, HEADERS_MS + SLACK_MS)).toBeLessThanOrEqual(HEADERS_MS + SLACK_MS)
    const answer = envelopeOf(slow[0]!.data)
    expect(answer.status).toBe(408)
    expect(answer.head).toContain("connection: close")
    expect(answer.error).toMatchObject({ type: "invalid_request_error", code: "request_timeout", param: null })
    expect(answer.error.message).toContain("headers")
  })

  it("closes slow-body sockets at the body deadline, with a 408 in the envelope", async () => {
    const slow = await Promise.all(Array.from({ length: 8 }, () => open("127.0.0.2")))
    for (const p of slow) {
      p.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{")
      trickle(p, Array.from({ length: 200 }, () => " "), 50)
    }
    for (const p of slow) expect(await within(p, BODY_MS + SLACK_MS)).toBeLessThanOrEqual(BODY_MS + SLACK_MS)
    const answer = envelopeOf(slow[0]!.data)
    expect(answer.status).toBe(408)
    expect(answer.error).toMatchObject({ type: "invalid_request_error", code: "request_timeout" })
    expect(answer.error.message).toContain("body")
  })

  it("answers an oversized header with 431 in the envelope", async () => {
    const p = await open("127.0.0.2")
    p.socket.write(`GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`)
    await within(p, 2000)
    const answer = envelopeOf(p.data)
    expect(answer.status).toBe(431)
    expect(answer.error).toMatchObject({ type: "invalid_request_error", code: "headers_too_large", param: null })
  })

  it("answers bad framing with 400 in the envelope", async () => {
    const p = await open("127.0.0.2")
    p.socket.write("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    await within(p, 2000)
    const answer = envelopeOf(p.data)
    expect(answer.status).toBe(400)
    expect(answer.error).toMatchObject({ type: "invalid_request_error", code: "invalid_http" })
  })

  it("refuses connections beyond the per-address cap, and beyond the total cap, while others are served", async () => {
    // The sockets of the tests above are closed on the client's side; wait until the listener has seen them go.
    expect(await eventually(() => Promise.resolve(gw.connections.open()), (n) => n === 0)).toBe(0)
    const mine = await Promise.all(Array.from({ length: 12 }, () => idleKeepAlive("127.0.0.1")))
    expect(mine.every((p) => p.data.startsWith("HTTP/1.1 200") && p.closedAt === undefined)).toBe(true)
    const extra = await open("127.0.0.1")
    expect(await within(extra, 1000)).toBeLessThan(1000)
    expect(extra.data).toBe("")
    // Another address still gets in, up to the total cap (30 open at most: 12 + 12 + 6).
    const others = await Promise.all([
      ...Array.from({ length: 12 }, () => idleKeepAlive("127.0.0.2")),
      ...Array.from({ length: 6 }, () => idleKeepAlive("127.0.0.3"))
    ])
    expect(others.every((p) => p.data.startsWith("HTTP/1.1 200"))).toBe(true)
    const over = await open("127.0.0.3")
    expect(await within(over, 1000)).toBeLessThan(1000)
    expect(over.data).toBe("")
    for (const p of [...mine, ...others]) p.socket.destroy()
    await Promise.all([...mine, ...others].map((p) => p.closed))
    expect(await eventually(() => Promise.resolve(gw.connections.open()), (n) => n === 0)).toBe(0)
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    for (const reason of ["max_connections_per_address", "max_connections", "headers_timeout", "body_timeout", "headers_too_large", "bad_request"]) {
      expect(metrics).toMatch(new RegExp(`sluice_connections_rejected\\{reason="${reason}"\\} [1-9]`))
    }
  })

  it("never cuts a response stream that outlasts both deadlines", async () => {
    const started = performance.now()
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "a long stream please" }], stream: true })
    })
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(performance.now() - started).toBeGreaterThan(BODY_MS + HEADERS_MS)
    expect(text).toContain("t14")
    expect(text.trim().endsWith("data: [DONE]")).toBe(true)
  })
})
