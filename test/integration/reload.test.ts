/**
 * Hot reload on real sockets against fake engines: a reload under 100 open streams drops
 * none (each ends with [DONE] and its whole content, those on the removed backend too),
 * and new requests follow the new plan at once (the removed backend gets none, the added
 * one does, a changed policy, model list and weight apply). An invalid file keeps the last
 * good plan and says why (error paths in the admin answer, the metric); settings read only
 * at start come back as needs_restart; the file watch sees an editor's rename-over-the-file.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { streamChat } from "../support/Client.ts"
import * as Fake from "../support/FakeEngine.ts"
import { eventually, idle, startGateway } from "../support/Gateway.ts"

const dir = mkdtempSync(join(tmpdir(), "sluice-reload-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const TOKEN = "reload-admin-token"
process.env["SLUICE_ADMIN_TOKEN"] = TOKEN

const TOKENS = Array.from({ length: 10 }, (_, i) => ` w${i}`)

/** Writes the config the way editors do: a new file renamed over the old one. */
const replace = (file: string, yaml: string) => {
  const tmp = `${file}.tmp-${Math.random().toString(36).slice(2)}`
  writeFileSync(tmp, yaml)
  renameSync(tmp, file)
}

const admin = async (url: string, method: "GET" | "POST" = "POST") => {
  const res = await fetch(`${url}/admin/v1/reload`, { method, headers: { authorization: `Bearer ${TOKEN}` } })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

/** The content of a stream's chunks, and whether it ended with [DONE]. */
const contentOf = (events: ReadonlyArray<string>) => {
  let text = ""
  for (const e of events) {
    if (e === "[DONE]") continue
    const chunk = JSON.parse(e) as { choices?: Array<{ delta?: { content?: string } }> }
    text += chunk.choices?.[0]?.delta?.content ?? ""
  }
  return { text, done: events.at(-1) === "[DONE]" }
}

const chat = async (url: string, model: string) => {
  const r = await streamChat(url, { model, messages: [{ role: "user", content: "hi" }], stream: true })
  return { ...r, backend: r.headers["x-sluice-backend"], ...contentOf(r.events) }
}

describe("hot reload", () => {
  it("under 100 open streams: none dropped, and new requests follow the new plan", async () => {
    let release: () => void = () => {}
    const released = new Promise<void>((r) => (release = r))
    const script = () => ({ tokens: TOKENS, pauseAfter: { tokens: 3, until: released } })
    const [a, b, c] = await Promise.all([Fake.start(script), Fake.start(script), Fake.start(script)])
    const file = join(dir, "streams.yaml")
    writeFileSync(file, `
routing: { policy: round_robin }
backends:
  - { id: a, url: "${a.url}", models: [m] }
  - { id: b, url: "${b.url}", models: [m] }
`)
    const gw = await startGateway("", { file })
    try {
      // 100 streams, each holding after its third token until the reload is done.
      let started = 0
      const streams = Array.from({ length: 100 }, () =>
        streamChat(gw.url, { model: "m", messages: [{ role: "user", content: "hi" }], stream: true }, {
          onEvent: (n) => {
            if (n === 1) started++
          }
        }))
      await eventually(async () => started, (n) => n === 100, 30_000)
      expect(a.active() + b.active()).toBe(100)
      const onA = a.active()
      expect(onA).toBeGreaterThan(0)
      const scrape = async () => await (await fetch(`${gw.url}/metrics`)).text()
      expect(await scrape()).toContain(`sluice_backend_in_flight{backend="a"} ${onA}`)

      // a removed, c added (and serving a new model m2), the policy changed to ordered (c first).
      writeFileSync(file, `
routing: { policy: ordered }
backends:
  - { id: c, url: "${c.url}", models: [m, m2] }
  - { id: b, url: "${b.url}", models: [m] }
`)
      const reloaded = await admin(gw.url)
      expect(reloaded.status).toBe(200)
      expect(reloaded.body).toMatchObject({
        result: "applied",
        trigger: "admin",
        backends: { added: ["c"], removed: ["a"], replaced: [] },
        models: { added: ["m2"], removed: [], changed: [] },
        needs_restart: []
      })
      expect(reloaded.body["changed"]).toEqual(expect.arrayContaining(["routing", "models", "backends"]))
      // a is draining: out of the routing table, still holding its streams.
      expect(gw.fleet.draining()).toEqual(["a"])
      expect(gw.fleet.forModel("m" as never).map((x) => x.id)).toEqual(["c", "b"])

      // New requests: all on c (ordered), none on a; m2 exists now.
      const seenOnA = a.seen.length
      const fresh = [...Array.from({ length: 6 }, () => chat(gw.url, "m")), chat(gw.url, "m2")]
      // They hold after 3 tokens too: once they reached an engine, let everything go.
      await eventually(async () => c.active(), (n) => n === 7, 20_000)
      release()
      const results = await Promise.all(streams)
      const after = await Promise.all(fresh)
      expect(a.seen.length).toBe(seenOnA)
      for (const r of after) {
        expect(r.status).toBe(200)
        expect(r.backend).toBe("c")
        expect(r.done).toBe(true)
      }

      // Zero dropped: every old stream ended with [DONE] and its whole content.
      const dropped = results.filter((r) => {
        const { text, done } = contentOf(r.events)
        return r.status !== 200 || !done || text !== TOKENS.join("")
      })
      expect(dropped.length).toBe(0)
      expect(results.filter((r) => r.headers["x-sluice-backend"] === "a").length).toBe(onA)

      // The removed backend drained, stopped and let go of its connections.
      await eventually(async () => gw.fleet.draining(), (d) => d.length === 0, 10_000)
      expect(gw.fleet.all.map((x) => x.id).sort()).toEqual(["b", "c"])
      await eventually(async () => a.openSockets(), (n) => n === 0, 10_000)
      expect(a.openSockets()).toBe(0)
      // Its gauges are gone from /metrics (not frozen at their last values); the others stay.
      const metrics = await scrape()
      expect(metrics.split("\n").filter((l) => l.includes(`backend="a"`) && l.startsWith("sluice_backend_")).join("\n")).toBe("")
      expect(metrics).toContain(`sluice_backend_in_flight{backend="c"} 0`)
      expect(await eventually(gw.held, (h) => h.slots === 0 && h.inFlight === 0)).toEqual(idle)
    } finally {
      release()
      await gw.close()
      await Promise.all([a.close(), b.close(), c.close()])
    }
  }, 90_000)

  it("a changed weight applies to new requests (the backend is rebuilt; the old actor drains)", async () => {
    const [a, b] = await Promise.all([Fake.start(), Fake.start()])
    const file = join(dir, "weights.yaml")
    const yaml = (wa: number, wb: number) => `
routing: { policy: inference }
backends:
  - { id: a, url: "${a.url}", models: [m], weight: ${wa} }
  - { id: b, url: "${b.url}", models: [m], weight: ${wb} }
`
    writeFileSync(file, yaml(10, 1))
    const gw = await startGateway("", { file })
    try {
      for (let i = 0; i < 5; i++) expect((await chat(gw.url, "m")).backend).toBe("a")
      writeFileSync(file, yaml(1, 10))
      const r = await admin(gw.url)
      expect(r.body).toMatchObject({ result: "applied", backends: { added: [], removed: [], replaced: ["a", "b"] } })
      for (let i = 0; i < 5; i++) expect((await chat(gw.url, "m")).backend).toBe("b")
      await eventually(async () => gw.fleet.draining(), (d) => d.length === 0, 10_000)
      expect(gw.fleet.all.length).toBe(2)
    } finally {
      await gw.close()
      await Promise.all([a.close(), b.close()])
    }
  }, 60_000)

  it("limits and timeouts apply to the next request", async () => {
    const a = await Fake.start((_model, body) => ({ firstDelayMs: (body["messages"] as Array<unknown>).length === 3 ? 1500 : 0 }))
    const file = join(dir, "limits.yaml")
    const yaml = (extra: string) => `
backends:
  - { id: a, url: "${a.url}", models: [m] }
${extra}
`
    writeFileSync(file, yaml(""))
    const gw = await startGateway("", { file })
    const call = (messages: number) =>
      streamChat(gw.url, { model: "m", stream: true, messages: Array.from({ length: messages }, () => ({ role: "user", content: "hi" })) })
    try {
      expect((await call(2)).status).toBe(200)
      expect(contentOf((await call(3)).events).done).toBe(true)
      writeFileSync(file, yaml("limits: { max_messages: 2 }"))
      expect((await admin(gw.url)).body).toMatchObject({ result: "applied", changed: ["limits"] })
      const refused = await call(3)
      expect(refused.status).toBe(400)
      expect(refused.text).toContain("messages")
      writeFileSync(file, yaml("timeouts: { first_token: 300ms }"))
      expect((await admin(gw.url)).body).toMatchObject({ result: "applied" })
      expect((await call(2)).status).toBe(200)
      // The slow first token (1.5 s) now misses the 300 ms deadline.
      const slow = await call(3)
      expect(contentOf(slow.events).done).toBe(false)
      expect(slow.status).not.toBe(200)
    } finally {
      await gw.close()
      await a.close()
    }
  }, 60_000)

  it("an invalid file keeps the last good plan and says why; start-only settings need a restart", async () => {
    const a = await Fake.start()
    const file = join(dir, "invalid.yaml")
    const good = `
backends:
  - { id: a, url: "${a.url}", models: [m] }
`
    writeFileSync(file, good)
    const gw = await startGateway("", { file })
    try {
      const before = await (await fetch(`${gw.url}/metrics`)).text()
      writeFileSync(file, `
backends:
  - { id: a, url: 42, models: [m], bogus: true }
  - { id: b, models: [m] }
`)
      const r = await admin(gw.url)
      expect(r.status).toBe(422)
      expect(r.body["result"]).toBe("invalid")
      const paths = (r.body["errors"] as Array<{ path: string }>).map((e) => e.path)
      expect(paths).toEqual(expect.arrayContaining(["backends[0].url", "backends[0].bogus"]))
      // The old plan still serves.
      expect((await chat(gw.url, "m")).done).toBe(true)
      expect((await admin(gw.url, "GET")).body["result"]).toBe("invalid")

      // YAML that does not parse: the line, not a crash.
      writeFileSync(file, "backends: [ {id: a\n")
      const broken = await admin(gw.url)
      expect(broken.status).toBe(422)
      expect(JSON.stringify(broken.body["errors"])).toContain("line")

      // Unknown dialect: caught by the registries' checks before anything starts.
      writeFileSync(file, `
backends:
  - { id: a, url: "${a.url}", models: [m], dialect: nonesuch }
`)
      const unknown = await admin(gw.url)
      expect(unknown.status).toBe(422)
      expect((unknown.body["errors"] as Array<{ path: string }>)[0]!.path).toContain("backends[0]")

      // Listener and budgets are read at start: reported, not silently ignored; the rest applies.
      writeFileSync(file, `${good}
server: { max_connections: 50 }
budgets: { tokens_per_window: 1000 }
timeouts: { first_token: 5s }
`)
      const restart = await admin(gw.url)
      expect(restart.status).toBe(200)
      expect(restart.body["result"]).toBe("applied")
      expect(restart.body["needs_restart"]).toEqual(expect.arrayContaining(["server", "budgets"]))
      expect(restart.body["changed"]).toContain("timeouts")

      writeFileSync(file, `${good}
server: { max_connections: 50 }
budgets: { tokens_per_window: 1000 }
timeouts: { first_token: 5s }
`)
      expect((await admin(gw.url)).body["result"]).toBe("unchanged")

      // Metrics are process-wide (other tests in this file reload too): compare with the start.
      const metrics = await (await fetch(`${gw.url}/metrics`)).text()
      const count = (text: string, result: string) =>
        Number(new RegExp(`sluice_config_reloads_total\\{result="${result}"\\} (\\d+)`).exec(text)?.[1] ?? 0)
      expect(count(metrics, "invalid") - count(before, "invalid")).toBe(3)
      expect(count(metrics, "applied") - count(before, "applied")).toBe(1)
      expect(count(metrics, "unchanged") - count(before, "unchanged")).toBe(1)
      expect(metrics).toMatch(/sluice_config_last_reload_success 1/)
      expect(metrics).toMatch(/sluice_config_last_reload_timestamp_seconds \d/)

      // Behind the admin token.
      const anonymous = await fetch(`${gw.url}/admin/v1/reload`, { method: "POST" })
      expect(anonymous.status).toBe(401)
      const withBody = await fetch(`${gw.url}/admin/v1/reload`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
        body: "{\"file\": \"/etc/passwd\"}"
      })
      expect(withBody.status).toBe(400)
    } finally {
      await gw.close()
      await a.close()
    }
  }, 60_000)

  it("a backend that cannot start fails the reload, and nothing changes", async () => {
    const [a, b] = await Promise.all([Fake.start(), Fake.start()])
    const file = join(dir, "failed.yaml")
    writeFileSync(file, `
backends:
  - { id: a, url: "${a.url}", models: [m] }
`)
    // The test launcher has no simulator: a simulate: backend cannot start.
    const gw = await startGateway("", { file })
    try {
      writeFileSync(file, `
backends:
  - { id: b, url: "${b.url}", models: [m, m2] }
  - { id: sim, simulate: { profile: llama-3.1-8b-fp8-h100 }, models: [m] }
`)
      const r = await admin(gw.url)
      expect(r.status).toBe(422)
      expect(r.body).toMatchObject({ result: "failed", errors: [{ path: "backends[1]" }] })
      expect(JSON.stringify(r.body["errors"])).toContain("sim")
      // The running plan and fleet are the old ones: b is not in the fleet and got no request.
      expect(gw.fleet.all.map((x) => x.id)).toEqual(["a"])
      expect(gw.fleet.draining()).toEqual([])
      const models = (await (await fetch(`${gw.url}/v1/models`)).json()) as { data: Array<{ id: string }> }
      expect(models.data.map((m) => m.id)).toEqual(["m"])
      expect((await chat(gw.url, "m")).backend).toBe("a")
      expect(b.seen.length).toBe(0)
    } finally {
      await gw.close()
      await Promise.all([a.close(), b.close()])
    }
  }, 60_000)

  it("the file watch reloads after an editor renames a new file over the config", async () => {
    const [a, b] = await Promise.all([Fake.start(), Fake.start()])
    const file = join(dir, "watched.yaml")
    writeFileSync(file, `
backends:
  - { id: a, url: "${a.url}", models: [m] }
`)
    const gw = await startGateway("", { file, reload: { watch: true, debounceMs: 100 } })
    try {
      replace(file, `
backends:
  - { id: b, url: "${b.url}", models: [m] }
`)
      const last = await eventually(async () => gw.reloader.last(), (r) => r?.result === "applied", 10_000)
      expect(last).toMatchObject({ trigger: "watch", backends: { added: ["b"], removed: ["a"] } })
      expect((await chat(gw.url, "m")).backend).toBe("b")
      // A second edit through the same watch (the folder is watched, not the replaced inode).
      replace(file, `
backends:
  - { id: a, url: "${a.url}", models: [m] }
`)
      await eventually(async () => gw.fleet.forModel("m" as never).map((x) => x.id), (ids) => ids.join() === "a", 10_000)
      expect((await chat(gw.url, "m")).backend).toBe("a")
    } finally {
      await gw.close()
      await Promise.all([a.close(), b.close()])
    }
  }, 60_000)
})
