/**
 * The journal's roll never waits for the disk on the event loop: the full segment's last
 * fdatasync and its close run on libuv's pool (a 16 MiB segment's sync held the loop up to
 * ~55 ms), every rolled segment is still synced before it is closed, and a shutdown waits
 * for those syncs. `fdatasyncSync` is made to throw here, so a roll that called it would
 * count write errors and stop rolling.
 */
import { Effect, Exit, Scope } from "effect"
import * as realFs from "node:fs"
import { mkdtempSync, readdirSync, readlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it, vi } from "vitest"
import * as Journal from "../../src/accounting/Journal.ts"

const events: Array<string> = []

vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>()
  const patched = {
    ...fs,
    fdatasyncSync: () => {
      throw new Error("fdatasyncSync on the event loop")
    },
    fdatasync: (fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
      events.push(`sync ${fd}`)
      fs.fdatasync(fd, cb)
    },
    close: (fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
      events.push(`close ${fd}`)
      fs.close(fd, cb)
    }
  }
  return { ...patched, default: patched }
})

/** Open descriptors of this process on files in `dir`. */
const openIn = (dir: string) =>
  readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir)
    } catch {
      return false
    }
  }).length

describe("Journal roll", () => {
  it("syncs and closes full segments off the event loop, and a shutdown waits for them", async () => {
    expect(realFs.fdatasyncSync).toThrow(/event loop/)
    const dir = mkdtempSync(join(tmpdir(), "sluice-journal-roll-"))
    const scope = await Effect.runPromise(Scope.make())
    const journal = await Effect.runPromise(
      Journal.open({ dir, segmentBytes: 4096, syncIntervalMs: 60_000 }, () => []).pipe(Scope.provide(scope))
    )
    const line = `${JSON.stringify({ t: "k", sq: 1, pad: "x".repeat(400) })}\n`
    for (let i = 0; i < 100; i++) {
      journal.append(line)
      journal.flush()
    }
    const segments = readdirSync(dir).filter((n) => n.endsWith(".jsonl"))
    // ~42 KB through 4 KiB segments: about ten rolls, none of them failed
    expect(segments.length).toBeGreaterThanOrEqual(9)
    expect(journal.stats().writeErrors).toBe(0)
    await Effect.runPromise(Scope.close(scope, Exit.void))
    // every rolled segment was synced, then closed, and none is left open after the shutdown
    const synced = events.filter((e) => e.startsWith("sync ")).map((e) => e.slice(5))
    const closed = events.filter((e) => e.startsWith("close ")).map((e) => e.slice(6))
    expect(closed.length).toBe(segments.length - 1)
    for (const fd of closed) expect(events.indexOf(`sync ${fd}`)).toBeLessThan(events.indexOf(`close ${fd}`))
    expect(synced.length).toBeGreaterThanOrEqual(closed.length)
    expect(openIn(dir)).toBe(0)
  })
})
