/**
 * The runtime floor: the least a Node proxy can do for the same traffic. A raw
 * `node:http` server reads the request body, forwards it over an `undici` Pool, and
 * streams the answer back with backpressure (`stream.pipeline`). When the client goes
 * away (`res` closes before it finished) the upstream request is aborted, before or
 * after the upstream's headers. No JSON is parsed; hop-by-hop headers are dropped.
 *
 *   FLOOR_UPSTREAM=http://127.0.0.1:9000 HOST=127.0.0.1 PORT=8081 node bench/floor-proxy.mjs
 *
 * Plain JavaScript, no bundle, no framework. It owns nothing but its sockets and must
 * stay this small: any feature added here raises the floor every ratio is measured against.
 */
import http from "node:http"
import { pipeline } from "node:stream"
import { Pool } from "undici"

const upstream = process.env.FLOOR_UPSTREAM ?? "http://127.0.0.1:9000"
const host = process.env.HOST ?? "127.0.0.1"
const port = Number(process.env.PORT ?? 8081)
const connections = Number(process.env.FLOOR_CONNECTIONS ?? 10000)

const pool = new Pool(upstream, {
  connections,
  pipelining: 1,
  keepAliveTimeout: 30_000,
  headersTimeout: 60_000,
  bodyTimeout: 0
})

const HOP = new Set([
  "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"
])

const forwardHeaders = (from) => {
  const out = {}
  for (const name in from) if (!HOP.has(name)) out[name] = from[name]
  return out
}

const server = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
  const chunks = []
  req.on("data", (c) => chunks.push(c))
  req.on("end", () => {
    const body = chunks.length === 0 ? null : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
    const abort = new AbortController()
    res.on("close", () => {
      if (!res.writableFinished) abort.abort()
    })
    pool.request({
      method: req.method,
      path: req.url,
      headers: forwardHeaders(req.headers),
      body,
      signal: abort.signal
    }).then(
      ({ statusCode, headers, body: upstreamBody }) => {
        if (res.destroyed) return upstreamBody.destroy()
        const out = forwardHeaders(headers)
        if (headers["content-length"] !== undefined) out["content-length"] = headers["content-length"]
        res.writeHead(statusCode, out)
        pipeline(upstreamBody, res, () => {})
      },
      () => {
        if (!res.headersSent && !res.destroyed) res.writeHead(502, { "content-type": "application/json" }).end('{"error":"upstream"}')
        else res.destroy()
      }
    )
  })
})

server.listen(port, host)

const stop = () => {
  server.close()
  server.closeAllConnections()
  pool.destroy().finally(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
