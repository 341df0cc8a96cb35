/**
 * The bench's mock engine: `endOpen` finishes the streams a target left running, so a target
 * that never closes its upstream (Portkey) cannot use up the harness's open files for the
 * next run. Imported by path (untyped), as the other bench tests do.
 */
import { request } from "node:http"
import { describe, expect, it } from "vitest"

const load = async (): Promise<any> => await import(new URL("../../bench/lib/mock.mjs", import.meta.url).href)

/** Opens a stream through the mock and collects its body until it ends. */
const openStream = (port: number) =>
  new Promise<{ readonly firstChunk: Promise<void>; readonly body: Promise<string> }>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" } }, (res) => {
      let text = ""
      let first: () => void = () => {}
      const firstChunk = new Promise<void>((r) => (first = r))
      const body = new Promise<string>((r, j) => {
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString("utf8")
          first()
        })
        res.on("end", () => r(text))
        res.on("error", j)
      })
      resolve({ firstChunk, body })
    })
    req.on("error", reject)
    req.end(JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], stream: true }))
  })

describe("bench mock", () => {
  it("ends every stream still open, and counts them", async () => {
    const { startMock } = await load()
    const mock = await startMock()
    try {
      mock.setMode({ kind: "endless", intervalMs: 20 })
      const streams = await Promise.all([openStream(mock.port), openStream(mock.port)])
      await Promise.all(streams.map((s) => s.firstChunk))
      expect(mock.openStreams).toBe(2)
      expect(mock.endOpen()).toBe(2)
      const bodies = await Promise.all(streams.map((s) => s.body))
      for (const body of bodies) expect(body.endsWith("data: [DONE]\n\n")).toBe(true)
      await new Promise((r) => setTimeout(r, 50))
      expect(mock.openStreams).toBe(0)
      // Ended streams have left the set: a second call finds nothing to end.
      expect(mock.endOpen()).toBe(0)
    } finally {
      await mock.close()
    }
  })
})
