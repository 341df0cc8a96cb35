/**
 * An incremental newline-delimited JSON scanner over raw bytes (Ollama's stream format).
 *
 * It finds line ends (LF, with an optional CR before it) in whatever chunks the socket
 * delivers and hands back each complete non-blank line as text. It owns one carry-over
 * buffer of an incomplete line, bounded by `maxLineBytes` (like SseScanner's bound, this
 * keeps a stream's memory at "a few chunks" whatever the backend sends). It never parses
 * JSON. Plain TypeScript on purpose: it runs once per upstream chunk on the hot path.
 */

const LF = 10

export class LineTooLong extends Error {
  constructor(readonly limit: number) {
    super(`an NDJSON line exceeded ${limit} bytes`)
  }
}

export class NdjsonScanner {
  private carry: Buffer | undefined = undefined

  constructor(readonly maxLineBytes: number = 1024 * 1024) {}

  /** Bytes currently held waiting for the rest of a line. */
  get buffered(): number {
    return this.carry?.length ?? 0
  }

  /** Feeds one chunk; returns the lines it completed. Throws `LineTooLong` past the bound. */
  feed(chunk: Uint8Array): Array<string> {
    const input = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    const searchFrom = this.carry?.length ?? 0
    const buf = this.carry === undefined ? input : Buffer.concat([this.carry, input])
    const out: Array<string> = []
    let start = 0
    let lf = buf.indexOf(LF, searchFrom)
    while (lf !== -1) {
      const end = lf > start && buf[lf - 1] === 13 ? lf - 1 : lf
      if (end > start) {
        const line = buf.toString("utf8", start, end)
        if (line.trim() !== "") out.push(line)
      }
      start = lf + 1
      lf = buf.indexOf(LF, start)
    }
    if (start >= buf.length) {
      this.carry = undefined
    } else {
      if (buf.length - start > this.maxLineBytes) throw new LineTooLong(this.maxLineBytes)
      // Copy so the carry does not pin a large upstream chunk.
      this.carry = Buffer.from(buf.subarray(start))
    }
    return out
  }

  /** At end of stream: a last line without its newline, if any. */
  flush(): string | undefined {
    const carry = this.carry
    this.carry = undefined
    if (carry === undefined) return undefined
    const line = carry.toString("utf8").replace(/\r$/, "")
    return line.trim() === "" ? undefined : line
  }
}
