/**
 * A raw streaming client on node:http for lifecycle tests: reads SSE events as they
 * arrive and can destroy its socket at an exact point (after N events, or when a promise
 * resolves), like a user closing a tab. `unaryChat` does the same for non-streaming calls.
 */
import { request } from "node:http"

export interface StreamResult {
  readonly status: number
  readonly headers: Record<string, string | Array<string> | undefined>
  readonly events: Array<string>
  readonly aborted: boolean
  /** performance.now() when the socket was destroyed, if it was. */
  readonly abortedAt: number | undefined
  /** The raw response text received (an error body, or the events as sent). */
  readonly text: string
}

export interface ClientOptions {
  readonly abortAfterEvents?: number
  /** Destroys the socket when this resolves (if the response has not ended by then). */
  readonly abortWhen?: Promise<unknown>
  /** Called with the number of SSE events received so far, after each one. */
  readonly onEvent?: (count: number) => void
  readonly headers?: Record<string, string>
}

export const streamChat = (
  url: string,
  body: Record<string, unknown>,
  options: ClientOptions = {}
): Promise<StreamResult> =>
  new Promise((resolve, reject) => {
    const events: Array<string> = []
    let buffer = ""
    let text = ""
    let abortedAt: number | undefined
    let status = 0
    let headers: StreamResult["headers"] = {}
    let settled = false
    const done = () => {
      if (settled) return
      settled = true
      resolve({ status, headers, events, aborted: abortedAt !== undefined, abortedAt, text })
    }
    const abort = () => {
      if (settled || abortedAt !== undefined) return
      abortedAt = performance.now()
      req.destroy()
      done()
    }
    const req = request(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...options.headers }
    }, (res) => {
      status = res.statusCode ?? 0
      headers = res.headers
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        if (abortedAt !== undefined) return
        text += chunk
        buffer += chunk
        let i: number
        while ((i = buffer.indexOf("\n\n")) !== -1) {
          events.push(buffer.slice(0, i).replace(/^data: /, ""))
          buffer = buffer.slice(i + 2)
          options.onEvent?.(events.length)
          if (options.abortAfterEvents !== undefined && events.length >= options.abortAfterEvents) {
            abort()
            return
          }
        }
      })
      res.on("end", done)
      res.on("error", () => abortedAt !== undefined ? done() : reject(new Error("response error")))
    })
    req.on("error", (e) => abortedAt !== undefined ? undefined : reject(e))
    options.abortWhen?.then(abort, abort)
    req.end(JSON.stringify(body))
  })

export interface UnaryResult {
  readonly status: number
  readonly headers: Record<string, string | Array<string> | undefined>
  readonly text: string
  readonly aborted: boolean
}

/** A non-streaming POST to `/v1/chat/completions`; `abortWhen` destroys the socket. */
export const unaryChat = (
  url: string,
  body: Record<string, unknown>,
  options: Pick<ClientOptions, "abortWhen" | "headers"> = {}
): Promise<UnaryResult> =>
  new Promise((resolve, reject) => {
    let aborted = false
    let settled = false
    const finish = (r: UnaryResult) => {
      if (settled) return
      settled = true
      resolve(r)
    }
    const req = request(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...options.headers }
    }, (res) => {
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        text += chunk
      })
      res.on("end", () => finish({ status: res.statusCode ?? 0, headers: res.headers, text, aborted }))
      res.on("error", () => aborted ? undefined : reject(new Error("response error")))
    })
    req.on("error", (e) => aborted ? undefined : reject(e))
    options.abortWhen?.then(() => {
      if (settled) return
      aborted = true
      req.destroy()
      finish({ status: 0, headers: {}, text: "", aborted })
    })
    req.end(JSON.stringify(body))
  })

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
