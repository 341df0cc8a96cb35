/**
 * Usage reports from the embedded ledger files (`<data dir>/usage.jsonl`, and the
 * `usage.<slot>.jsonl` of every cluster worker): each file is read forward from where the
 * last read stopped, its lines added to an in-memory aggregate per (tenant, model, hour),
 * so a query costs the lines written since the previous one plus the groups it returns,
 * never a rescan. The first query after a start reads the files once.
 *
 * Only whole lines are read (a line still being appended is read next time); a line that
 * does not decode is skipped. Reads are serialised. Owns the read offsets. Must never: write
 * to the files (FileSink.ts owns them).
 */
import { Effect, Option, Schema, Semaphore } from "effect"
import * as fs from "node:fs/promises"
import { join } from "node:path"
import { Aggregate, type UsageGroup, type UsageQuery, UsageUnavailable } from "./UsageReport.ts"

const CHUNK = 1 << 20
const USAGE_FILE = /^usage(\.\d+)?\.jsonl$/

const Count = Schema.Number
const Line = Schema.Struct({
  at: Schema.optionalKey(Schema.String),
  tenant: Schema.String,
  model: Schema.String,
  charged: Schema.Struct({ promptTokens: Count, completionTokens: Count, cachedTokens: Count }),
  settledAtMs: Schema.optionalKey(Schema.Finite)
})
const decodeLine = Schema.decodeUnknownOption(Schema.fromJsonString(Line))

export interface UsageFiles {
  readonly read: (query: UsageQuery) => Effect.Effect<ReadonlyArray<UsageGroup>, UsageUnavailable>
}

/** A reader of the usage files in `dir` (a missing folder reads as no usage). */
export const reader = (dir: string): Effect.Effect<UsageFiles> =>
  Effect.map(Semaphore.make(1), (lock) => {
    const aggregate = new Aggregate()
    const offsets = new Map<string, number>()
    let skipped = 0

    const add = (text: string) => {
      const line = decodeLine(text)
      if (Option.isNone(line)) {
        skipped++
        return
      }
      const l = line.value
      const at = l.settledAtMs ?? (l.at === undefined ? Number.NaN : Date.parse(l.at))
      if (Number.isFinite(at)) aggregate.add(l.tenant, l.model, at, l.charged)
      else skipped++
    }

    /** Reads `path` from its offset up to its last whole line. */
    const follow = (path: string) =>
      Effect.tryPromise({
        try: async () => {
          const handle = await fs.open(path, "r")
          try {
            const { size } = await handle.stat()
            // The writer only ever cuts off a torn last line, which was never read whole.
            let offset = Math.min(offsets.get(path) ?? 0, size)
            const buffer = Buffer.allocUnsafe(CHUNK)
            while (offset < size) {
              const { bytesRead } = await handle.read(buffer, 0, Math.min(CHUNK, size - offset), offset)
              if (bytesRead === 0) break
              const last = buffer.lastIndexOf(10, bytesRead - 1)
              if (last === -1) {
                // The last line, still being appended: read it next time.
                if (offset + bytesRead >= size) break
                // A line longer than a chunk is not a ledger line: skip it whole (once it ends).
                const next = await skipLine(handle, offset + bytesRead, size)
                if (next === undefined) break
                skipped++
                offset = next
                continue
              }
              let start = 0
              for (let nl = buffer.indexOf(10, 0); nl !== -1 && nl <= last; nl = buffer.indexOf(10, start)) {
                if (nl > start) add(buffer.toString("utf8", start, nl))
                start = nl + 1
              }
              offset += last + 1
            }
            offsets.set(path, offset)
          } finally {
            await handle.close()
          }
        },
        catch: (cause) => new UsageUnavailable({ cause })
      })

    const refresh = Effect.gen(function*() {
      const names = yield* Effect.tryPromise({
        try: () => fs.readdir(dir).catch((e: NodeJS.ErrnoException) => e.code === "ENOENT" ? [] : Promise.reject(e)),
        catch: (cause) => new UsageUnavailable({ cause })
      })
      for (const name of names) if (USAGE_FILE.test(name)) yield* follow(join(dir, name))
    })

    return {
      read: (query) =>
        lock.withPermits(1)(Effect.map(refresh, () => aggregate.read(query))).pipe(
          Effect.tap(() => skipped > 0 ? Effect.logDebug("usage files: lines skipped").pipe(Effect.annotateLogs({ skipped })) : Effect.void)
        )
    }
  })

/** The offset after the newline that ends the line running past `from` (undefined: it has not ended yet). */
const skipLine = async (handle: fs.FileHandle, from: number, size: number): Promise<number | undefined> => {
  const buffer = Buffer.allocUnsafe(64 * 1024)
  let offset = from
  while (offset < size) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - offset), offset)
    if (bytesRead === 0) return undefined
    const nl = buffer.indexOf(10)
    if (nl !== -1 && nl < bytesRead) return offset + nl + 1
    offset += bytesRead
  }
  return undefined
}
