/**
 * The ledger's local journal: an append-only, segmented log of JSON lines (JournalEntry)
 * in one folder per process (`<data>/journal/<slot>/`), independent of where records end
 * up (file or database). It owns the files: appending with group commit, rolling and
 * deleting segments, reading records back in order, and the recovery scan at start.
 *
 * Writes: `append` queues a line and schedules one `writeSync` of everything queued for
 * the end of the current event-loop turn (setImmediate), so every line appended while
 * handling a request reaches the kernel before the next I/O poll, i.e. before any
 * response byte that follows it can be sent; a process killed after that loses nothing.
 * `fdatasync` (against power loss) is a group commit every `syncIntervalMs`, never per
 * request, and a rolled segment's last one runs on libuv's pool, never on the event loop.
 * The write path is plain TypeScript (it runs per request, and one Effect per line cost
 * more than the write), which is why it catches the write error itself: a failed write
 * keeps its lines queued, is counted, and is retried; it never throws into a request.
 *
 * Segments: `NNNNNNNNNN.jsonl`, rolled at `segmentBytes`. A new segment starts with a
 * header (next sequence number, last acked one) and a copy of the admissions still open
 * (the `carry`), so an old segment is needed only for its settled records; it is deleted,
 * oldest first, once every settled record in it is in the store (acked) and the copy is
 * on disk. A start never appends to an old segment (its last line may be torn by
 * `kill -9`): it scans them, then opens a new one. A lock file claims the folder.
 *
 * It must never interpret records beyond their sequence numbers and ids: what to do with
 * them is the Ledger's business.
 */
import { Clock, Data, Effect, Option, Schedule, type Scope } from "effect"
import * as fs from "node:fs"
import { join } from "node:path"
import type { AccountingRecord, Admission } from "./Accounting.ts"
import * as Entry from "./JournalEntry.ts"

export class JournalError extends Data.TaggedError("JournalError")<{ readonly message: string; readonly cause?: unknown }> {}

export interface JournalOptions {
  readonly dir: string
  readonly segmentBytes: number
  readonly syncIntervalMs: number
}

/** What the previous runs left in the folder. */
export interface Recovered {
  /** One more than the highest sequence number journaled (1 for an empty folder). */
  readonly nextSeq: number
  /** The highest sequence number known to be in the store. */
  readonly acked: number
  /** Admitted and never settled, in admission order. */
  readonly open: ReadonlyArray<Admission>
  readonly segments: number
  /** Lines that did not decode (torn tails, damage): skipped. */
  readonly invalidLines: number
}

export interface SettledRecord {
  readonly seq: number
  readonly record: AccountingRecord
  /** `JSON.stringify(record)` when it is at hand (the request path serializes once). */
  readonly json?: string | undefined
}

export interface Journal {
  readonly recovered: Recovered
  /** Queues a line (ending in "\n"); `seq` for a settled entry. Written before the next I/O poll. */
  readonly append: (line: string, seq?: number) => void
  /** Writes the queued lines now. */
  readonly flush: () => void
  /** Writes the queued lines and fdatasyncs them. */
  readonly sync: Effect.Effect<void, JournalError>
  /** Notes that every record up to `seq` is in the store (appends the ack; old segments may go). */
  readonly ack: (seq: number) => void
  /**
   * Settled records with `from ≤ seq < to`, at most `max`, in order, and the first
   * sequence number not covered (`to` when the journal holds nothing more below it).
   */
  readonly readSettled: (
    from: number,
    to: number,
    max: number
  ) => Effect.Effect<{ readonly records: ReadonlyArray<SettledRecord>; readonly next: number }, JournalError>
  readonly stats: () => { readonly segments: number; readonly bytes: number; readonly writeErrors: number }
}

interface Segment {
  readonly n: number
  readonly path: string
  bytes: number
  /** Highest settled sequence number in it (0: none). */
  maxSeq: number
}

const segmentName = (n: number) => `${String(n).padStart(10, "0")}.jsonl`
const SEGMENT = /^(\d{10})\.jsonl$/
const NEWLINE = 10
const CHUNK = 1 << 20

const attempt = <A>(what: string, f: () => A) =>
  Effect.try({ try: f, catch: (cause) => new JournalError({ message: `${what}: ${String(cause)}`, cause }) })

/** Reads `length` bytes at `position` (fewer at the end of the file). */
const readAt = (path: string, position: number, length: number) =>
  Effect.tryPromise({
    try: () =>
      fs.promises.open(path, "r").then((fh) =>
        fh.read(Buffer.allocUnsafe(length), 0, length, position).then(
          ({ buffer, bytesRead }) => fh.close().then(() => buffer.subarray(0, bytesRead)),
          (e: unknown) => fh.close().then(() => Promise.reject(e))
        )
      ),
    catch: (cause) => new JournalError({ message: `reading ${path}: ${String(cause)}`, cause })
  })

/**
 * Complete lines of `chunk` (split on the newline byte, so offsets stay byte-exact); the
 * bytes after the last newline are not consumed. `final`: the chunk ends the file, so an
 * unterminated last line is returned too (a torn tail: it decodes or it is skipped).
 */
const splitLines = (chunk: Buffer, final: boolean): { readonly lines: Array<{ text: string; end: number }>; readonly consumed: number } => {
  const lines: Array<{ text: string; end: number }> = []
  let start = 0
  for (let i = chunk.indexOf(NEWLINE); i !== -1; i = chunk.indexOf(NEWLINE, start)) {
    lines.push({ text: chunk.toString("utf8", start, i), end: i + 1 })
    start = i + 1
  }
  if (final && start < chunk.length) {
    lines.push({ text: chunk.toString("utf8", start), end: chunk.length })
    start = chunk.length
  }
  return { lines, consumed: start }
}

/** Calls `onLine` for every line of a segment file, in order, reading it in chunks. */
const scanFile = (path: string, size: number, onLine: (line: string) => void) =>
  Effect.gen(function*() {
    let position = 0
    let length = CHUNK
    while (position < size) {
      const chunk = yield* readAt(path, position, Math.min(length, size - position))
      const final = position + chunk.length >= size
      const { lines, consumed } = splitLines(chunk, final)
      for (const l of lines) onLine(l.text)
      if (consumed === 0) {
        // One line longer than the chunk: read a bigger one.
        length *= 2
        continue
      }
      position += consumed
    }
  })

/** Whether a process with this pid exists (EPERM: it does, and is not ours). */
const alive = (pid: number) =>
  Effect.try(() => process.kill(pid, 0)).pipe(
    Effect.as(true),
    Effect.catch((e) => Effect.succeed(e.cause instanceof Error && "code" in e.cause && e.cause.code === "EPERM"))
  )

/**
 * Claims the folder for this process: a `LOCK` file with its pid. A lock left by a dead
 * process, or holding this very pid (a restarted container), is taken over.
 */
const lock = (dir: string) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const path = join(dir, "LOCK")
      const holder = yield* attempt(`reading ${path}`, () => fs.existsSync(path) ? Number(fs.readFileSync(path, "utf8")) : undefined)
      if (holder !== undefined && Number.isInteger(holder) && holder > 0 && holder !== process.pid && (yield* alive(holder))) {
        return yield* new JournalError({
          message: `${dir} is in use by process ${holder} (one gateway process per data folder: set SLUICE_DATA_DIR)`
        })
      }
      yield* attempt(`locking ${dir}`, () => {
        if (holder !== undefined) fs.rmSync(path, { force: true })
        const fd = fs.openSync(path, "wx")
        fs.writeSync(fd, String(process.pid))
        fs.closeSync(fd)
      })
      return path
    }),
    (path) => Effect.sync(() => fs.rmSync(path, { force: true }))
  )

/** Scans the segments a previous run left: what was admitted, settled and acked. */
const recover = (dir: string) =>
  Effect.gen(function*() {
    const names = (yield* attempt(`listing ${dir}`, () => fs.readdirSync(dir))).filter((n) => SEGMENT.test(n)).sort()
    const segments: Array<Segment> = []
    const open = new Map<string, Admission>()
    let nextSeq = 1
    let acked = 0
    let invalidLines = 0
    for (const name of names) {
      const path = join(dir, name)
      const size = (yield* attempt(`reading ${path}`, () => fs.statSync(path))).size
      const segment: Segment = { n: Number(SEGMENT.exec(name)![1]), path, bytes: size, maxSeq: 0 }
      yield* scanFile(path, size, (line) => {
        const entry = Entry.decode(line)
        if (Option.isNone(entry)) {
          if (line !== "") invalidLines++
          return
        }
        const e = entry.value
        switch (e.t) {
          case "h":
            nextSeq = Math.max(nextSeq, e.next)
            acked = Math.max(acked, e.acked)
            break
          case "a":
            open.set(e.id, Entry.admissionOf(e))
            break
          case "s":
            open.delete(e.r.recordId)
            segment.maxSeq = Math.max(segment.maxSeq, e.sq)
            nextSeq = Math.max(nextSeq, e.sq + 1)
            break
          case "k":
            acked = Math.max(acked, e.sq)
            break
        }
      })
      segments.push(segment)
    }
    return { segments, recovered: { nextSeq, acked, open: [...open.values()], segments: segments.length, invalidLines } }
  })

/**
 * Opens the journal folder: claims it, scans what earlier runs left, starts a new segment
 * (header plus `carry()`), and runs the group-commit loop in the scope. Closing the scope
 * writes and syncs what is queued and closes the segment.
 */
export const open = (
  options: JournalOptions,
  carry: () => Iterable<string>
): Effect.Effect<Journal, JournalError, Scope.Scope> =>
  Effect.gen(function*() {
    const { dir } = options
    yield* attempt(`creating ${dir}`, () => fs.mkdirSync(dir, { recursive: true }))
    yield* lock(dir)
    const { segments, recovered } = yield* recover(dir)

    let pending: Array<string> = []
    let scheduled = false
    let writeErrors = 0
    let lastAcked = recovered.acked
    let maxSeq = recovered.nextSeq - 1
    /** The segment being written. */
    let fd = -1
    let current: Segment = { n: 0, path: "", bytes: 0, maxSeq: 0 }
    /** Bytes of `current` that are fdatasync'ed, and where its carried admissions end. */
    let synced = 0
    let carryEnd = 0

    const startSegment = (n: number, carried: Iterable<string>) => {
      const path = join(dir, segmentName(n))
      const head = Entry.header(maxSeq + 1, lastAcked) + [...carried].join("")
      // Written whole to a new file, then opened for appends: a failure leaves no open fd.
      fs.writeFileSync(path, head, { flag: "wx" })
      const newFd = fs.openSync(path, "a")
      fd = newFd
      current = { n, path, bytes: Buffer.byteLength(head), maxSeq: 0 }
      segments.push(current)
      synced = 0
      carryEnd = current.bytes
    }

    /** Bytes of a failed write still to be written (they go first, before `pending`). */
    let unwritten: Buffer | undefined

    const retryLater = () => {
      writeErrors++
      if (!scheduled) {
        scheduled = true
        setTimeout(flush, 100).unref()
      }
    }

    /**
     * The write path (plain: see the header). Everything queued goes out in one `writeSync`
     * (looping over a short write); a failure keeps the unwritten bytes, in order, for the
     * next attempt (the next append or a timer, whichever comes first).
     */
    const flush = () => {
      scheduled = false
      if (pending.length === 0 && unwritten === undefined) return
      if (fd < 0) {
        // A roll that could not open the next segment: try again.
        try {
          startSegment(current.n + 1, carry())
        } catch {
          return retryLater()
        }
      }
      const text = Buffer.from(pending.length === 1 ? pending[0]! : pending.join(""))
      pending = []
      let buffer = unwritten === undefined ? text : Buffer.concat([unwritten, text])
      unwritten = undefined
      try {
        while (buffer.length > 0) {
          const n = fs.writeSync(fd, buffer)
          current.bytes += n
          buffer = buffer.subarray(n)
        }
      } catch {
        unwritten = buffer
        return retryLater()
      }
      if (current.bytes >= options.segmentBytes) roll()
    }

    /** Rolled segments' last fdatasync and close, still on libuv's pool (see `roll`). */
    const retiring = new Set<Promise<void>>()

    /**
     * Starts the next segment. The full one gets its last fdatasync and its close on libuv's
     * pool, not here: `roll` runs inside a write on the request path, and a 16 MiB segment's
     * fdatasync held the event loop 1–6 ms with the group commit keeping up, 11–13 ms for a
     * segment written all at once (bench/README, "The journal's roll off the event loop"). Its
     * lines are written already (a `kill -9` loses none of them); the sync is for power loss, as
     * the group commit is, and a failed one is counted like a failed write. A shutdown waits
     * for it.
     */
    const roll = () => {
      const full = fd
      fd = -1
      const retired: Promise<void> = new Promise((resolve) =>
        fs.fdatasync(full, (e) => {
          if (e !== null) writeErrors++
          fs.close(full, () => resolve())
        })
      )
      retiring.add(retired)
      void retired.then(() => retiring.delete(retired))
      try {
        startSegment(current.n + 1, carry())
      } catch {
        writeErrors++
      }
    }

    const append = (line: string, seq?: number) => {
      pending.push(line)
      if (seq !== undefined) {
        if (seq > current.maxSeq) current.maxSeq = seq
        if (seq > maxSeq) maxSeq = seq
      }
      if (!scheduled) {
        scheduled = true
        setImmediate(flush)
      }
    }

    const fdatasync = Effect.suspend(() => {
      if (fd < 0) return Effect.void
      const target = current
      const upTo = current.bytes
      const handle = fd
      return Effect.callback<void, JournalError>((resume) => {
        fs.fdatasync(handle, (e) => {
          if (e !== null) return resume(Effect.fail(new JournalError({ message: `fdatasync: ${e.message}`, cause: e })))
          if (target === current && upTo > synced) synced = upTo
          resume(Effect.void)
        })
      })
    })

    /** Deletes segments, oldest first, whose settled records are all in the store. */
    const compact = Effect.suspend(() => {
      const gone: Array<Segment> = []
      while (segments.length > 1 && segments[0] !== current && segments[0]!.maxSeq <= lastAcked && synced >= carryEnd) {
        gone.push(segments.shift()!)
      }
      return Effect.forEach(gone, (s) =>
        attempt(`deleting ${s.path}`, () => fs.rmSync(s.path, { force: true })).pipe(
          Effect.catch((e) => Effect.logWarning("journal segment could not be deleted").pipe(Effect.annotateLogs({ error: e.message })))
        ), { discard: true })
    })

    const sync = Effect.suspend(() => {
      flush()
      return fdatasync
    })

    // The first segment carries the admissions earlier runs left open: until they are
    // settled (as interrupted) and acked, the new segment alone knows them.
    yield* attempt("starting a journal segment", () =>
      startSegment((segments.at(-1)?.n ?? 0) + 1, recovered.open.map(Entry.admitted)))
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        flush()
        yield* Effect.ignore(fdatasync)
        if (fd >= 0) yield* Effect.ignore(attempt("closing the journal", () => fs.closeSync(fd)))
        fd = -1
        if (retiring.size > 0) yield* Effect.promise(() => Promise.all(retiring))
      })
    )
    // Group commit: one fdatasync per interval when something was written, then compaction.
    // A failing disk is logged when the failures start and when they stop, not every interval.
    let failing = false
    yield* Effect.forkScoped(
      Effect.gen(function*() {
        if (current.bytes > synced || pending.length > 0) yield* sync
        yield* compact
        if (failing) {
          failing = false
          yield* Effect.logInfo("journal sync works again")
        }
      }).pipe(
        Effect.catch((e) => {
          if (failing) return Effect.void
          failing = true
          return Effect.logError("journal sync failed; retrying").pipe(Effect.annotateLogs({ error: e.message, dir }))
        }),
        Effect.repeat(Schedule.spaced(options.syncIntervalMs))
      )
    )

    /** The replay cursor: segment number and byte offset of the next unread line, and the last sequence number read. */
    const start = { n: segments[0]!.n, offset: 0, seq: 0 }
    let cursor = start

    const readSettled = (from: number, to: number, max: number) =>
      Effect.gen(function*() {
        // Records journaled before they carried their settlement time count as settled now.
        const now = yield* Clock.currentTimeMillis
        flush()
        // Reads move forward; a request for something already passed starts over.
        if (from <= cursor.seq) cursor = start
        const records: Array<SettledRecord> = []
        for (;;) {
          const segment = segments.find((s) => s.n >= cursor.n)
          if (segment === undefined) return { records, next: to }
          if (segment.n !== cursor.n) cursor = { n: segment.n, offset: 0, seq: cursor.seq }
          if (cursor.offset >= segment.bytes) {
            if (segment === current) return { records, next: to }
            cursor = { n: segment.n + 1, offset: 0, seq: cursor.seq }
            continue
          }
          const final = segment !== current
          const chunk = yield* readAt(segment.path, cursor.offset, Math.min(CHUNK, segment.bytes - cursor.offset))
          const { lines, consumed } = splitLines(chunk, final && cursor.offset + chunk.length >= segment.bytes)
          if (consumed === 0) return yield* new JournalError({ message: `a line longer than ${CHUNK} bytes in ${segment.path}` })
          const base = cursor.offset
          for (const l of lines) {
            let seq = cursor.seq
            // Only settled entries at or after `from` are parsed; the rest are skipped by their prefix.
            const settled = Entry.settledSeq(l.text)
            if (settled !== undefined && settled >= from) {
              if (settled >= to) return { records, next: to }
              const entry = Entry.decode(l.text)
              if (Option.isSome(entry) && entry.value.t === "s") {
                seq = entry.value.sq
                records.push({ seq, record: Entry.recordOf(entry.value.r, now) })
              }
            } else if (settled !== undefined) {
              seq = settled
            }
            cursor = { n: segment.n, offset: base + l.end, seq }
            if (records.length >= max) return { records, next: seq + 1 }
          }
        }
      })

    return {
      recovered,
      append,
      flush,
      sync,
      ack: (seq) => {
        if (seq <= lastAcked) return
        lastAcked = seq
        append(Entry.acked(seq))
      },
      readSettled,
      stats: () => ({ segments: segments.length, bytes: segments.reduce((n, s) => n + s.bytes, 0), writeErrors })
    } satisfies Journal
  })
