/**
 * Starts the built bundle (`dist/main.mjs`, what `npm start` runs) as a child process for
 * end-to-end tests: a config file from YAML text, an explicit environment (nothing leaks
 * in from the test runner's own environment), stdout kept as lines, the listening address
 * read from the start-up log line. Every process started here is stopped by `stopAll`.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const root = new URL("../../..", import.meta.url).pathname
export const bundlePath = join(root, "dist", "main.mjs")

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface Sluice {
  readonly url: string
  readonly pid: number
  readonly child: ChildProcess
  /** Every stdout/stderr line so far. */
  readonly lines: Array<string>
  readonly exited: Promise<Exited>
  /** Resolves with the first line (past or future) that matches, or rejects after `ms`. */
  readonly waitForLine: (match: (line: string) => boolean, ms?: number) => Promise<string>
  readonly kill: (signal: NodeJS.Signals) => Promise<Exited>
}

const running = new Set<ChildProcess>()

export const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), `sluice-e2e-${prefix}-`))

/** Starts the bundle and waits until it listens (or fails with its output if it exits first). */
export const start = async (options: {
  readonly yaml: string
  readonly env?: Readonly<Record<string, string>>
  readonly args?: ReadonlyArray<string>
  /** The data folder (journal, usage.jsonl); a fresh temporary one when omitted. */
  readonly dataDir?: string
  readonly startMs?: number
}): Promise<Sluice> => {
  const dir = tempDir("cfg")
  const config = join(dir, "sluice.yaml")
  writeFileSync(config, options.yaml)
  const env: Record<string, string> = {
    PATH: process.env["PATH"] ?? "",
    HOME: process.env["HOME"] ?? "",
    SLUICE_DATA_DIR: options.dataDir ?? tempDir("data"),
    ...options.env
  }
  const child = spawn(process.execPath, [bundlePath, "--config", config, "--port", "0", ...(options.args ?? [])], {
    cwd: dir,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  running.add(child)
  const lines: Array<string> = []
  let waiters: Array<{ match: (line: string) => boolean; resolve: (line: string) => void }> = []
  const onLine = (line: string) => {
    lines.push(line)
    const hit = waiters.filter((w) => w.match(line))
    waiters = waiters.filter((w) => !w.match(line))
    for (const w of hit) w.resolve(line)
  }
  for (const stream of [child.stdout!, child.stderr!]) {
    let carry = ""
    stream.setEncoding("utf8")
    stream.on("data", (chunk: string) => {
      carry += chunk
      let i: number
      while ((i = carry.indexOf("\n")) !== -1) {
        onLine(carry.slice(0, i))
        carry = carry.slice(i + 1)
      }
    })
  }
  const exited = new Promise<Exited>((resolve) =>
    child.once("exit", (code, signal) => {
      running.delete(child)
      resolve({ code, signal })
    })
  )
  const waitForLine = (match: (line: string) => boolean, ms = 10_000) =>
    new Promise<string>((resolve, reject) => {
      const seen = lines.find(match)
      if (seen !== undefined) return resolve(seen)
      const timer = setTimeout(() => reject(new Error(`no matching line within ${ms} ms; output:\n${lines.slice(-40).join("\n")}`)), ms)
      waiters.push({ match, resolve: (line) => (clearTimeout(timer), resolve(line)) })
      void exited.then((e) => {
        clearTimeout(timer)
        reject(new Error(`sluice exited (${e.code ?? e.signal}) before the expected line; output:\n${lines.slice(-40).join("\n")}`))
      })
    })
  const listening = await waitForLine((l) => l.includes("\"sluice listening\""), options.startMs ?? 15_000)
  const address = /"address":"(http:\/\/[^"]+)"/.exec(listening)?.[1]
  if (address === undefined) throw new Error(`no address in ${listening}`)
  const kill = (signal: NodeJS.Signals) => {
    child.kill(signal)
    return exited
  }
  return { url: address, pid: child.pid!, child, lines, exited, waitForLine, kill }
}

/** Kills whatever a test left running (afterAll / afterEach). */
export const stopAll = async () => {
  const left = [...running]
  for (const c of left) c.kill("SIGKILL")
  await Promise.all(left.map((c) => new Promise((r) => c.exitCode !== null || c.signalCode !== null ? r(undefined) : c.once("exit", r))))
}

/** JSON log lines of the process (other output skipped). */
export const jsonLines = (lines: ReadonlyArray<string>): Array<Record<string, unknown>> =>
  lines.flatMap((l) => {
    if (!l.startsWith("{")) return []
    const parsed: unknown = JSON.parse(l)
    return typeof parsed === "object" && parsed !== null ? [Object.fromEntries(Object.entries(parsed))] : []
  })
