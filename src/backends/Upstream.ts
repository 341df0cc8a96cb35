/**
 * HTTP plumbing shared by every dialect: one undici pool per backend endpoint, requests bound
 * to the attempt's scope, and reads of their bodies.
 *
 * Owns the sockets. Inference calls (`call` for unary answers, `stream` for streams) go
 * through undici's `dispatch` with a handler of Sluice's own (`Call`): no promise, no Node
 * stream per body; the body is held (unary, capped) or queued for the reader's `pull`
 * (streams, bounded by pausing undici). The backend actor's own traffic (probes, metrics
 * scrapes, the KV-event stream, SGLang's abort) uses `post`/`getFromOrigin`, which hand over
 * undici's body stream. Closing the attempt's scope aborts an unfinished request, which makes
 * undici close that connection, so the engine sees the client leave. When the request came
 * over an HTTP/1.1 socket, the call is also aborted the moment that socket ends or closes (see
 * `onClientGone`), before the request's fiber is interrupted and its finalizers (settlement,
 * accounting, metrics) run. It never interprets bodies: dialect files do that.
 */
import { Clock, Context, Effect, Exit, Option, Redacted, Scope } from "effect"
import { HttpServerRequest } from "effect/http"
import type { IncomingMessage, ServerResponse } from "node:http"
import type { Readable } from "node:stream"
// undici's pool and its request call alone, not the package's index: the index also loads
// fetch, WebSocket, the cache, proxy and mock agents and every other API (~0.4 MB of code to
// compile on every start; see bench/README.md, round 2, start-up). Typed in undici-lib.d.ts.
import Pool from "undici/lib/dispatcher/pool.js"
import undiciRequest from "undici/lib/api/api-request.js"
import buildConnector from "undici/lib/core/connect.js"
import type { buildConnector as BuildConnector, Dispatcher } from "undici"
import type { Socket } from "node:net"
import * as Bodies from "../domain/Bodies.ts"
import type { ReadDeadline } from "./Contract.ts"
import { ConnectTimeout, type FailureReason, ResponseTooLarge, Unavailable } from "./Failure.ts"

export interface UpstreamResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  readonly body: Readable
}

/**
 * A unary answer whose headers came: its body arrives into memory as undici reads it (no
 * stream object, no reader to wake per chunk), capped from the start at the call's `maxBytes`.
 */
export interface UnaryUpstreamResponse {
  readonly status: number
  readonly headers: UpstreamResponse["headers"]
  /**
   * The whole body once it has all come, at most `limit` bytes (≤ the call's `maxBytes`): past
   * it the request is aborted (that connection closes) and the read fails with
   * `ResponseTooLarge`. A body that breaks fails with `onError`; with `within`, one not complete
   * after `within.ms` fails with `within.onTimeout()` and the request is aborted.
   */
  readonly readAll: (limit: number, onError: (e: unknown) => FailureReason, within?: ReadDeadline) => Effect.Effect<Buffer, FailureReason>
}

/**
 * A streamed answer whose headers came: its chunks are queued as undici reads them (no stream
 * object) and pulled with `pull`; past `STREAM_HIGH_WATER` queued bytes undici stops reading
 * the socket until the reader catches up. A non-2xx answer's body is read with `readAll`.
 */
export interface StreamingUpstreamResponse extends UnaryUpstreamResponse {
  /**
   * The reader of the body: each call gives what has come since the last (one chunk, or those
   * queued joined), or null at the end; a break fails with `onError`; with `within`, a read that
   * has to wait fails with `within.onTimeout()` after `within.ms` (one timer per body, re-armed).
   */
  readonly pull: (onError: (e: unknown) => FailureReason) => (within?: ReadDeadline) => Effect.Effect<Buffer | null, FailureReason>
}

export interface UpstreamPool {
  readonly origin: string
  /** The path prefix of the base URL ("/v1"). */
  readonly basePath: string
  readonly apiKey: Redacted.Redacted<string> | undefined
  /**
   * Sends a POST bound to the current scope. `headersTimeoutMs` bounds the wait for the
   * response headers; `onHeadersTimeout` names that failure (a stream's first-token
   * deadline, a unary call's total deadline).
   */
  readonly post: (
    path: string,
    body: Uint8Array | string,
    headers: Record<string, string>,
    headersTimeoutMs: number,
    onHeadersTimeout: () => FailureReason
  ) => Effect.Effect<UpstreamResponse, FailureReason, Scope.Scope>
  /**
   * A POST for a unary answer, bound to the current scope like `post`, whose body is held in
   * memory as it arrives (at most `maxBytes`; past it the request is aborted) rather than
   * handed over as a stream: the non-streaming hot path.
   */
  readonly call: (
    path: string,
    body: Uint8Array | string,
    headers: Record<string, string>,
    headersTimeoutMs: number,
    onHeadersTimeout: () => FailureReason,
    maxBytes: number
  ) => Effect.Effect<UnaryUpstreamResponse, FailureReason, Scope.Scope>
  /**
   * A POST for a streamed answer, bound to the current scope like `post`, read through the
   * answer's `pull` rather than a Node stream: the streaming hot path.
   */
  readonly stream: (
    path: string,
    body: Uint8Array | string,
    headers: Record<string, string>,
    headersTimeoutMs: number,
    onHeadersTimeout: () => FailureReason
  ) => Effect.Effect<StreamingUpstreamResponse, FailureReason, Scope.Scope>
  /** A GET of a path on the backend's origin (not under the API prefix), e.g. `/metrics`. */
  readonly getFromOrigin: (path: string, timeoutMs: number) => Effect.Effect<UpstreamResponse, FailureReason, Scope.Scope>
  /**
   * A long-lived GET from the origin (the KV-event stream): like `getFromOrigin`, but not counted in
   * `open` (it is the actor's standing subscription, not work in flight).
   */
  readonly streamFromOrigin: (path: string, timeoutMs: number) => Effect.Effect<UpstreamResponse, FailureReason, Scope.Scope>
  readonly close: Effect.Effect<void>
  /** Requests currently open on the pool (for tests and metrics). */
  readonly open: () => number
  /**
   * Requests waiting inside the HTTP client for a connection. Zero by construction (the pool
   * is never smaller than the slots); a gauge shows it so a hidden wait cannot come back unseen.
   */
  readonly queued: () => number
}

/**
 * Connections beyond `connections` for the backend actor's own traffic (one metrics scrape,
 * one probe at a time and the long-lived KV-event stream), which holds no slot: none waits
 * for another at full load.
 */
export const CONTROL_CONNECTIONS = 3

const describe = (e: unknown): string => {
  if (typeof e === "object" && e !== null) {
    const code = (e as { code?: unknown }).code
    const message = (e as { message?: unknown }).message
    return [code, message].filter((x) => typeof x === "string" && x !== "").join(": ") || String(e)
  }
  return String(e)
}

const ignoreBodyError = (): void => {}

const codeOf = (e: unknown): unknown => typeof e === "object" && e !== null ? (e as { code?: unknown }).code : undefined

/** Why a body is destroyed when its client left: one shared error, no stack per stream. */
const clientGone = Object.assign(new Error("the client closed the connection"), { code: "SLUICE_CLIENT_GONE" })

/**
 * How long a reader detached by `destroyNow` waits before it is told of the failure after
 * all: a request's fiber is interrupted within the same turn of the event loop, which
 * cancels its wait for the body at once (its teardown may run turns later, see
 * http/Teardowns.ts, and a late error then wakes nothing), so this only reaches work that
 * merely inherited the request's context (a backend actor started by an admin reload),
 * which must fail, not hang.
 */
const DETACHED_READER_MS = 1_000

/**
 * Destroys an unfinished upstream body at once, without waking its reader: the reader's
 * listeners are removed first, so the request's fiber learns of the end only through its
 * interruption (the client is gone, not the backend: nothing may count it as the
 * backend's failure), and its finalizers then find the body already destroyed. A reader
 * still there after `DETACHED_READER_MS` gets the error then. The errors undici builds
 * while aborting (three per body) are made without stack traces: capturing and formatting
 * them was ~18% of the gateway's CPU in a mass abort.
 */
const destroyNow = (body: Readable): void => {
  if (body.readableEnded || body.destroyed) return
  const onError = body.listeners("error").filter((l) => l !== ignoreBodyError) as Array<(e: Error) => void>
  body.removeAllListeners("readable")
  body.removeAllListeners("data")
  body.removeAllListeners("end")
  body.removeAllListeners("error")
  body.on("error", ignoreBodyError)
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    body.destroy(clientGone)
  } finally {
    Error.stackTraceLimit = limit
  }
  if (onError.length > 0) setTimeout(() => onError.forEach((l) => l(clientGone)), DETACHED_READER_MS).unref()
}

/**
 * Calls `gone` when the HTTP/1.1 socket the current request came on ends (the client's FIN:
 * node:http then aborts the request and closes the socket, as `httpAllowHalfOpen` is off),
 * fails (a reset: a client that leaves with unread bytes in its receive buffer sends RST,
 * not FIN) or closes, while the request's response is unfinished; returns the function that
 * stops listening. The listeners go first, ahead of node:http's own: node answers an end or
 * close by closing the client socket and interrupting the request's fiber, whose finalizers
 * are far more work than closing the upstream. With many clients leaving at once, every
 * upstream is then closed while their sockets' events are read, before any request is
 * finalized. Outside a node:http request (a backend's own probes, tests), or once its
 * response is finished (a client leaving after its answer abandons nothing), nothing.
 */
const onClientGone = (request: Option.Option<HttpServerRequest.HttpServerRequest>, gone: () => void): (() => void) | undefined => {
  if (Option.isNone(request)) return undefined
  const source = request.value.source as Partial<IncomingMessage>
  // @effect/platform-node's request carries the node:http response it answers with
  const response = (request.value as { readonly response?: Partial<ServerResponse> }).response
  const socket = source.httpVersionMajor === 1 ? source.socket : undefined
  if (socket === undefined || socket === null || typeof socket.prependListener !== "function") return undefined
  if (response === undefined || typeof response.writableFinished !== "boolean" || response.writableFinished) return undefined
  if (socket.destroyed) return undefined
  const onGone = () => {
    if (!response.writableFinished) gone()
  }
  socket.prependOnceListener("end", onGone)
  socket.prependOnceListener("error", onGone)
  socket.prependOnceListener("close", onGone)
  return () => {
    socket.off("end", onGone)
    socket.off("error", onGone)
    socket.off("close", onGone)
  }
}

export const make = (
  baseUrl: string,
  options: {
    readonly connections: number
    readonly apiKey: Redacted.Redacted<string> | undefined
    readonly connectTimeoutMs: number
  }
): UpstreamPool => {
  const url = new URL(baseUrl)
  const basePath = url.pathname.replace(/\/+$/, "")
  const pool = new Pool(url.origin, {
    connections: options.connections + CONTROL_CONNECTIONS,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    connect: resettingConnector(options.connectTimeoutMs),
    // Streams may be quiet for long stretches; idle gaps are enforced by the dispatcher.
    bodyTimeout: 0
  })
  let open = 0
  const auth = options.apiKey === undefined ? undefined : `Bearer ${Redacted.value(options.apiKey)}`
  /**
   * The headers sent: the pool's bearer added, unless a dialect authenticates its own way
   * (Anthropic's `x-api-key`) and set the header itself from `apiKey` (not sent twice).
   */
  const withAuth = (headers: Record<string, string>): Record<string, string> =>
    auth === undefined || headers["x-api-key"] !== undefined || headers["authorization"] !== undefined
      ? headers
      : { authorization: auth, ...headers }

  /**
   * The release of one upstream request when its scope closes. Built here rather than inside
   * `send`, so that this finalizer and the client-gone listener, which live as long as the
   * response (a whole stream), do not close over `send`'s scope: the request's body bytes and
   * its timeout callback (which holds the call, and so the prompt) stay collectable.
   */
  const release = (held: Held, controller: AbortController) => (exit: Exit.Exit<unknown, unknown>) =>
    Effect.sync(() => {
      const response = held.response
      held.released = true
      if (held.counted) open--
      if (response === undefined) controller.abort()
      else if (!response.body.readableEnded || Exit.isFailure(exit)) response.body.destroy()
      held.unhook?.()
    })

  /** A failed request's reason: the headers deadline, the connect timeout, or the backend unavailable. */
  const failureOf = (e: unknown, headersLate: boolean, onHeadersTimeout: () => FailureReason): FailureReason => {
    const code = codeOf(e)
    if (headersLate || code === "UND_ERR_HEADERS_TIMEOUT") return onHeadersTimeout()
    if (code === "UND_ERR_CONNECT_TIMEOUT") return new ConnectTimeout({ afterMs: options.connectTimeoutMs })
    return new Unavailable({ status: undefined, message: `${url.origin}: ${describe(e)}` })
  }

  /**
   * One request, in one step of the fiber: the release is added to the scope before the
   * request leaves, so whatever ends the attempt (client gone, first-token deadline, failover,
   * shutdown) aborts it, whether it is still waiting for headers or streaming: an unfinished
   * body is destroyed and undici closes that socket, which is how the engine learns to stop.
   * undici answers through its callback, which records the response where the release finds
   * it before the fiber resumes, so no moment is left in which an interruption could lose a
   * body: no uninterruptible region, no promise, no `Effect.gen` (bench/README.md, "The upstream
   * call in one step").
   */
  const send = (
    method: "GET" | "POST",
    path: string,
    body: Uint8Array | string | undefined,
    headers: Record<string, string>,
    timeoutMs: number,
    onHeadersTimeout: () => FailureReason,
    counted = true
  ): Effect.Effect<UpstreamResponse, FailureReason, Scope.Scope> =>
    Effect.withFiber((fiber) => {
      const context = fiber.context
      const scope = Context.get(context as Context.Context<Scope.Scope>, Scope.Scope)
      const clientRequest = Context.getOption(context as Context.Context<never>, HttpServerRequest.HttpServerRequest)
      const controller = new AbortController()
      const held: Held = { response: undefined, unhook: undefined, counted: false, released: false }
      return Effect.andThen(
        Scope.addFinalizerExit(scope, release(held, controller)),
        Effect.callback<UpstreamResponse, FailureReason>((resume) => {
          // Counted here, with its release already in the scope: an interruption between the
          // two steps leaves neither an uncounted release nor a count without one.
          if (counted) {
            open++
            held.counted = true
          }
          // undici's own headersTimeout runs on its coarse timers (ticks of about half a second):
          // a 350 ms first-token deadline fired after 1.0–1.5 s. A plain timer aborts on time.
          let headersLate = false
          const headersTimer = setTimeout(() => {
            headersLate = true
            controller.abort()
          }, timeoutMs)
          requestWithCallback.call(pool, {
            method,
            path: method === "GET" ? path : basePath + path,
            headers: withAuth(headers),
            body: body ?? null,
            signal: controller.signal,
            headersTimeout: timeoutMs
          }, (e, res) => {
            clearTimeout(headersTimer)
            if (e !== null) return resume(Effect.fail(failureOf(e, headersLate, onHeadersTimeout)))
            // Readers listen for body errors only while they read. A body they stopped reading
            // (interrupted, over its size limit) is destroyed by the release above, and undici
            // reports that as an 'error' event: with no listener left, Node would throw it out
            // of the event loop and end the process. Read failures reach readers through their
            // own listeners; this one only keeps an abandoned body from taking the gateway down.
            res.body.on("error", ignoreBodyError)
            const resBody = res.body as unknown as Readable
            // Released already (undici answered after the abort that release sent): nobody will read it.
            if (held.released) return resBody.destroy()
            const response: UpstreamResponse = { status: res.statusCode, headers: res.headers, body: resBody }
            held.response = response
            // Before the headers the fiber's own interruption aborts the request (an abort
            // there fails the pending call, which would wake the fiber with a failure of the
            // backend's).
            held.unhook = onClientGone(clientRequest, destroyer(resBody))
            resume(Effect.succeed(response))
          })
        })
      )
    })

  /** The release of a call when its scope closes: an unfinished one is aborted. */
  const releaseCall = (held: Call) =>
    Effect.sync(() => {
      if (held.counted) open--
      held.release()
    })

  /**
   * A call on undici's `dispatch` with a handler of our own (no promise, no `AbortController`,
   * no `Readable`; bench/README.md, "The unary call without a stream"), in `send`'s one step:
   * the release is in the scope before the request leaves, and aborts the request whatever
   * its phase. The handler resumes the fiber once at the headers; a unary body's reader once
   * when the body is whole, a stream's once per wait.
   */
  const dispatchCall = (
    path: string,
    body: Uint8Array | string,
    headers: Record<string, string>,
    timeoutMs: number,
    onHeadersTimeout: () => FailureReason,
    maxBytes: number,
    streaming: boolean
  ): Effect.Effect<Call, FailureReason, Scope.Scope> =>
    Effect.withFiber((fiber) => {
      const context = fiber.context
      const scope = Context.get(context as Context.Context<Scope.Scope>, Scope.Scope)
      const clientRequest = Context.getOption(context as Context.Context<never>, HttpServerRequest.HttpServerRequest)
      const held = new Call(maxBytes, streaming)
      return Effect.andThen(
        Scope.addFinalizer(scope, releaseCall(held)),
        Effect.callback<Call, FailureReason>((resume) => {
          open++
          held.counted = true
          held.onHead = (e) => {
            if (e !== null) return resume(Effect.fail(failureOf(e, held.headersLate, onHeadersTimeout)))
            held.unhook = onClientGone(clientRequest, held.goneNow)
            resume(Effect.succeed(held))
          }
          held.headersTimer = setTimeout(held.lateHeaders, timeoutMs)
          pool.dispatch({
            method: "POST",
            path: basePath + path,
            headers: withAuth(headers),
            body,
            headersTimeout: timeoutMs
          }, held)
        })
      )
    })

  return {
    origin: url.origin,
    basePath,
    apiKey: options.apiKey,
    post: (path, body, headers, timeoutMs, onTimeout) => send("POST", path, body, headers, timeoutMs, onTimeout),
    call: (path, body, headers, timeoutMs, onTimeout, maxBytes) => dispatchCall(path, body, headers, timeoutMs, onTimeout, maxBytes, false),
    stream: (path, body, headers, timeoutMs, onTimeout) =>
      dispatchCall(path, body, headers, timeoutMs, onTimeout, Number.POSITIVE_INFINITY, true),
    getFromOrigin: (path, timeoutMs) =>
      send("GET", path, undefined, {}, timeoutMs, () => new Unavailable({ status: undefined, message: `GET ${path} timed out` })),
    streamFromOrigin: (path, timeoutMs) =>
      send("GET", path, undefined, {}, timeoutMs, () => new Unavailable({ status: undefined, message: `GET ${path} timed out` }), false),
    close: Effect.promise(() => pool.destroy()).pipe(Effect.ignore),
    open: () => open,
    queued: () => pool.stats.queued
  }
}

/** undici's request in its callback form (the same function; no promise is made). */
const requestWithCallback = undiciRequest as unknown as (
  this: Dispatcher,
  options: Dispatcher.RequestOptions,
  callback: (err: Error | null, data: Dispatcher.ResponseData) => void
) => void

/** What one upstream request's release reads: its response once the headers came, and the client-gone hook. */
interface Held {
  response: UpstreamResponse | undefined
  unhook: (() => void) | undefined
  /** Whether this request is in `open` (so its release takes it out). */
  counted: boolean
  /** Whether the release has run (a response arriving after it is destroyed at once). */
  released: boolean
}

/** Aborts an undici request without capturing stacks for the errors undici builds on the way. */
const abortQuietly = (controller: Dispatcher.DispatchController, reason: Error): void => {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  resetting = true
  try {
    controller.abort(reason)
  } finally {
    resetting = false
    Error.stackTraceLimit = limit
  }
}

/**
 * True while `abortQuietly` runs: undici destroys the aborted call's socket inside
 * `controller.abort`, and a socket of this pool destroyed then is closed with a reset (RST)
 * rather than a FIN. The flag covers the whole call, not only the first destroy: undici
 * reports the error to the handler (which may resume a fiber synchronously) before it
 * destroys the socket, so another socket torn down by that fiber is reset too; every socket
 * destroyed in that window is being abandoned, and a reset only drops what it had not sent.
 *
 * Why: an aborted call's connection is never reused, and a FIN leaves the gateway's side in
 * TIME_WAIT for a minute: 5,000 aborts left ~5,000 such sockets, each holding an ephemeral
 * port toward the engine's address (bench/README, "Aborted upstreams close with a reset").
 * A reset is one segment with no handshake after it and no TIME_WAIT; the `close(2)` itself
 * (the largest part of a mass abort's critical path) costs about the same (0.94× CPU), and
 * the engine saw the last of 5,000 closes 0.88× as late. The engine's server reads it as the connection gone
 * (ECONNRESET) as it reads a FIN's end of stream.
 */
let resetting = false

/**
 * undici's own connector (same connect timeout, keep-alive and TLS defaults as the pool
 * builds without one), whose plain TCP sockets close with a reset when destroyed while
 * `resetting`. Node's `socket.resetAndDestroy()` drops the destroy's error, which undici's
 * close handler reads, so the flag it sets (`resetAndClosing`, read by `_destroy`) is set
 * here and the destroy goes on with its error. A TLS socket (no TCP handle to reset) and a
 * socket still connecting close as usual.
 */
const resettingConnector = (timeoutMs: number): BuildConnector.connector => {
  const connect = buildConnector({ timeout: timeoutMs })
  return (options, callback) =>
    connect(options, (...args: BuildConnector.CallbackArgs) => {
      // a failed connect calls back with the error alone
      if (args[0] === null) resetOnAbort(args[1])
      callback(...args)
    })
}

type ResettableSocket = Socket & {
  resetAndClosing?: boolean
  readonly _handle?: { readonly reset?: unknown } | null
}

const resetOnAbort = (socket: Socket): void => {
  const destroy = socket.destroy
  socket.destroy = function(this: ResettableSocket, error?: Error) {
    if (resetting && !this.destroyed && !this.connecting && typeof this._handle?.reset === "function") {
      this.resetAndClosing = true
    }
    return destroy.call(this, error)
  }
}

/** The headers deadline's abort reason (the failure reported is the caller's `onHeadersTimeout`). */
const headersLateError = Object.assign(new Error("no response headers within the deadline"), { code: "SLUICE_HEADERS_LATE" })
/** The body deadline's and the size cap's abort reason (the read reports its own failure). */
const readEnded = Object.assign(new Error("the response body read ended"), { code: "SLUICE_READ_ENDED" })

/**
 * Bytes a stream's reader may leave queued before undici stops reading that socket (the
 * default high-water mark of undici's own body stream).
 */
const STREAM_HIGH_WATER = 64 * 1024

/**
 * One call: undici's dispatch handler, the call's state, and the answer handed to the
 * adapter (it is its own `StreamingUpstreamResponse`, one object per call). undici calls the
 * `on*` methods; the fiber's side calls `readAll` or `pull`, `release` and `goneNow`. A unary
 * call keeps its body to the cap; a stream's reader takes the queue as it comes.
 *
 * Effect resumes a fiber synchronously, so the request's fiber runs inside these callbacks
 * (the answer is written from `onResponseEnd`, a stream's next frame from `onResponseData`):
 * that is the tick saved, and it means a failover may dispatch on a pool from inside another
 * call's `onResponseError`, which undici allows (its redirect handler dispatches from
 * `onResponseEnd`).
 */
class Call implements Dispatcher.DispatchHandler, StreamingUpstreamResponse {
  status = 0
  headers: UpstreamResponse["headers"] = {}
  counted = false
  headersLate = false
  headersTimer: NodeJS.Timeout | undefined = undefined
  /** Resumes the calling fiber at the headers (null) or with the failure before them. */
  onHead: ((e: Error | null) => void) | undefined = undefined
  unhook: (() => void) | undefined = undefined
  private controller: Dispatcher.DispatchController | undefined = undefined
  /** An abort asked for before undici started the request: given to it when it does. */
  private abortReason: Error | undefined = undefined
  private parts: Array<Buffer> = []
  private size = 0
  private done = false
  private tooLarge = false
  private failure: unknown = undefined
  /** The waiting reader (undefined: none, or detached because the client left). */
  private wake: (() => void) | undefined = undefined
  /** A stream's reading paused undici (the queue passed `STREAM_HIGH_WATER`). */
  private paused = false
  /** `readAll` was asked: the body is kept whole to its cap, never paused. */
  private whole = false
  /** A stream's read deadline, made by its first `pull` (a unary call has none). */
  private deadline: WaitTimer | undefined = undefined

  constructor(private limit: number, private readonly streaming: boolean) {}

  private abort(reason: Error): void {
    if (this.controller === undefined) this.abortReason ??= reason
    else if (!this.controller.aborted) abortQuietly(this.controller, reason)
  }

  private signal(): void {
    const w = this.wake
    this.wake = undefined
    w?.()
  }

  private clearHeadersTimer(): void {
    if (this.headersTimer !== undefined) clearTimeout(this.headersTimer)
    this.headersTimer = undefined
  }

  /** The body passed the cap: what came is dropped and the request aborted. */
  private overCap(): void {
    this.tooLarge = true
    this.parts = []
    this.abort(readEnded)
  }

  /** The headers deadline (a plain timer: undici's own runs on coarse ticks). */
  readonly lateHeaders = (): void => {
    this.headersTimer = undefined
    this.headersLate = true
    this.abort(headersLateError)
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.abortReason !== undefined) abortQuietly(controller, this.abortReason)
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: UpstreamResponse["headers"]): void {
    if (statusCode < 200) return
    this.clearHeadersTimer()
    this.status = statusCode
    this.headers = headers
    const head = this.onHead
    this.onHead = undefined
    head?.(null)
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.tooLarge || this.failure !== undefined) return
    if (this.size + chunk.length > this.limit) {
      this.overCap()
      return this.signal()
    }
    this.size += chunk.length
    this.parts.push(chunk)
    if (this.streaming) {
      if (this.size >= STREAM_HIGH_WATER && !this.whole && !this.paused && this.controller !== undefined) {
        this.paused = true
        this.controller.pause()
      }
      this.signal()
    }
  }

  onResponseEnd(): void {
    this.done = true
    this.signal()
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.clearHeadersTimer()
    const head = this.onHead
    if (head !== undefined) {
      this.onHead = undefined
      return head(error)
    }
    this.failure ??= error
    this.signal()
  }

  /** The scope closed: an unfinished request is aborted, the client-gone hook removed. */
  release(): void {
    this.onHead = undefined
    this.wake = undefined
    this.clearHeadersTimer()
    this.deadline?.clear()
    if (!this.done) this.abort(clientGone)
    this.unhook?.()
    this.unhook = undefined
  }

  /**
   * The client left while the body was coming: the request is aborted at once, without waking
   * the reader (its fiber is interrupted in this same turn; see `destroyNow`), which a late
   * timer still tells, should it be there after `DETACHED_READER_MS`.
   */
  readonly goneNow = (): void => {
    if (this.done) return
    const reader = this.wake
    this.wake = undefined
    this.failure ??= clientGone
    this.abort(clientGone)
    if (reader !== undefined) setTimeout(reader, DETACHED_READER_MS).unref()
  }

  /** What a read gives now, or undefined while the body is still coming. */
  private poll(onError: (e: unknown) => FailureReason): Effect.Effect<Buffer, FailureReason> | undefined {
    if (this.tooLarge) return Effect.fail(new ResponseTooLarge({ limit: this.limit }))
    if (this.failure !== undefined) return Effect.fail(onError(this.failure))
    if (this.size > this.limit) {
      this.overCap()
      return Effect.fail(new ResponseTooLarge({ limit: this.limit }))
    }
    if (!this.done) return undefined
    const parts = this.parts
    this.parts = []
    return Effect.succeed(parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.size))
  }

  readAll(limit: number, onError: (e: unknown) => FailureReason, within?: ReadDeadline): Effect.Effect<Buffer, FailureReason> {
    return Effect.suspend(() => {
      this.limit = Math.min(this.limit, limit)
      this.whole = true
      if (this.paused) {
        this.paused = false
        this.controller?.resume()
      }
      return this.poll(onError) ?? Effect.callback<Buffer, FailureReason>((resume) => {
        let timer: NodeJS.Timeout | undefined
        const waiting = () => {
          const now = this.poll(onError)
          if (now === undefined) return void (this.wake = waiting)
          if (timer !== undefined) clearTimeout(timer)
          resume(now)
        }
        this.wake = waiting
        if (within !== undefined) {
          timer = setTimeout(() => {
            this.wake = undefined
            this.abort(readEnded)
            resume(Effect.fail(within.onTimeout()))
          }, Math.max(0, within.ms))
        }
        return Effect.sync(() => {
          this.wake = undefined
          if (timer !== undefined) clearTimeout(timer)
        })
      })
    })
  }

  /** What a stream's read gives now, or undefined when it has to wait. */
  private pollNext(onError: (e: unknown) => FailureReason): Effect.Effect<Buffer | null, FailureReason> | undefined {
    const parts = this.parts
    if (parts.length > 0) {
      const chunk = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.size)
      this.parts = []
      this.size = 0
      if (this.paused) {
        this.paused = false
        this.controller?.resume()
      }
      return Effect.succeed(chunk)
    }
    if (this.failure !== undefined) {
      this.deadline?.clear()
      return Effect.fail(onError(this.failure))
    }
    if (this.done) {
      this.deadline?.clear()
      return Effect.succeed(null)
    }
    return undefined
  }

  pull(onError: (e: unknown) => FailureReason): (within?: ReadDeadline) => Effect.Effect<Buffer | null, FailureReason> {
    return waitingReads(() => this.pollNext(onError), this.park, (this.deadline ??= new WaitTimer()))
  }

  private readonly park = (w: (() => void) | undefined): void => {
    this.wake = w
  }
}

/**
 * A body's read deadline: one timer per body, re-armed with `refresh()` while the waits keep
 * the same length (a stream's idle gap) instead of a new timer per wait. A timer left armed
 * after the wait it was armed for was answered fires into nothing; it is cleared at the
 * body's end or failure and when a wait is interrupted.
 */
class WaitTimer {
  private timer: NodeJS.Timeout | undefined = undefined
  private ms = -1
  /** What the armed timer does when it fires (undefined: the wait it was armed for was answered). */
  private onFire: (() => void) | undefined = undefined
  private readonly fire = (): void => {
    const f = this.onFire
    this.onFire = undefined
    f?.()
  }

  arm(ms: number, f: () => void): void {
    this.onFire = f
    if (this.timer !== undefined && this.ms === ms) this.timer.refresh()
    else {
      if (this.timer !== undefined) clearTimeout(this.timer)
      // unref: a timer left armed after its wait was answered must not hold the process open
      // (a waiting read is held open by its socket)
      this.timer = setTimeout(this.fire, ms).unref()
      this.ms = ms
    }
  }

  /** The wait was answered: a firing now does nothing. */
  answered(): void {
    this.onFire = undefined
  }

  clear(): void {
    this.onFire = undefined
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
  }
}

/**
 * The reads of a body whose source wakes one waiting reader: `poll` gives what a read gets now
 * (undefined: it has to wait; it clears `timer` itself at the end or a failure), `park` sets or
 * removes the reader the source wakes. A wait costs one callback; with `within`, it fails with
 * `within.onTimeout()` after `within.ms`.
 */
const waitingReads = (
  poll: () => Effect.Effect<Buffer | null, FailureReason> | undefined,
  park: (waiting: (() => void) | undefined) => void,
  timer: WaitTimer
) =>
(within?: ReadDeadline): Effect.Effect<Buffer | null, FailureReason> =>
  Effect.suspend(() =>
    poll() ?? Effect.callback<Buffer | null, FailureReason>((resume) => {
      const waiting = () => {
        const now = poll()
        // woken with nothing to read yet (e.g. just before the end): keep waiting
        if (now === undefined) return void park(waiting)
        timer.answered()
        resume(now)
      }
      park(waiting)
      if (within !== undefined) {
        timer.arm(Math.max(0, within.ms), () => {
          park(undefined)
          resume(Effect.fail(within.onTimeout()))
        })
      }
      return Effect.sync(() => {
        park(undefined)
        timer.clear()
      })
    })
  )

/** Destroys `body` at once (a client gone); a module-level closure over the body alone. */
const destroyer = (body: Readable) => () => destroyNow(body)

/**
 * A pull over a Node readable: the next chunk, or null at the end. With `within`, a read
 * that has to wait fails with `within.onTimeout()` after `within.ms`.
 *
 * Per chunk of a stream this is the hot path, so a wait costs one callback: the body's
 * `readable` event reads the chunk and resumes the fiber with it (no second pass through
 * the pull), and the deadline is one timer per body, re-armed with `refresh()` while the
 * waits keep the same length (a stream's idle gap) instead of a new timer per wait. A timer
 * left armed after a wait that was answered fires into nothing; it is cleared at the body's
 * end or failure and when a wait is interrupted.
 */
export const pullBody = (body: Readable, onError: (e: unknown) => FailureReason) => {
  let ended = body.readableEnded
  let failure: unknown = undefined
  let wake: (() => void) | undefined
  const signal = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  body.on("readable", signal)
  body.once("end", () => {
    ended = true
    signal()
  })
  body.once("error", (e) => {
    failure = e
    signal()
  })
  const timer = new WaitTimer()
  /** What a read gives now, or undefined when it has to wait. */
  const poll = (): Effect.Effect<Buffer | null, FailureReason> | undefined => {
    const chunk = body.read() as Buffer | null
    if (chunk !== null) return Effect.succeed(chunk)
    if (failure !== undefined) {
      timer.clear()
      return Effect.fail(onError(failure))
    }
    if (ended || body.readableEnded) {
      timer.clear()
      return Effect.succeed(null)
    }
    return undefined
  }
  return waitingReads(poll, (w) => {
    wake = w
  }, timer)
}

/**
 * Reads a whole body, failing with `ResponseTooLarge` as soon as it exceeds `limit` bytes
 * (the rest is not read: the body is destroyed, which closes that connection). One
 * callback for the whole body rather than a pull per chunk: a unary answer resumes its
 * fiber once. With `within`, a body not complete after `within.ms` fails with
 * `within.onTimeout()` and is destroyed (one timer, no fiber).
 */
export const readAll = (body: Readable, limit: number, onError: (e: unknown) => FailureReason, within?: ReadDeadline) =>
  // The body's permanent error listener (see `send`) absorbs the abort error a destroy causes.
  Bodies.readAll<FailureReason>(body, {
    limit,
    tooLarge: () => new ResponseTooLarge({ limit }),
    failed: onError,
    overflow: "destroy",
    within
  })

/** A socket-level failure while reading a response body. */
export const readFailure = (e: unknown): FailureReason =>
  new Unavailable({ status: undefined, message: `upstream read failed: ${String(e)}` })

/**
 * Reads a non-2xx answer's body (at most 64 KiB) and fails with the reason the dialect's
 * Errors file makes of it (status, `retry-after`, body text, now).
 */
export const failWith = (
  res: UpstreamResponse | UnaryUpstreamResponse,
  classify: (status: number, retryAfter: string | undefined, text: string, nowMs: number) => FailureReason,
  within?: ReadDeadline
): Effect.Effect<never, FailureReason> =>
  Effect.gen(function*() {
    // A body that cannot be read is classified by its status alone; one that is too late is late.
    let late: FailureReason | undefined
    const bounded = within === undefined ? undefined : { ms: within.ms, onTimeout: () => (late = within.onTimeout()) }
    const read = "body" in res
      ? readAll(res.body, 64 * 1024, readFailure, bounded)
      : res.readAll(64 * 1024, readFailure, bounded)
    const text = yield* read.pipe(
      Effect.map((b) => b.toString("utf8")),
      Effect.orElseSucceed(() => "")
    )
    if (late !== undefined) return yield* Effect.fail(late)
    const now = yield* Clock.currentTimeMillis
    return yield* Effect.fail(classify(res.status, header(res.headers, "retry-after"), text, now))
  })

export const header = (
  headers: UpstreamResponse["headers"],
  name: string
): string | undefined => {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : (v as string | undefined)
}

export type { Scope }
