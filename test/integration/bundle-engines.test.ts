/**
 * What `npm start` runs: the esbuild bundle (the `bundle` script of package.json, built into a temporary
 * folder) with embedded engines, once as one process and once with `--workers 2` (the cluster primary starts
 * the engines, the workers share them). In each, an engine made to crash is restarted on its URL while the
 * gateway fails over, and serves again: the worker entry (`simulator-worker.mjs`) ships in the bundle.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = resolve(import.meta.dirname, "../..")

const freePort = () =>
  new Promise<number>((done) => {
    const s = createServer()
    s.listen(0, "127.0.0.1", () => {
      const address = s.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      s.close(() => done(port))
    })
  })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Running {
  readonly child: ChildProcess
  readonly lines: Array<Record<string, unknown>>
  readonly url: string
}

describe("embedded engines in the shipped bundle", () => {
  let dir: string
  const running: Array<ChildProcess> = []

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "sluice-bundle-"))
    const script = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts["bundle"]!
    expect(script).toContain("--outdir=dist")
    execFileSync("sh", ["-c", script.replace("--outdir=dist", `--outdir=${join(dir, "dist")}`)], {
      cwd: root,
      env: { ...process.env, PATH: `${join(root, "node_modules/.bin")}:${process.env["PATH"] ?? ""}` }
    })
    // The bundle's external packages (the Argon2 binary) resolve from node_modules next to dist/, as in a checkout.
    symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir")
    writeFileSync(join(dir, "sluice.yaml"), `
models: [{ name: m }]
backends:
  - { id: a, simulate: { profile: llama-3.1-8b-fp8-h100, time_scale: 50, seed: 1 }, models: [m], gpu: H100 }
  - { id: b, simulate: { profile: llama-3.1-8b-fp8-h100, time_scale: 50, seed: 2 }, models: [m], gpu: A100 }
routing: { policy: ordered }
retries: { max_attempts: 3, budget_ratio: 1, min_per_second: 1000 }
breakers: { min_requests: 1000 }
health: { unhealthy_after: 1000 }
`)
  }, 120_000)
  afterAll(async () => {
    for (const child of running) if (child.exitCode === null) child.kill("SIGKILL")
    rmSync(dir, { recursive: true, force: true })
  })

  /** Starts `node dist/main.mjs` and waits until `listeners` processes log that they listen. */
  const start = async (extra: ReadonlyArray<string>, listeners: number): Promise<Running> => {
    const port = await freePort()
    const child = spawn(process.execPath, [join(dir, "dist/main.mjs"), "--config", join(dir, "sluice.yaml"), "--port", String(port), ...extra], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"]
    })
    running.push(child)
    const lines: Array<Record<string, unknown>> = []
    let carry = ""
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      carry += chunk
      const parts = carry.split("\n")
      carry = parts.pop()!
      for (const p of parts) {
        if (p.startsWith("{")) lines.push(JSON.parse(p) as Record<string, unknown>)
      }
    })
    child.stderr!.resume()
    const deadline = performance.now() + 60_000
    while (lines.filter((l) => l["message"] === "sluice listening").length < listeners) {
      if (child.exitCode !== null) throw new Error(`the bundle exited with ${child.exitCode}`)
      if (performance.now() > deadline) throw new Error("the bundle did not start")
      await sleep(20)
    }
    return { child, lines, url: `http://127.0.0.1:${port}` }
  }

  const stop = (r: Running) =>
    new Promise<number | null>((done) => {
      r.child.once("exit", (code) => done(code))
      r.child.kill("SIGTERM")
    })

  const chat = (r: Running) =>
    fetch(`${r.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "Hello" }], max_tokens: 4 })
    }).then(async (res) => ({ status: res.status, backend: res.headers.get("x-sluice-backend"), text: await res.text() }))

  const engineUrl = (r: Running, id: string): string => {
    const listening = r.lines.find((l) => l["message"] === "sluice listening")!
    const backends = String((listening["annotations"] as Record<string, unknown>)["backends"])
    const entry = backends.split(",").find((e) => e.startsWith(`${id}=`))!
    return new URL(entry.slice(id.length + 1)).origin
  }

  const crashAndRecover = async (r: Running) => {
    expect(await chat(r)).toMatchObject({ status: 200, backend: "a" })
    const a = engineUrl(r, "a")
    const put = await fetch(`${a}/admin/faults`, { method: "PUT", body: JSON.stringify({ crash: "throw" }) })
    expect(put.status).toBe(200)
    // The engine dies under this request; the gateway fails over to b.
    expect(await chat(r)).toMatchObject({ status: 200, backend: "b" })
    const deadline = performance.now() + 20_000
    let last = await chat(r)
    while (last.backend !== "a" && performance.now() < deadline) {
      await sleep(50)
      last = await chat(r)
    }
    expect(last).toMatchObject({ status: 200, backend: "a" })
    expect(r.lines.some((l) => l["message"] === "embedded engine restarted")).toBe(true)
    expect(r.child.exitCode).toBe(null)
  }

  it("one process: a crashed engine comes back on its URL and the gateway never goes down", async () => {
    const r = await start([], 1)
    await crashAndRecover(r)
    await stop(r)
  }, 120_000)

  it("--workers 2: the primary supervises the engines; the workers keep serving through a crash", async () => {
    const r = await start(["--workers", "2"], 2)
    await crashAndRecover(r)
    await stop(r)
  }, 120_000)
})
