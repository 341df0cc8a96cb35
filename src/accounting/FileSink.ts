/**
 * The embedded audit ledger of a single process: accounting records appended as JSON
 * lines to `<data dir>/usage.jsonl` (`usage.<slot>.jsonl` for cluster worker `slot` > 0),
 * behind the durable Ledger (journal in `<data dir>/journal/<slot>/`). The file store
 * appends a batch, fdatasyncs it, and only then counts it written.
 *
 * Each line carries the record's sequence number; lines are appended in sequence order,
 * so the last line says what the file already holds, and a replay after a crash skips
 * those (no duplicates). A torn last line (the process died inside an append) is cut off
 * at start: it was never acknowledged, so the journal replays it.
 *
 * Usage reports read the files of the folder (FileUsage.ts).
 */
import { Clock, Effect, Layer, Option, type Scope } from "effect"
import * as fs from "node:fs"
import { join } from "node:path"
import { UsageSink } from "./Accounting.ts"
import { JournalError } from "./Journal.ts"
import * as FileUsage from "./FileUsage.ts"
import * as Entry from "./JournalEntry.ts"
import * as Ledger from "./Ledger.ts"

const TAIL = 64 * 1024

const attempt = <A>(what: string, f: () => A) =>
  Effect.try({ try: f, catch: (cause) => new JournalError({ message: `${what}: ${String(cause)}`, cause }) })

/** Cuts an unterminated last line off and returns the sequence number of the last whole one. */
const repairTail = (path: string) =>
  attempt(`reading ${path}`, () => {
    if (!fs.existsSync(path)) return 0
    const fd = fs.openSync(path, "r+")
    const { size } = fs.fstatSync(fd)
    // Read backwards in growing windows until the window holds the last whole line.
    for (let window = Math.min(size, TAIL);; window = Math.min(size, window * 2)) {
      const tail = Buffer.allocUnsafe(window)
      fs.readSync(fd, tail, 0, window, size - window)
      const newline = tail.lastIndexOf(10)
      const previous = newline <= 0 ? -1 : tail.lastIndexOf(10, newline - 1)
      if (window < size && previous === -1) continue
      const end = newline === -1 ? 0 : size - window + newline + 1
      if (end < size) fs.ftruncateSync(fd, end)
      fs.closeSync(fd)
      if (newline === -1) return 0
      return Option.getOrElse(Entry.usageLineSeq(tail.toString("utf8", previous + 1, newline)), () => 0)
    }
  })

/** `usage.jsonl` as a ledger store. */
export const store = (path: string): Effect.Effect<Ledger.Store, JournalError, Scope.Scope> =>
  Effect.gen(function*() {
    let committedSeq = yield* repairTail(path)
    const fd = yield* Effect.acquireRelease(
      attempt(`opening ${path}`, () => fs.openSync(path, "a")),
      (fd) => Effect.sync(() => fs.closeSync(fd))
    )
    let size = (yield* attempt(`reading ${path}`, () => fs.fstatSync(fd))).size
    const failure = (what: string, e: Error) => new JournalError({ message: `${what} ${path}: ${e.message}`, cause: e })
    /** Appends the whole buffer (looping over short writes) and fdatasyncs; on failure cuts the file back. */
    const write = (text: Buffer) =>
      Effect.callback<void, JournalError>((resume) => {
        const undo = (e: Error) => fs.ftruncate(fd, size, () => resume(Effect.fail(failure("appending to", e))))
        const from = (offset: number) =>
          fs.write(fd, text, offset, text.length - offset, null, (e, n) => {
            if (e !== null) return undo(e)
            if (offset + n < text.length) return from(offset + n)
            fs.fdatasync(fd, (e2) => {
              if (e2 !== null) return undo(e2)
              size += text.length
              resume(Effect.void)
            })
          })
        from(0)
      })
    return {
      name: "file",
      committedSeq,
      write: (batch) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const fresh = batch.filter((r) => r.seq > committedSeq)
          if (fresh.length === 0) return Effect.void
          const at = new Date(now).toISOString()
          const text = Buffer.from(fresh.map((r) => Entry.usageLine(r.seq, r.json ?? JSON.stringify(r.record), at)).join(""))
          return Effect.tap(write(text), () => Effect.sync(() => (committedSeq = fresh.at(-1)!.seq)))
        })
    } satisfies Ledger.Store
  })

/** The usage file of a process slot (cluster workers each get their own). */
export const usageFile = (slot: number) => slot === 0 ? "usage.jsonl" : `usage.${slot}.jsonl`

export const layer = (dir: string, options: Omit<Ledger.LedgerOptions, "journalDir"> & { readonly slot?: number }) =>
  Layer.effect(
    UsageSink,
    Effect.gen(function*() {
      const slot = options.slot ?? 0
      yield* attempt(`creating ${dir}`, () => fs.mkdirSync(dir, { recursive: true }))
      const path = join(dir, usageFile(slot))
      // Reports read every worker's usage file in the folder, not only this one's.
      const files = yield* FileUsage.reader(dir)
      const sink = yield* Ledger.make({ ...(yield* store(path)), read: files.read }, { ...options, journalDir: join(dir, "journal", String(slot)) })
      yield* Effect.logInfo("audit ledger in a local file").pipe(Effect.annotateLogs({ path }))
      return sink
    })
  )
