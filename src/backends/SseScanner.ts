/**
 * An incremental Server-Sent Events scanner over raw bytes.
 *
 * It finds event boundaries (a blank line, LF or CRLF) in whatever chunks the socket
 * delivers and hands back each complete event twice: as the exact original bytes (so a
 * same-dialect relay forwards them without re-encoding) and as parsed `event`/`data`
 * fields (so usage, finish reason and errors can be read on the side).
 *
 * It owns one carry-over buffer of an incomplete event, bounded by `maxEventBytes`: that
 * bound is what keeps a stream's memory at "a few chunks" whatever the backend sends.
 * Plain TypeScript on purpose: it runs once per upstream chunk on the hot path.
 */

export interface SseEvent {
  /** The event's original bytes, terminator included. */
  readonly raw: Buffer
  /** The `event:` field, when present. */
  readonly event: string | undefined
  /** The `data:` lines joined by "\n" ("" when the event has none). */
  readonly data: string
}

const LF = 10
const CR = 13

/** Parses the fields of one event's text (without its terminating blank line). */
const parseFields = (text: string): { event: string | undefined; data: string; hasData: boolean } => {
  let event: string | undefined
  let data = ""
  let hasData = false
  let start = 0
  const n = text.length
  while (start <= n) {
    let end = text.indexOf("\n", start)
    if (end === -1) end = n
    let line = text.slice(start, end)
    if (line.endsWith("\r")) line = line.slice(0, -1)
    start = end + 1
    if (line.length === 0 || line.charCodeAt(0) === 58 /* ':' comment */) {
      if (end === n) break
      continue
    }
    const colon = line.indexOf(":")
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? "" : line.slice(colon + 1)
    if (value.charCodeAt(0) === 32) value = value.slice(1)
    if (field === "data") {
      data = hasData ? `${data}\n${value}` : value
      hasData = true
    } else if (field === "event") {
      event = value
    }
    if (end === n) break
  }
  return { event, data, hasData }
}

export class EventTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`an SSE event exceeded ${limit} bytes`)
  }
}

export class SseScanner {
  private carry: Buffer | undefined = undefined
  /** Index in `carry` from which the boundary search resumes (bytes before it hold no boundary). */
  private scanFrom = 0

  constructor(readonly maxEventBytes: number = 1024 * 1024) {}

  /** Bytes currently held waiting for the rest of an event. */
  get buffered(): number {
    return this.carry?.length ?? 0
  }

  /**
   * Feeds one chunk and returns the events it completed (possibly none).
   * Throws `EventTooLarge` when an incomplete event outgrows the bound.
   */
  feed(chunk: Uint8Array): Array<SseEvent> {
    const input = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    let buf: Buffer
    let i: number
    if (this.carry === undefined) {
      buf = input
      i = 0
    } else {
      buf = Buffer.concat([this.carry, input])
      i = this.scanFrom
    }
    const out: Array<SseEvent> = []
    let eventStart = 0
    const n = buf.length
    // A boundary is LF followed by LF, or LF followed by CR LF (CRLF line endings).
    while (i < n) {
      const lf = buf.indexOf(LF, i)
      if (lf === -1) {
        i = n
        break
      }
      let end = -1
      if (lf + 1 < n && buf[lf + 1] === LF) end = lf + 2
      else if (lf + 2 < n && buf[lf + 1] === CR && buf[lf + 2] === LF) end = lf + 3
      else if (lf + 1 >= n || (lf + 2 >= n && buf[lf + 1] === CR)) {
        // The boundary may complete in the next chunk: resume from this LF.
        i = lf
        break
      }
      if (end === -1) {
        i = lf + 1
        continue
      }
      const raw = buf.subarray(eventStart, end)
      const fields = parseFields(buf.toString("utf8", eventStart, lf))
      if (fields.hasData || fields.event !== undefined) {
        out.push({ raw, event: fields.event, data: fields.data })
      }
      eventStart = end
      i = end
    }
    if (eventStart >= n) {
      this.carry = undefined
      this.scanFrom = 0
    } else {
      const rest = buf.subarray(eventStart)
      if (rest.length > this.maxEventBytes) throw new EventTooLarge(this.maxEventBytes)
      // Copy so the carry does not pin a large upstream chunk.
      this.carry = Buffer.from(rest)
      this.scanFrom = Math.max(0, i - eventStart)
    }
    return out
  }

  /** At end of stream: an event left without its blank line, if it has data. */
  flush(): SseEvent | undefined {
    const carry = this.carry
    this.carry = undefined
    this.scanFrom = 0
    if (carry === undefined) return undefined
    const fields = parseFields(carry.toString("utf8"))
    return fields.hasData ? { raw: carry, event: fields.event, data: fields.data } : undefined
  }
}
