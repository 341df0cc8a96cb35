/**
 * The tenant and key commands against a real embedded database in a temporary data folder,
 * shared with a running gateway graph: a key made on the command line turns keys on in the
 * running gateway and works there, a revocation reaches it within the cache TTL, listing
 * never prints a key, and `keys hash` gives an id and hash that work as a declared key.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Cli from "../../src/cli/keys.ts"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, startGateway, type TestGateway } from "../support/Gateway.ts"

const dir = mkdtempSync(join(tmpdir(), "sluice-cli-"))
process.env["SLUICE_DATA_DIR"] = dir

const cli = async (argv: ReadonlyArray<string>) => {
  const out: Array<string> = []
  const err: Array<string> = []
  const code = await Cli.main(argv, { out: (l) => void out.push(l), err: (l) => void err.push(l) })
  return { code, out: out.join("\n"), err: err.join("\n") }
}

describe("sluice keys / sluice tenants", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway

  const status = (key: string | undefined, target = () => gw) =>
    fetch(`${target().url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(key === undefined ? {} : { "x-api-key": key }) },
      body: JSON.stringify({ model: "llama-3.1-8b", messages: [{ role: "user", content: "hi" }] })
    }).then(async (r) => {
      await r.text()
      return r.status
    })

  beforeAll(async () => {
    engine = await Fake.start(() => ({}))
    gw = await startGateway(`
backends:
  - { id: a, url: ${engine.url}, models: [llama-3.1-8b, llama-3.3-70b] }
auth: { cache_ttl: 200ms }
`)
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it("creates a key (printed once) that a running gateway accepts, and turns keys on there", async () => {
    expect(await status(undefined)).toBe(200)
    const created = await cli(["keys", "create", "--tenant", "acme", "--name", "ci", "--models", "llama-3.1-8b", "--expires", "30d"])
    expect(created.code).toBe(0)
    const key = /key:\s+(sk-sluice-\S+)/.exec(created.out)?.[1]
    expect(key).toMatch(/^sk-sluice-[0-9A-Za-z]{12}-[0-9A-Za-z]{43}$/)
    expect(created.out).toContain("tenant: acme")
    // The gateway notices the first key within its 2 s re-check, then refuses anonymous calls.
    expect(await eventually(() => status(undefined), (s) => s === 401, 5000)).toBe(401)
    expect(await status(key)).toBe(200)
    const listed = await cli(["keys", "list", "--tenant", "acme", "--json"])
    expect(listed.code).toBe(0)
    expect(listed.out).not.toContain(key!)
    expect(listed.out).not.toContain("argon2")
    const [row] = JSON.parse(listed.out) as Array<{ id: string; status: string; models: Array<string> }>
    expect(row).toMatchObject({ status: "active", models: ["llama-3.1-8b"] })
    // Revoked on the command line: the gateway sees it when its cache entry goes stale (200 ms here).
    const revoked = await cli(["keys", "revoke", row!.id])
    expect(revoked.code).toBe(0)
    expect(revoked.out).toContain("status=revoked")
    expect(await eventually(() => status(key), (s) => s === 401, 3000)).toBe(401)
  })

  it("rotates and expires keys, and manages tenants", async () => {
    const created = await cli(["keys", "create", "--tenant", "globex", "--name", "svc", "--json"])
    const first = JSON.parse(created.out) as { id: string; key: string }
    const rotated = await cli(["keys", "rotate", first.id, "--grace", "1h", "--json"])
    expect(rotated.code).toBe(0)
    const next = JSON.parse(rotated.out) as { id: string; key: string; replaces: { id: string; expires_at: string } }
    expect(next.replaces.id).toBe(first.id)
    expect(await status(next.key)).toBe(200)
    expect(await status(first.key)).toBe(200)
    expect((await cli(["keys", "expire", first.id, "--never"])).out).toContain("expires=never")
    expect((await cli(["keys", "expire", first.id, "--at", "2001-01-01T00:00:00Z"])).out).toContain("status=expired")
    expect(await eventually(() => status(first.key), (s) => s === 401, 3000)).toBe(401)
    expect((await cli(["tenants", "create", "initech", "--name", "Initech"])).out).toContain("initech  name=Initech  status=active")
    expect((await cli(["tenants", "create", "initech"])).code).toBe(1)
    expect((await cli(["tenants", "disable", "globex"])).out).toContain("status=disabled")
    expect(await eventually(() => status(next.key), (s) => s === 401, 3000)).toBe(401)
    expect((await cli(["tenants", "list"])).out).toContain("globex")
  })

  it("refuses bad input with a message and a non-zero exit, never printing a key", async () => {
    const unknownModel = await cli(["keys", "create", "--tenant", "acme", "--name", "x", "--models", "gpt-9"])
    expect(unknownModel).toMatchObject({ code: 1, out: "" })
    expect(unknownModel.err).toContain("Unknown model `gpt-9`")
    expect((await cli(["keys", "create", "--tenant", "acme"])).code).toBe(2)
    expect((await cli(["keys", "revoke", "nosuchkey123"])).err).toContain("No API key")
    expect((await cli(["keys", "frobnicate"])).code).toBe(2)
  })

  it("unknown flags and stray words are usage errors (exit 2, on stderr), never ignored", async () => {
    for (const [argv, message] of [
      [["tenants", "list", "--nope"], "unknown flag --nope for tenants list"],
      [["keys", "list", "--tenat", "acme"], "unknown flag --tenat for keys list"],
      [["keys", "create", "--tenant", "acme", "--name", "x", "--expire", "30d"], "unknown flag --expire for keys create"],
      [["keys", "revoke", "abc", "def"], "unexpected argument \"def\""],
      [["tenants", "create", "a", "b"], "unexpected argument \"b\""],
      [["keys", "--bogus"], "a keys command is required"],
      [["tenants"], "a tenants command is required"]
    ] as const) {
      const r = await cli(argv)
      expect(r.code, argv.join(" ")).toBe(2)
      expect(r.err, argv.join(" ")).toContain(message)
      expect(r.out, argv.join(" ")).toBe("")
    }
    const before = (await cli(["tenants", "list", "--json"])).out
    expect((await cli(["tenants", "create", "strayco", "--nmae", "Stray"])).code).toBe(2)
    expect((await cli(["tenants", "list", "--json"])).out).toBe(before)
    expect((await cli(["keys", "--help"])).code).toBe(0)
  })

  it("hashes a key for the config file; the declared key works with its tenant", async () => {
    const made = await cli(["keys", "hash", "--json"])
    const { id, hash, key } = JSON.parse(made.out) as { id: string; hash: string; key: string }
    expect(hash).toMatch(/^\$argon2id\$/)
    const again = await cli(["keys", "hash", key, "--json"])
    expect((JSON.parse(again.out) as { id: string }).id).toBe(id)
    const declared = await startGateway(`
backends:
  - { id: a, url: ${engine.url}, models: [llama-3.1-8b] }
auth:
  tenants: { umbrella: { name: Umbrella } }
  keys: [{ id: ${id}, tenant: umbrella, name: gitops, hash: "${hash}", models: [llama-3.1-8b] }]
`)
    try {
      expect(await status(key, () => declared)).toBe(200)
      expect(await status(undefined, () => declared)).toBe(401)
      const line = await eventually(async () => declared.lines.find((l) => l.status === 200), (l) => l !== undefined)
      expect([line?.tenant, line?.key_id]).toEqual(["umbrella", id])
    } finally {
      await declared.close()
    }
    expect(made.code).toBe(0)
  })
})
