/**
 * The load generator's HTTP/1.1 client: raw `node:net` sockets, pre-built request bytes,
 * and a response parser that does only what timing needs (status line, Content-Length or
 * chunked framing, `connection: close`). One request at a time per connection (no
 * pipelining), keep-alive, a pool that opens connections on demand up to `max`.
 *
 * Why not undici: the generator shares a core with the mock upstream, so its cost per
 * request must stay well below any proxy's; and the streaming figures need to see each
 * socket read as it happened (a body stream may merge reads, which would fake
 * coalescing). Timestamps are `performance.now()` taken at the start of each socket
 * 'data' callback. This module never schedules load: load.mjs does.
 */
import net from "node:net"
import { performance } from "node:perf_hooks"

const CR = 13
const LF = 10

/** Builds the bytes of one request. `headers` are extra lines without CRLF. */
export const requestBytes = (method, path, host, body, headers = []) => {
  const b = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body)
  const lines = [`${method} ${path} HTTP/1.1`, `host: ${host}`, ...headers]
  if (b !== undefined) lines.push(`content-length: ${b.length}`)
  const head = Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1")
  return b === undefined ? head : Buffer.concat([head, b])
}

const parseHead = (text) => {
  const lines = text.split("\r\n")
  const status = Number(lines[0].slice(9, 12))
  let length = -1
  let chunked = false
  let close = false
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]
    const colon = line.indexOf(":")
    if (colon < 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim().toLowerCase()
    if (name === "content-length") length = Number(value)
    else if (name === "transfer-encoding") chunked = value.includes("chunked")
    else if (name === "connection") close = value.includes("close")
  }
  return { status, length, chunked, close }
}

/**
 * One keep-alive connection. `send(bytes, handler)` where handler has
 * `onHead(status, t)`, `onData(buf, t, readId)` (decoded body bytes; only when
 * `handler.wantsBody`), `onEnd(t)`, `onError(err, t)`. All optional.
 */
export class Connection {
  constructor(host, port, onFree, onDead) {
    this.onFree = onFree
    this.onDead = onDead
    this.handler = undefined
    this.dead = false
    this.reads = 0
    this.socket = net.connect({ host, port, noDelay: true })
    this.socket.on("data", (buf) => this.#data(buf))
    this.socket.on("error", (err) => this.#fail(err))
    this.socket.on("close", () => this.#fail(new Error("connection closed")))
  }

  send(bytes, handler) {
    this.handler = handler
    this.head = undefined
    this.headBuf = undefined
    this.state = 0 // 0 head, 1 length body, 2 chunk size, 3 chunk data, 4 chunk data CRLF, 5 trailer
    this.remaining = 0
    this.sizeLine = ""
    this.trailerLine = ""
    this.sentAt = performance.now()
    this.socket.write(bytes)
  }

  /** Destroys the socket now (client abort); the pending handler gets no callback. */
  destroy() {
    this.handler = undefined
    this.dead = true
    this.socket.destroy()
  }

  #fail(err) {
    if (this.dead && this.handler === undefined) return
    this.dead = true
    const h = this.handler
    this.handler = undefined
    this.socket.destroy()
    this.onDead(this)
    if (h !== undefined) h.onError?.(err, performance.now())
  }

  #data(buf) {
    const t = performance.now()
    const readId = ++this.reads
    const h = this.handler
    if (h === undefined) return // bytes after an abort or an unexpected push: ignore
    let off = 0
    if (this.state === 0) {
      const all = this.headBuf === undefined ? buf : Buffer.concat([this.headBuf, buf])
      const end = all.indexOf("\r\n\r\n")
      if (end < 0) {
        this.headBuf = all
        return
      }
      this.headBuf = undefined
      this.head = parseHead(all.toString("latin1", 0, end))
      h.onHead?.(this.head.status, t)
      buf = all
      off = end + 4
      if (this.head.chunked) this.state = 2
      else if (this.head.length >= 0) {
        this.state = 1
        this.remaining = this.head.length
      } else {
        this.#fail(new Error("response without length or chunked framing"))
        return
      }
      if (this.state === 1 && this.remaining === 0) return this.#end(t)
    }
    const n = buf.length
    while (off < n) {
      switch (this.state) {
        case 1: {
          const take = Math.min(this.remaining, n - off)
          if (h.wantsBody) h.onData?.(buf.subarray(off, off + take), t, readId)
          off += take
          this.remaining -= take
          if (this.remaining === 0) return this.#end(t)
          break
        }
        case 2: {
          const lf = buf.indexOf(LF, off)
          if (lf < 0) {
            this.sizeLine += buf.toString("latin1", off, n)
            off = n
            break
          }
          this.sizeLine += buf.toString("latin1", off, lf)
          off = lf + 1
          const size = parseInt(this.sizeLine.trim(), 16)
          this.sizeLine = ""
          if (size === 0) {
            this.state = 5
            this.trailerLine = ""
          } else {
            this.state = 3
            this.remaining = size
          }
          break
        }
        case 3: {
          const take = Math.min(this.remaining, n - off)
          if (h.wantsBody) h.onData?.(buf.subarray(off, off + take), t, readId)
          off += take
          this.remaining -= take
          if (this.remaining === 0) {
            this.state = 4
            this.remaining = 2
          }
          break
        }
        case 4: {
          const take = Math.min(this.remaining, n - off)
          off += take
          this.remaining -= take
          if (this.remaining === 0) this.state = 2
          break
        }
        case 5: {
          // trailers end with an empty line
          const lf = buf.indexOf(LF, off)
          if (lf < 0) {
            this.trailerLine += buf.toString("latin1", off, n)
            off = n
            break
          }
          const line = this.trailerLine + buf.toString("latin1", off, lf)
          off = lf + 1
          this.trailerLine = ""
          if (line === "" || line === "\r") return this.#end(t)
          break
        }
        default:
          off = n
      }
    }
  }

  #end(t) {
    const h = this.handler
    this.handler = undefined
    const close = this.head?.close
    if (close) {
      this.dead = true
      this.socket.destroy()
      this.onDead(this)
    }
    h?.onEnd?.(t, this.head.status)
    if (!close) this.onFree(this)
  }
}

/** A keep-alive pool; requests beyond `max` busy connections wait FIFO (their clock keeps running). */
export class Pool {
  constructor(host, port, max = 1024) {
    this.host = host
    this.port = port
    this.max = max
    this.idle = []
    this.all = new Set()
    this.waiting = []
    this.waited = 0
    this.opened = 0
  }

  get size() {
    return this.all.size
  }

  request(bytes, handler) {
    const conn = this.idle.pop()
    if (conn !== undefined) return conn.send(bytes, handler), conn
    if (this.all.size < this.max) {
      const c = this.#open()
      c.send(bytes, handler)
      return c
    }
    this.waited++
    this.waiting.push([bytes, handler])
    return undefined
  }

  /** Opens `n` connections ahead of the load (so the first requests do not pay for connects). */
  async prewarm(n) {
    const conns = []
    for (let i = 0; i < n && this.all.size < this.max; i++) conns.push(this.#open())
    await Promise.all(conns.map((c) => new Promise((resolve) => {
      if (c.socket.connecting === false) return resolve()
      c.socket.once("connect", resolve)
      c.socket.once("error", resolve)
    })))
    for (const c of conns) if (!c.dead) this.idle.push(c)
  }

  #open() {
    this.opened++
    const c = new Connection(
      this.host,
      this.port,
      (free) => {
        const next = this.waiting.shift()
        if (next !== undefined) free.send(next[0], next[1])
        else this.idle.push(free)
      },
      (dead) => {
        this.all.delete(dead)
        const i = this.idle.indexOf(dead)
        if (i >= 0) this.idle.splice(i, 1)
        // a waiter takes a fresh connection in place of the dead one
        const next = this.waiting.shift()
        if (next !== undefined) this.request(next[0], next[1])
      }
    )
    this.all.add(c)
    return c
  }

  close() {
    for (const c of this.all) c.destroy()
    this.all.clear()
    this.idle = []
    for (const [, h] of this.waiting) h.onError?.(new Error("pool closed"), performance.now())
    this.waiting = []
  }
}

/** One GET with `connection: close` on a fresh socket; resolves the status, or undefined on a socket error. */
export const probe = (host, port, path, timeoutMs = 1000, headers = []) =>
  new Promise((resolve) => {
    const socket = net.connect({ host, port })
    let got = ""
    const done = (status) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(status)
    }
    const timer = setTimeout(() => done(undefined), timeoutMs)
    socket.on("connect", () => socket.write(`GET ${path} HTTP/1.1\r\nhost: ${host}:${port}\r\n${headers.map((h) => h + "\r\n").join("")}connection: close\r\n\r\n`))
    socket.on("data", (b) => {
      got += b.toString("latin1")
      if (got.length >= 12) done(Number(got.slice(9, 12)))
    })
    socket.on("error", () => done(undefined))
    socket.on("close", () => done(got.length >= 12 ? Number(got.slice(9, 12)) : undefined))
  })

export { CR, LF }
