/**
 * The `sluice` command line, run as a child process: the bundle the `bin` points at, built
 * from source with the package's own `bundle` script into a temporary folder. Help and
 * version answer without starting anything, unknown commands, flags and bad values are
 * usage errors (exit 2), check-config reports every problem with its path, simulate and
 * serve start and stop on a signal.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { delimiter, join } from "node:path"
import type * as esbuild from "esbuild"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = join(import.meta.dirname, "..", "..")
const dir = mkdtempSync(join(tmpdir(), "sluice-cli-"))
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  readonly version: string
  readonly bin: { readonly sluice: string }
  readonly scripts: { readonly bundle: string }
}
const version = pkg.version
const bin = join(dir, "dist", "main.mjs")

beforeAll(() => {
  expect(pkg.bin.sluice).toBe("dist/main.mjs")
  const script = `${pkg.scripts.bundle.replace("--outdir=dist", `--outdir=${join(dir, "dist")}`)} --metafile=${join(dir, "meta.json")}`
  expect(script, "the bundle script writes to --outdir=dist").toContain(`--outdir=${join(dir, "dist")}`)
  const built = spawnSync("sh", ["-c", script], {
    cwd: root,
    env: { ...process.env, PATH: `${join(root, "node_modules", ".bin")}${delimiter}${process.env["PATH"] ?? ""}` },
    encoding: "utf8"
  })
  expect(built.status, built.stderr).toBe(0)
  // The bundle's external packages (the Argon2 binary) resolve from node_modules next to dist/, as in a checkout.
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir")
}, 60_000)

/** A config whose backend is never contacted (probes off): if a command wrongly starts the server, it starts quietly. */
const quietConfig = join(dir, "quiet.yaml")
writeFileSync(quietConfig, `
server: { host: 127.0.0.1, port: 0 }
backends:
  - { id: a, url: "http://127.0.0.1:9/v1", models: [m] }
health: { probe_interval: 0s }
`)

interface Ran {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly timedOut: boolean
}

const children = new Set<ChildProcess>()
afterAll(() => {
  for (const c of children) c.kill("SIGKILL")
  rmSync(dir, { recursive: true, force: true })
})

const spawnCli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: root,
    env: { ...process.env, PORT: "0", SLUICE_CONFIG: quietConfig, SLUICE_LOG_LEVEL: "info", SLUICE_DATA_DIR: dir, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.add(child)
  child.on("exit", () => children.delete(child))
  return child
}

/** Runs the CLI to its end; a command still running after `ms` is killed and reported as timed out. */
const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}, ms = 10_000) =>
  new Promise<Ran>((resolve) => {
    const child = spawnCli(args, env)
    let stdout = ""
    let stderr = ""
    let timedOut = false
    child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()))
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()))
    const timer = setTimeout(() => {
      timedOut = true
      child.kill("SIGKILL")
    }, ms)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut })
    })
  })

/** Starts a long-running command, waits for `ready` in its stdout, then SIGTERMs it. */
const startAndStop = (args: ReadonlyArray<string>, ready: RegExp, env: Record<string, string> = {}, ms = 20_000) =>
  new Promise<{ readonly match: RegExpExecArray; readonly stdout: string; readonly code: number | null; readonly signal: NodeJS.Signals | null; readonly stopMs: number }>(
    (resolve, reject) => {
      const child = spawnCli(args, env)
      let stdout = ""
      let stderr = ""
      let match: RegExpExecArray | null = null
      let stoppedAt = 0
      const timer = setTimeout(() => {
        child.kill("SIGKILL")
        reject(new Error(`no ${ready} within ${ms} ms; stdout: ${stdout} stderr: ${stderr}`))
      }, ms)
      child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()))
      child.stdout!.on("data", (c: Buffer) => {
        stdout += c.toString()
        if (match === null) {
          match = ready.exec(stdout)
          if (match !== null) {
            stoppedAt = performance.now()
            child.kill("SIGTERM")
          }
        }
      })
      child.on("close", (code, signal) => {
        clearTimeout(timer)
        if (match === null) return reject(new Error(`exited (${code}) before ${ready}; stdout: ${stdout} stderr: ${stderr}`))
        resolve({ match, stdout, code, signal, stopMs: performance.now() - stoppedAt })
      })
    }
  )

describe("sluice --help / --version", () => {
  it("prints the overview and exits 0 without starting the server", async () => {
    const r = await run(["--help"])
    expect(r.timedOut).toBe(false)
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("Usage:")
    expect(r.stdout).toContain("check-config")
    expect(r.stdout).not.toContain("sluice listening")
  })

  it("prints each command's help", async () => {
    const serve = await run(["help", "serve"])
    expect(serve.code).toBe(0)
    for (const flag of ["--config", "--upstream", "--host", "--port", "--log-level", "--workers"]) expect(serve.stdout).toContain(flag)
    const check = await run(["check-config", "--help"])
    expect(check.code).toBe(0)
    expect(check.stdout).toContain("Usage: sluice check-config")
    const sim = await run(["simulate", "--help"])
    expect(sim.code).toBe(0)
    expect(sim.stdout).toContain("--profile")
  })

  it("loads nothing else: what the entry imports statically holds no effect, gateway, simulator or tokenizer code", () => {
    const meta = JSON.parse(readFileSync(join(dir, "meta.json"), "utf8")) as esbuild.Metafile
    const outputs = meta.outputs
    const entry = Object.keys(outputs).find((o) => outputs[o]!.entryPoint === "src/main.ts")!
    const loaded = new Set<string>()
    const visit = (out: string) => {
      if (loaded.has(out)) return
      loaded.add(out)
      for (const i of outputs[out]!.imports) if (i.kind === "import-statement" && !i.external) visit(i.path)
    }
    visit(entry)
    const inputs = [...loaded].flatMap((o) => Object.keys(outputs[o]!.inputs))
    expect(inputs).toContain("src/cli/Command.ts")
    expect(inputs.filter((i) => /node_modules\/(effect|@effect|gpt-tokenizer)\/|src\/(Gateway|Cluster|simulator\/|admission\/)/.test(i))).toEqual([])
    const dynamic = outputs[entry]!.imports.filter((i) => i.kind === "dynamic-import")
    expect(dynamic.length).toBe(6) // serve, check-config, simulate, plan, usage, keys
  })

  it("is executable as the package's bin: the bundle starts with a node shebang", () => {
    expect(readFileSync(bin, "utf8").split("\n")[0]).toBe("#!/usr/bin/env node")
  })

  it("prints the version from package.json and exits 0", async () => {
    const r = await run(["--version"])
    expect(r.timedOut).toBe(false)
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toBe(`sluice ${version}`)
  })
})

describe("usage errors exit 2 with a pointer to --help", () => {
  // The whole grammar is pinned in process (Command.test.ts); here, one of each kind through the binary.
  it.each([
    [["--bogus"], "unknown flag --bogus", "sluice --help"],
    [["serve", "--prot", "9000"], "unknown flag --prot", "sluice help serve"],
    [["launch"], "unknown command \"launch\"", "sluice --help"],
    [["--port", "70000"], "--port must be a port number", "sluice --help"],
    [["--log-level", "loud"], "--log-level must be one of", "sluice --help"],
    [["check-config", "--strict"], "unknown flag --strict", "sluice help check-config"],
    [["--version", "extra"], "unknown command \"extra\"", "sluice --help"]
  ])("%j", async (args, message, pointer) => {
    const r = await run(args)
    expect(r.timedOut).toBe(false)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(message)
    expect(r.stderr).toContain(`Run '${pointer}' for usage.`)
    expect(r.stdout).toBe("")
  })

  it("simulate rejects its unknown flags too", async () => {
    const r = await run(["simulate", "--nope", "1"])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("unknown flag --nope")
  })
})

describe("sluice check-config", () => {
  it("accepts the shipped config and exits 0", async () => {
    const r = await run(["check-config", "config/sluice.yaml"])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("config/sluice.yaml: ok (2 models, 4 backends")
  })

  it("checks what serve would load when no file is given", async () => {
    const r = await run(["check-config"])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(`${quietConfig}: ok (1 models, 1 backends`)
  })

  it("prints the path of every schema error and exits 1", async () => {
    const file = join(dir, "typos.yaml")
    writeFileSync(file, `
backends:
  - { id: a, url: "http://127.0.0.1:9/v1", models: [m] }
  - { id: b, url: "http://127.0.0.1:9/v1", models: [m], max_concurency: 4 }
timeouts: { frist_token: 2s }
`)
    const r = await run(["check-config", file])
    expect(r.code).toBe(1)
    const lines = r.stderr.trim().split("\n")
    expect(lines).toContain(`${file}: backends[1].max_concurency: Expected no excess property`)
    expect(lines).toContain(`${file}: timeouts.frist_token: Expected no excess property`)
    expect(r.stdout).toBe("")
  })

  it("prints every cross-field error, not only the first", async () => {
    const file = join(dir, "plan.yaml")
    writeFileSync(file, `
models: [{ name: m }, { name: orphan }]
backends:
  - { id: a, url: "http://127.0.0.1:9/v1", models: [m] }
  - { id: a, url: "http://127.0.0.1:9/v1", models: [m, mistral] }
`)
    const r = await run(["check-config", file])
    expect(r.code).toBe(1)
    const lines = r.stderr.trim().split("\n")
    expect(lines).toContain(`${file}: backends[1].id: duplicate backend id "a"`)
    expect(lines).toContain(`${file}: backends[1].models[1]: model "mistral" is not declared under models`)
    expect(lines).toContain(`${file}: models[1]: model "orphan" is not served by any backend`)
  })

  it("runs the registries' checks serve runs at start: unknown dialects and plugins, with their paths", async () => {
    const file = join(dir, "names.yaml")
    writeFileSync(file, `
backends:
  - { id: a, url: "http://127.0.0.1:9/v1", models: [m], dialect: nonesuch }
routing: { policy: inference, filters: [nosuchfilter], scorers: { nosuchscorer: 1 } }
auth: { authenticators: [api_key, anonymous] }
`)
    const r = await run(["check-config", file])
    expect(r.code).toBe(1)
    const lines = r.stderr.trim().split("\n")
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${file}: backends\\[0\\]\\.dialect: unknown dialect "nonesuch"`)))
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${file}: routing\\.filters\\[0\\]: unknown filter "nosuchfilter"`)))
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${file}: routing\\.scorers\\.nosuchscorer: unknown scorer`)))
    // The built-in authenticators are known.
    expect(r.stderr).not.toContain("auth.authenticators")
    expect(r.stdout).toBe("")
  })

  it("reports YAML syntax errors with their line, and unreadable files, per file", async () => {
    const broken = join(dir, "broken.yaml")
    writeFileSync(broken, "backends:\n  - { id: a\n")
    const r = await run(["check-config", "config/sluice.yaml", broken, join(dir, "missing.yaml")])
    expect(r.code).toBe(1)
    expect(r.stdout).toContain("config/sluice.yaml: ok")
    expect(r.stderr).toMatch(new RegExp(`${broken}: YAML at line \\d+, column \\d+: `))
    expect(r.stderr).toContain(`${join(dir, "missing.yaml")}: cannot read the file`)
  })

  it("reads backends' key variables from the environment, as serve does", async () => {
    const file = join(dir, "keys.yaml")
    writeFileSync(file, `backends: [{ id: a, url: "http://127.0.0.1:9/v1", models: [m], api_key_env: SLUICE_TEST_KEY }]\n`)
    const without = await run(["check-config", file])
    expect(without.code).toBe(1)
    expect(without.stderr).toContain(`${file}: backends[0].api_key_env: environment variable SLUICE_TEST_KEY is not set`)
    const withKey = await run(["check-config", file], { SLUICE_TEST_KEY: "k" })
    expect(withKey.code).toBe(0)
  })
})

describe("long-running commands", () => {
  it("serve (the default command) starts with its flags and drains on SIGTERM", async () => {
    for (const args of [["serve", "--config", quietConfig, "--port", "0", "--log-level", "info"], ["--config", quietConfig]]) {
      const r = await startAndStop(args, /"sluice listening"[^\n]*"address":"http:\/\/127\.0\.0\.1:(\d+)"/)
      expect(Number(r.match[1])).toBeGreaterThan(0)
      expect(r.code).toBe(0)
      expect(r.stopMs).toBeLessThan(10_000)
    }
  })

  it("the bundle serves with budgets in Redis (ioredis, CommonJS, loaded on demand)", async () => {
    const r = await startAndStop(["--config", quietConfig], /"sluice listening"/, { REDIS_URL: "redis://127.0.0.1:6379" })
    expect(r.stdout).toContain("token budgets shared through redis")
    expect(r.code).toBe(0)
  })

  it("simulate serves an engine until SIGTERM", async () => {
    const r = await startAndStop(
      ["simulate", "--profile", "llama-3.1-8b-fp8-h100", "--model", "m", "--port", "0"],
      /(http:\/\/127\.0\.0\.1:\d+)/
    )
    expect(r.stdout).toContain("llama-3.1-8b-fp8-h100")
    expect(r.signal === "SIGTERM" || r.code === 0 || r.code === 130).toBe(true)
  })
})

describe("hot reload in the service binary", () => {
  it.each([1, 2])("SIGHUP reloads the config (the process stays up; workers: %i); an invalid file keeps the last good one", async (workers) => {
    // The config is a symlink into another folder: edits there are invisible to the file
    // watch (it watches the link's folder), so only SIGHUP can apply them.
    const real = mkdtempSync(join(dir, "real-"))
    const target = join(real, "sluice.yaml")
    const link = join(dir, `hup-${workers}.yaml`)
    const config = (models: string) => `
server: { host: 127.0.0.1, port: 0 }
backends:
  - { id: a, url: "http://127.0.0.1:9/v1", models: [${models}] }
health: { probe_interval: 0s }
`
    writeFileSync(target, config("m"))
    symlinkSync(target, link)
    const child = spawnCli(["serve", "--config", link, "--workers", String(workers)])
    let stdout = ""
    child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()))
    /** The first match, once `pattern` matched once per worker. */
    const waitFor = async (pattern: RegExp, ms = 20_000) => {
      const start = performance.now()
      const all = new RegExp(pattern.source, "g")
      while (performance.now() - start < ms) {
        const m = [...stdout.matchAll(all)]
        if (m.length >= workers) return m[0]!
        if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${stdout}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      throw new Error(`no ${pattern} within ${ms} ms: ${stdout}`)
    }
    try {
      const url = (await waitFor(/"sluice listening"[^\n]*"address":"(http:\/\/127\.0\.0\.1:\d+)"/))[1]!
      const models = async () =>
        ((await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> }).data.map((m) => m.id).sort()
      expect(await models()).toEqual(["m"])

      writeFileSync(target, config("m, m2"))
      await new Promise((r) => setTimeout(r, 500))
      expect(await models(), "the watch must not see a write behind the symlink").toEqual(["m"])
      child.kill("SIGHUP")
      // Every worker reloaded (the primary passes the signal on).
      await waitFor(/"config reloaded"[^\n]*"trigger":"signal"/)
      expect(await models()).toEqual(["m", "m2"])

      writeFileSync(target, "backends: [ { id: a\n")
      child.kill("SIGHUP")
      const rejected = await waitFor(/"config reload rejected[^\n]*/)
      expect(rejected[0]).toContain("YAML at line")
      expect(await models()).toEqual(["m", "m2"])
      expect(child.exitCode).toBe(null)
    } finally {
      child.kill("SIGTERM")
      await new Promise((r) => child.once("close", r))
    }
  }, 60_000)
})
