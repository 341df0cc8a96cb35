/**
 * A raw streaming client on node:http for lifecycle tests: reads SSE events as they
 * arrive and can destroy its socket at an exact point (after N events), like a user
 * closing a tab.
 */
import { request } from "node:http"

export interface StreamResult {
  readonly status: number
  readonly headers: Record<string, string | Array<string> | undefined>
  readonly events: Array<string>
  readonly aborted: boolean
  /** performance.now() when the socket was destroyed, if it was. */
  readonly abortedAt: number | undefined
}

export const streamChat = (
  url: string,
  body: Record<string, unknown>,
  options: { readonly abortAfterEvents?: number; readonly headers?: Record<string, string> } = {}
): Promise<StreamResult> =>
  new Promise((resolve, reject) => {
    const events: Array<string> = []
    let buffer = ""
    let abortedAt: number | undefined
    const req = request(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...options.headers }
    }, (res) => {
      res.setEncoding("utf8")
      const done = () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, events, aborted: abortedAt !== undefined, abortedAt })
      res.on("data", (chunk: string) => {
        buffer += chunk
        let i: number
        while ((i = buffer.indexOf("\n\n")) !== -1) {
          events.push(buffer.slice(0, i).replace(/^data: /, ""))
          buffer = buffer.slice(i + 2)
          if (options.abortAfterEvents !== undefined && events.length >= options.abortAfterEvents && abortedAt === undefined) {
            abortedAt = performance.now()
            req.destroy()
            done()
            return
          }
        }
      })
      res.on("end", done)
      res.on("error", () => abortedAt !== undefined ? done() : reject(new Error("response error")))
    })
    req.on("error", (e) => abortedAt !== undefined ? undefined : reject(e))
    req.end(JSON.stringify(body))
  })

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
