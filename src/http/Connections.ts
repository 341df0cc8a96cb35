/**
 * The listener's defences against clients that hold sockets: deadlines for receiving a request,
 * a cap on open connections and one per client address, and the answer to what node:http's
 * parser rejects (`clientError`: a deadline missed, headers too large, bad framing), written
 * on the raw socket in the OpenAI envelope (ErrorResponse.ts renders it).
 *
 * The deadlines are node:http's own (`headersTimeout`, `requestTimeout`, checked every
 * `connectionsCheckingInterval`): they bound *receiving* a request, from its first byte, and
 * stop once it is complete, so a response may stream for as long as it needs. A connection
 * over a cap is closed at accept, before a byte is read (what nginx's `limit_conn` and
 * Node's `maxConnections` do): answering it would mean holding it longer.
 *
 * Owns: the per-address counts and the rejection counters. Must never: touch a request that
 * reached the router, or write on a socket whose response has started (a late deadline there
 * only closes the socket, as node:http itself does).
 */
import { Context, Layer } from "effect"
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from "node:http"
import { Socket } from "node:net"
import type { Duplex } from "node:stream"
import type { ServerPlan } from "../config/Plan.ts"
import { type ListenerRejection, listenerRejectionToWire, rawResponse } from "./ErrorResponse.ts"
import * as Teardowns from "./Teardowns.ts"

export type Rejection =
  | "max_connections"
  | "max_connections_per_address"
  | "headers_timeout"
  | "body_timeout"
  | "headers_too_large"
  | "bad_request"

export const REJECTIONS: ReadonlyArray<Rejection> = [
  "max_connections",
  "max_connections_per_address",
  "headers_timeout",
  "body_timeout",
  "headers_too_large",
  "bad_request"
]

/** What the metrics read: connections open now, and rejections since start for every reason. */
export class Connections extends Context.Service<Connections, {
  readonly open: () => number
  readonly rejected: () => ReadonlyArray<readonly [Rejection, number]>
  /**
   * Closes every socket with no request in progress, including one that has sent nothing
   * yet (node's `closeIdleConnections` leaves those: to node a fresh socket is waiting for
   * its headers, not idle). Draining calls it, since such a socket would otherwise hold
   * shutdown for the whole drain time.
   */
  readonly closeUnused: () => void
}>()("sluice/http/Connections") {
  /** No listener of ours (a test's own server). */
  static readonly none = Layer.succeed(
    Connections,
    Connections.of({ open: () => 0, rejected: () => REJECTIONS.map((r) => [r, 0] as const), closeUnused: () => {} })
  )
}

type Limits = Pick<ServerPlan, "headersTimeoutMs" | "bodyTimeoutMs" | "maxConnections" | "maxConnectionsPerAddress">

/**
 * node:http options for the deadlines. The check runs every quarter of the shorter deadline
 * (between 50 ms and 1 s), so a socket is closed at most that long after its deadline.
 */
export const serverOptions = (limits: Limits): ServerOptions => {
  const deadlines = [limits.headersTimeoutMs, limits.bodyTimeoutMs].filter((ms) => ms > 0)
  const shortest = deadlines.length === 0 ? 4_000 : Math.min(...deadlines)
  return {
    // Longer than the usual load balancer idle timeout (60 s), so the balancer closes first.
    keepAliveTimeout: 65_000,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.bodyTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, Math.max(50, Math.floor(shortest / 4)))
  }
}

const codeOf = (e: Error): string | undefined => {
  const code: unknown = "code" in e ? e.code : undefined
  return typeof code === "string" ? code : undefined
}

const reasonOf = (e: Error): string => {
  const reason: unknown = "reason" in e ? e.reason : undefined
  return typeof reason === "string" && reason !== "" ? reason : e.message
}

/** Installs the caps and the `clientError` answers on `server` (before it listens). */
export const guard = (server: Server, limits: Limits): Connections["Service"] => {
  const rejected = new Map<Rejection, number>()
  const count = (r: Rejection) => rejected.set(r, (rejected.get(r) ?? 0) + 1)
  const perAddress = new Map<string, number>()
  const sockets = new Set<Socket>()
  let open = 0
  /** The unfinished response on each socket: a request whose headers arrived has one until it is sent. */
  const responses = new WeakMap<Duplex, ServerResponse>()

  if (limits.maxConnections > 0) server.maxConnections = limits.maxConnections
  server.on("drop", () => count("max_connections"))

  server.on("connection", (socket: Socket) => {
    const address = socket.remoteAddress ?? ""
    const held = perAddress.get(address) ?? 0
    if (limits.maxConnectionsPerAddress > 0 && held >= limits.maxConnectionsPerAddress) {
      count("max_connections_per_address")
      socket.destroy()
      return
    }
    perAddress.set(address, held + 1)
    open++
    sockets.add(socket)
    // When the socket closes with a response unfinished (a client that left mid-stream),
    // node:http's own close listener fails the request with an "aborted" ECONNRESET error
    // that captures a stack trace, nobody reads it, and it cost ~5% of a mass abort's CPU.
    // Prepended, so traces are off while node's listener runs; back on in ours just below,
    // which node:http's connection listener (the server's first) ran before.
    let limit: number | undefined
    const restore = () => {
      if (limit === undefined) return
      Error.stackTraceLimit = limit
      limit = undefined
    }
    socket.prependOnceListener("close", () => {
      const current = responses.get(socket)
      if (current === undefined || current.writableFinished) return
      limit = Error.stackTraceLimit
      Error.stackTraceLimit = 0
      // node:http's listeners now interrupt the request: its teardown waits for its turn
      Teardowns.clientLeaving()
      // in case a listener in between throws
      process.nextTick(restore)
    })
    socket.once("close", () => {
      restore()
      open--
      sockets.delete(socket)
      const left = (perAddress.get(address) ?? 1) - 1
      if (left > 0) perAddress.set(address, left)
      else perAddress.delete(address)
    })
  })

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket
    responses.set(socket, res)
    // Forgotten once sent. Kept, an idle keep-alive connection held its last response until
    // its next request or its close, and with it (through the platform's close listener on the
    // response) the request's fiber and everything that reached: 9.3 KB of live heap per idle
    // connection, 5.3 KB without (bench/README.md, "Idle keep-alive connections").
    res.once("finish", () => {
      if (responses.get(socket) === res) responses.delete(socket)
    })
  })

  server.on("clientError", (e: Error, socket: Duplex) => {
    const code = codeOf(e)
    const current = responses.get(socket)
    const inRequest = current !== undefined && !current.writableFinished
    let rejection: ListenerRejection | undefined
    if (code === "ERR_HTTP_REQUEST_TIMEOUT") {
      rejection = inRequest
        ? { _tag: "RequestTimeout", phase: "body", afterMs: limits.bodyTimeoutMs }
        : { _tag: "RequestTimeout", phase: "headers", afterMs: limits.headersTimeoutMs }
      count(inRequest ? "body_timeout" : "headers_timeout")
    } else if (code === "HPE_HEADER_OVERFLOW") {
      rejection = { _tag: "HeadersTooLarge" }
      count("headers_too_large")
    } else if (code === "HPE_CHUNK_EXTENSIONS_OVERFLOW") {
      rejection = { _tag: "ChunkExtensionsTooLarge" }
      count("bad_request")
    } else if (code !== undefined && code.startsWith("HPE_")) {
      rejection = { _tag: "MalformedRequest", detail: reasonOf(e) }
      count("bad_request")
    }
    // As node:http does: answer only when no response has started on this socket.
    const started = current !== undefined && current.headersSent && !current.writableFinished
    if (rejection !== undefined && socket.writable && !started) {
      socket.end(rawResponse(listenerRejectionToWire(rejection)))
      if (socket instanceof Socket) socket.destroySoon()
      else socket.destroy()
      return
    }
    socket.destroy()
  })

  const closeUnused = () => {
    for (const socket of sockets) {
      const current = responses.get(socket)
      if (current === undefined || current.writableFinished) socket.destroy()
    }
  }

  return Connections.of({
    open: () => open,
    rejected: () => REJECTIONS.map((r) => [r, rejected.get(r) ?? 0] as const),
    closeUnused
  })
}
