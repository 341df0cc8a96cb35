/**
 * The live dashboard on the real gateway graph, under traffic: the page and the snapshot
 * stream exist only with an admin token, the stream refuses a missing or wrong token and a
 * ninth concurrent reader (429), its snapshots carry every backend and non-zero tokens/s,
 * and the page, loaded in headless Chromium (puppeteer-core driving the system's chromium;
 * the test fails if there is none), shows the backend rows, tokens/s, percentiles, tenants
 * and failures. The screenshot is saved as test-results/dashboard.png. A reader that takes
 * nothing is dropped once the socket buffers are full and it stalls the stream, freeing its slot;
 * a draining gateway ends every stream.
 */
import { ConfigProvider, Layer } from "effect"
import { existsSync, mkdirSync } from "node:fs"
import { connect } from "node:net"
import puppeteer, { type Browser } from "puppeteer-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Dashboard from "../../src/http/Dashboard.ts"
import * as Fake from "../support/FakeEngine.ts"
import { startGateway, type TestGateway } from "../support/Gateway.ts"

const TOKEN = "dashboard-admin-token-0123456789"
const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"

interface Snapshot {
  readonly backends: ReadonlyArray<{ readonly id: string; readonly health: string; readonly breaker: string; readonly tokensPerSecond: number }>
  readonly summary: {
    readonly tokensPerSecond: number
    readonly requests: number
    readonly ttftMs: { readonly p50: number | undefined }
    readonly topTenants: ReadonlyArray<{ readonly tenant: string; readonly tokens: number }>
    readonly errors: ReadonlyArray<{ readonly reason: string; readonly count: number }>
  }
}

/** Reads SSE snapshots from an open response until `until` holds (or `ms` pass). */
const readSnapshots = async (res: Response, until: (s: Snapshot) => boolean, ms = 15_000): Promise<Snapshot | undefined> => {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  const deadline = performance.now() + ms
  let buffer = ""
  let last: Snapshot | undefined
  while (performance.now() < deadline) {
    const { value, done } = await reader.read()
    if (done) break
    buffer += decoder.decode(value, { stream: true })
    let end: number
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const data = event.split("\n").find((l) => l.startsWith("data: "))
      if (data === undefined) continue
      last = JSON.parse(data.slice(6)) as Snapshot
      if (until(last)) {
        await reader.cancel()
        return last
      }
    }
  }
  await reader.cancel()
  return last
}

describe("live dashboard", () => {
  let fast: Fake.FakeEngine
  let steady: Fake.FakeEngine
  let flaky: Fake.FakeEngine
  let gw: TestGateway
  let bare: TestGateway
  let keys: Array<string> = []
  let traffic = true
  let running: Promise<void> | undefined
  let browser: Browser | undefined

  const tokens = Array.from({ length: 24 }, (_, i) => ` t${i}`)
  const chat = (key: string, n: number) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: `hello ${n}` }], stream: true })
    }).then((r) => r.text()).catch(() => "")

  beforeAll(async () => {
    fast = await Fake.start(() => ({ tokens, gapMs: 5, firstDelayMs: 10 }))
    steady = await Fake.start(() => ({ tokens, gapMs: 15, firstDelayMs: 40 }))
    let n = 0
    flaky = await Fake.start(() => (n++ % 3 === 0 ? { status: 503, errorBody: "{}" } : { tokens, gapMs: 10 }))
    gw = await startGateway(`
models: [{ name: m }]
routing: { policy: round_robin }
backends:
  - { id: gpu-fast, url: ${fast.url}, models: [m], max_concurrency: 8 }
  - { id: gpu-steady, url: ${steady.url}, models: [m], max_concurrency: 8 }
  - { id: gpu-flaky, url: ${flaky.url}, models: [m], max_concurrency: 8 }
`, { extra: ConfigProvider.layer(ConfigProvider.fromUnknown({ SLUICE_ADMIN_TOKEN: TOKEN })) })
    bare = await startGateway(`
backends:
  - { id: a, url: ${fast.url}, models: [m] }
`, { extra: ConfigProvider.layer(ConfigProvider.fromUnknown({})) })
    // Three tenants with a key each, unequal traffic (so "top tenants" has an order).
    for (const tenant of ["acme", "globex", "initech"]) {
      const admin = (path: string, body: unknown) =>
        fetch(`${gw.url}/admin/v1${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
          body: JSON.stringify(body)
        }).then((r) => r.json() as Promise<{ key: string }>)
      await admin("/tenants", { id: tenant })
      keys.push((await admin(`/tenants/${tenant}/keys`, { name: "dash" })).key)
    }
    // Each client keeps one tenant's key: acme three clients, globex two, initech one.
    const owners = [keys[0]!, keys[0]!, keys[0]!, keys[1]!, keys[1]!, keys[2]!]
    let i = 0
    running = (async () => {
      // Six clients in a loop until the tests end: streamed requests, some fail over.
      await Promise.all(owners.map(async (key) => {
        while (traffic) await chat(key, i++)
      }))
    })()
  }, 60_000)

  afterAll(async () => {
    traffic = false
    await running
    await browser?.close()
    await gw?.close()
    await bare?.close()
    await fast?.close()
    await steady?.close()
    await flaky?.close()
  }, 60_000)

  const events = (token: string | null, target = () => gw) =>
    fetch(`${target().url}${Dashboard.EVENTS_PATH}`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } })

  it("exists only with an admin token, and refuses a missing or wrong one", async () => {
    expect((await fetch(`${bare.url}${Dashboard.PAGE_PATH}`)).status).toBe(404)
    expect((await events(TOKEN, () => bare)).status).toBe(404)
    const page = await fetch(`${gw.url}${Dashboard.PAGE_PATH}`)
    expect(page.status).toBe(200)
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'")
    expect(await page.text()).not.toContain(TOKEN)
    const none = await events(null)
    expect(none.status).toBe(401)
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe("invalid_admin_token")
    expect((await events("wrong-token")).status).toBe(401)
  })

  it("streams snapshots: every backend, non-zero tokens/s, percentiles, tenants and errors", async () => {
    const res = await events(TOKEN)
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toContain("text/event-stream")
    const snap = await readSnapshots(
      res,
      // enough requests that three clients against two decide the order, however slow the machine
      (s) => s.summary.tokensPerSecond > 0 && s.summary.topTenants.length >= 3 && s.summary.errors.length > 0 &&
        s.summary.requests >= 60,
      30_000
    )
    expect(snap).toBeDefined()
    expect(snap!.backends.map((b) => b.id).sort()).toEqual(["gpu-fast", "gpu-flaky", "gpu-steady"])
    expect(snap!.summary.tokensPerSecond).toBeGreaterThan(0)
    expect(snap!.summary.ttftMs.p50).toBeGreaterThan(0)
    expect(snap!.summary.topTenants[0]!.tenant).toBe("acme")
    expect(snap!.summary.errors.some((e) => e.reason === "attempt: Unavailable")).toBe(true)
  }, 40_000)

  it(`holds at most ${Dashboard.MAX_STREAMS} streams at once (then 429), and frees a slot when a reader leaves`, async () => {
    const open = await Promise.all(Array.from({ length: Dashboard.MAX_STREAMS }, () => events(TOKEN)))
    expect(open.map((r) => r.status)).toEqual(Array(Dashboard.MAX_STREAMS).fill(200))
    const refused = await events(TOKEN)
    expect(refused.status).toBe(429)
    expect(refused.headers.get("retry-after")).toBe("5")
    await refused.text()
    for (const r of open) await r.body!.cancel()
    let again: Response | undefined
    for (let i = 0; i < 100; i++) {
      again = await events(TOKEN)
      if (again.status === 200) break
      await again.text()
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(again!.status).toBe(200)
    await again!.body!.cancel()
  }, 30_000)

  it("renders in headless Chromium under traffic (screenshot in test-results/dashboard.png)", async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`No Chromium at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM_PATH`)
    }
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    })
    const page = await browser.newPage()
    await page.setViewport({ width: 1400, height: 1000 })
    const problems: Array<string> = []
    page.on("pageerror", (e) => problems.push(String(e)))
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(m.text())
    })
    await page.goto(`${gw.url}${Dashboard.PAGE_PATH}`, { waitUntil: "load" })
    // No token yet: the page asks for it; it goes into sessionStorage, never into the URL.
    await page.waitForSelector("#login:not([hidden])", { timeout: 10_000 })
    await page.type("#token", TOKEN)
    await page.click("#login button[type=submit]")
    // (Browser-side code as text: the test's TypeScript has no DOM types.)
    await page.waitForFunction(
      `(() => {
        const rows = document.querySelectorAll("#backends tr").length
        const tps = Number.parseFloat(document.getElementById("k-tps").textContent)
        const tenants = document.querySelectorAll("#tenants tr").length
        const failures = document.querySelectorAll("#failures tr td.empty").length === 0 &&
          document.querySelectorAll("#failures tr").length > 0
        return rows === 3 && tps > 0 && tenants >= 3 && failures
      })()`,
      { timeout: 30_000, polling: 200 }
    )
    // A few more snapshots so the sparkline has a line.
    await new Promise((r) => setTimeout(r, 3000))
    const shown = await page.evaluate(`({
      backends: [...document.querySelectorAll("#backends tr")].map((tr) => tr.querySelector("td").textContent),
      health: [...document.querySelectorAll("#backends tr td:nth-child(2)")].map((td) => td.textContent),
      tps: document.getElementById("k-tps").textContent,
      ttft: document.getElementById("k-ttft").textContent,
      itl: document.getElementById("k-itl").textContent,
      tenants: [...document.querySelectorAll("#tenants tr td:first-child")].map((td) => td.textContent),
      status: document.getElementById("status").textContent,
      url: location.href,
      stored: sessionStorage.getItem("sluice.admin.token") !== null
    })`) as {
      backends: Array<string>
      health: Array<string>
      tps: string
      ttft: string
      itl: string
      tenants: Array<string>
      status: string
      url: string
      stored: boolean
    }
    mkdirSync("test-results", { recursive: true })
    await page.screenshot({ path: "test-results/dashboard.png", fullPage: true })
    expect(shown.backends.sort()).toEqual(["gpu-fast", "gpu-flaky", "gpu-steady"])
    expect(shown.health.every((h) => ["healthy", "degraded", "unhealthy", "cold"].includes(h))).toBe(true)
    expect(Number.parseFloat(shown.tps)).toBeGreaterThan(0)
    expect(shown.ttft).toMatch(/ms$/)
    expect(shown.itl).toMatch(/ms$/)
    expect(shown.tenants[0]).toBe("acme")
    expect(shown.tenants).toEqual(expect.arrayContaining(["acme", "globex", "initech"]))
    expect(shown.status).toBe("live")
    expect(shown.url).not.toContain(TOKEN)
    expect(shown.stored).toBe(true)
    expect(problems).toEqual([])
  }, 90_000)
})

describe("live dashboard: a reader that takes nothing", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway

  beforeAll(async () => {
    engine = await Fake.start(() => ({}))
    // A snapshot every millisecond fills the socket buffers of a reader that never reads
    // within seconds; after 1 s without a pull it is dropped.
    gw = await startGateway(`
backends:
  - { id: a, url: ${engine.url}, models: [m] }
`, {
      extra: Layer.mergeAll(
        ConfigProvider.layer(ConfigProvider.fromUnknown({ SLUICE_ADMIN_TOKEN: TOKEN })),
        Layer.succeed(Dashboard.StreamLimits, { intervalMs: 1, stallMs: 1000, maxEvents: 1_000_000 })
      )
    })
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  const openAll = () =>
    Promise.all(Array.from({ length: Dashboard.MAX_STREAMS }, () =>
      fetch(`${gw.url}${Dashboard.EVENTS_PATH}`, { headers: { authorization: `Bearer ${TOKEN}` } })))
  const closeAll = async (responses: ReadonlyArray<Response>) => {
    for (const r of responses) await r.body?.cancel()
  }

  it("is dropped (its slot freed) instead of being buffered for", async () => {
    const { hostname, port } = new URL(gw.url)
    const stalled = connect(Number(port), hostname)
    await new Promise<void>((r) => stalled.once("connect", () => r()))
    stalled.on("error", () => {})
    stalled.write(`GET ${Dashboard.EVENTS_PATH} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\n\r\n`)
    stalled.pause()
    await new Promise((r) => setTimeout(r, 300))
    // The stalled reader holds one of the slots.
    const first = await openAll()
    expect(first.map((r) => r.status).filter((s) => s === 429)).toHaveLength(1)
    await closeAll(first)
    // Once it is dropped, every slot is free again.
    let statuses: Array<number> = []
    const deadline = performance.now() + 45_000
    while (performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500))
      const all = await openAll()
      statuses = all.map((r) => r.status)
      await closeAll(all)
      if (statuses.every((s) => s === 200)) break
    }
    expect(statuses).toEqual(Array(Dashboard.MAX_STREAMS).fill(200))
    stalled.destroy()
  }, 60_000)

  it("ends when the gateway starts draining (a dashboard never holds shutdown)", async () => {
    // The previous test's readers just left: their slots are freed when their teardowns run,
    // which a client's leaving queues behind the loop's pending socket events (http/Teardowns.ts).
    const open = () => fetch(`${gw.url}${Dashboard.EVENTS_PATH}`, { headers: { authorization: `Bearer ${TOKEN}` } })
    let res = await open()
    for (const started = performance.now(); res.status === 429 && performance.now() - started < 5_000;) {
      await res.body?.cancel()
      await new Promise((r) => setTimeout(r, 50))
      res = await open()
    }
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    expect((await reader.read()).done).toBe(false)
    gw.lifecycle.state.draining = true
    const started = performance.now()
    let done = false
    while (!done && performance.now() - started < 10_000) done = (await reader.read()).done
    gw.lifecycle.state.draining = false
    expect(done).toBe(true)
  }, 30_000)
})
