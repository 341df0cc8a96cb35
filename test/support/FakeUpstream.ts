/**
 * A tiny scripted HTTP server for dialect adapter tests: each route (method + path) answers
 * with a status, headers and body chunks, optionally holding the response open or delaying
 * its headers. It records every request (path, headers, parsed JSON body) and how many
 * responses were closed before they ended, so tests can check what an adapter sent, that
 * it closed the connection, and which side calls (SGLang's /abort_request) it made.
 * Test-only; any dialect's wire is written by the test itself.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo, Socket } from "node:net"

export interface Reply {
  readonly status?: number
  readonly headers?: Record<string, string>
  /** Body pieces, written one `write` each with `gapMs` between them. */
  readonly chunks?: ReadonlyArray<string>
  readonly gapMs?: number
  /** Wait this long before sending headers. */
  readonly headersDelayMs?: number
  /** Do not end the response after the chunks (the client has to leave). */
  readonly holdOpen?: boolean
}

export interface Recorded {
  readonly method: string
  readonly path: string
  readonly headers: IncomingMessage["headers"]
  readonly body: unknown
  /** The body as it arrived. */
  readonly text: string
}

export interface FakeUpstream {
  /** http://127.0.0.1:PORT (no path). */
  readonly url: string
  readonly requests: Array<Recorded>
  /** Responses closed by the client before they ended. */
  readonly closedEarly: () => number
  route: (method: string, path: string, reply: Reply | ((req: Recorded) => Reply)) => void
  readonly close: () => Promise<void>
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export const start = async (): Promise<FakeUpstream> => {
  const routes = new Map<string, Reply | ((req: Recorded) => Reply)>()
  const requests: Array<Recorded> = []
  const sockets = new Set<Socket>()
  let closedEarly = 0

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const parts: Array<Buffer> = []
    for await (const c of req) parts.push(c as Buffer)
    const text = Buffer.concat(parts).toString("utf8")
    let body: unknown = text
    try {
      body = text === "" ? undefined : JSON.parse(text)
    } catch {
      // keep the text
    }
    const path = (req.url ?? "/").split("?")[0]!
    const recorded: Recorded = { method: req.method ?? "GET", path, headers: req.headers, body, text }
    requests.push(recorded)
    const route = routes.get(`${recorded.method} ${path}`)
    if (route === undefined) {
      res.writeHead(404, { "content-type": "text/plain" })
      res.end("no route")
      return
    }
    const reply = typeof route === "function" ? route(recorded) : route
    let gone = false
    res.on("close", () => {
      gone = true
      if (!res.writableEnded) closedEarly++
    })
    if (reply.headersDelayMs) await sleep(reply.headersDelayMs)
    if (gone) return
    res.writeHead(reply.status ?? 200, { "content-type": "application/json", ...reply.headers })
    res.flushHeaders()
    for (const [i, chunk] of (reply.chunks ?? []).entries()) {
      if (i > 0 && reply.gapMs) await sleep(reply.gapMs)
      if (gone) return
      res.write(chunk)
    }
    if (!reply.holdOpen && !gone) res.end()
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy())
  })
  server.on("connection", (s: Socket) => {
    sockets.add(s)
    s.on("close", () => sockets.delete(s))
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    closedEarly: () => closedEarly,
    route: (method, path, reply) => {
      routes.set(`${method} ${path}`, reply)
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    }
  }
}
