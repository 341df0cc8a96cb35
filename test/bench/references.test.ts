/**
 * The bench's reference targets (issue 14): the generated nginx config, the ratio columns
 * against nginx and Portkey, and the rate ladder's figure. The harness is plain .mjs, so it
 * is imported by path (untyped).
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const lib = (name: string) => new URL(`../../bench/lib/${name}.mjs`, import.meta.url).href
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const load = async (name: string): Promise<any> => await import(lib(name))

const meta = { clockTicks: 100, rates: [1000], ladderP99Ms: 100, levels: [], logRate: 1000 }

/** One fixed-rate run as load.mjs returns it, reduced to what figures.mjs reads. */
const run = (p99: number, cpuTicks = 10) => ({
  latency: { p50: p99 / 2, p99, p999: p99 * 2 },
  completedRate: 1000,
  offeredRate: 1000,
  unfinished: 0,
  errors: 0,
  measured: 1000,
  cpu: { targetCpuTicks: cpuTicks },
  windowMs: 1000
})

describe("nginx reference config", () => {
  it("is one pinned foreground process that streams unbuffered and lets a client's leaving close the upstream", async () => {
    const { nginxConf } = await load("targets")
    const conf: string = nginxConf({ dir: "/tmp/x", port: 1234, upstreamPort: 5678, errorLog: "/tmp/x/e.log" })
    for (const line of [
      "daemon off;",
      "master_process off;",
      "worker_processes 1;",
      "access_log off;",
      "error_log /tmp/x/e.log warn;",
      "pid /tmp/x/nginx.pid;",
      "proxy_http_version 1.1;",
      'proxy_set_header Connection "";',
      "proxy_buffering off;",
      "proxy_request_buffering off;",
      "proxy_ignore_client_abort off;",
      "server 127.0.0.1:5678;",
      "listen 127.0.0.1:1234 backlog=4096;"
    ]) expect(conf).toContain(line)
    expect(conf).toMatch(/upstream mock \{[^}]*keepalive \d+;/)
    // 9,000 streams hold two connections each, under the 20,000 open-file cap
    const connections = Number(/worker_connections (\d+);/.exec(conf)?.[1])
    const files = Number(/worker_rlimit_nofile (\d+);/.exec(conf)?.[1])
    expect(connections).toBeGreaterThanOrEqual(18_000)
    expect(files).toBeGreaterThan(connections)
    expect(files).toBeLessThanOrEqual(20_000)
  })

  it("passes nginx -t", async () => {
    const { nginxBinary, nginxConf } = await load("targets")
    const bin: string | undefined = nginxBinary()
    // The bench runs without nginx (it says so); this test does not: it checks the config nginx would get.
    if (bin === undefined) throw new Error("nginx is not installed: apt-get install -y nginx (.ci/run installs it)")
    const dir = mkdtempSync(join(tmpdir(), "bench-nginx-test-"))
    const file = join(dir, "nginx.conf")
    writeFileSync(file, nginxConf({ dir, port: 1234, upstreamPort: 5678, errorLog: join(dir, "e.log") }))
    const r = spawnSync(bin, ["-t", "-p", dir, "-c", file, "-e", join(dir, "e.log")], { encoding: "utf8" })
    expect(r.stderr).toContain("syntax is ok")
    expect(r.status).toBe(0)
  })
})

describe("ratios against the reference proxies", () => {
  it("gives every figure s/nginx and s/portkey when they ran, and none when they did not", async () => {
    const { build } = await load("figures")
    const latency = (withRefs: boolean) => ({
      runs: {
        direct: { 1000: [run(2)] },
        floor: { 1000: [run(4)] },
        ...(withRefs ? { nginx: { 1000: [run(3, 2)] }, portkey: { 1000: [run(40, 40)] } } : {}),
        sluice: { 1000: [run(12, 8)] }
      }
    })
    const withRefs = build({ latency: latency(true) }, meta)
    const p99 = withRefs.find((f: { id: string }) => f.id === "latency.1000.p99")
    expect(p99.vsNginx).toBeCloseTo(4)
    expect(p99.vsPortkey).toBeCloseTo(0.3)
    const cpu = withRefs.find((f: { id: string }) => f.id === "cpu.1000.us_per_req")
    expect(cpu.values.nginx).toBeCloseTo(20)
    expect(cpu.vsNginx).toBeCloseTo(4)
    expect(withRefs.find((f: { id: string }) => f.id === "latency.1000.p999").values.sluice).toBe(24)
    const without = build({ latency: latency(false) }, meta)
    expect(without.every((f: object) => !("vsNginx" in f) && !("vsPortkey" in f))).toBe(true)
  })

  it("prints the s/nginx column only when nginx ran", async () => {
    const { table } = await load("report")
    const fig = (values: object, extra: object = {}) => ({ id: "x", group: "g", label: "x", unit: "ms", values, flags: {}, ...extra })
    const head = (t: string) => t.split("\n")[0]
    const withNginx: string = table([fig({ floor: 2, nginx: 1, sluice: 4 }, { vsFloor: 2, vsNginx: 4 })])
    expect(head(withNginx)).toContain("nginx")
    expect(head(withNginx)).toContain("s/nginx")
    expect(withNginx.split("\n")[2]).toContain("4.00×")
    const without: string = table([fig({ floor: 2, sluice: 4 }, { vsFloor: 2 })])
    expect(head(without)).not.toContain("nginx")
    expect(head(without)).not.toContain("s/portkey")
  })

  it("compares s/nginx before and after only when both results files have it", async () => {
    const { compare } = await load("report")
    const file = (vsNginx?: number) => ({
      meta: { startedAt: "t" },
      figures: [{ id: "x", label: "x", values: { floor: 2, sluice: 4 }, vsFloor: 2, ...(vsNginx === undefined ? {} : { vsNginx }) }]
    })
    const both: string = compare(file(4), file(3))
    expect(both).toContain("s/nginx before")
    expect(both).toContain("4.00×")
    expect(both).toContain("3.00×")
    const one: string = compare(file(), file(3))
    expect(one).not.toContain("s/nginx")
  })
})

describe("highest sustained rate (rate ladder)", () => {
  it("is the median over repeats of the last step held, flagged when the generator ended the ladder", async () => {
    const { build } = await load("figures")
    const ladder = (maxRate: number, stoppedBy: string, cpuUsAtMax = 100) => ({ maxRate, stoppedBy, cpuUsAtMax, steps: [], disturbed: false })
    const figs = build({
      ladder: {
        runs: {
          direct: [ladder(8000, "top of the ladder (8000/s) held")],
          nginx: [ladder(5600, "8000/s p99 140.0 ms"), ladder(4000, "5600/s answered 5000/s")],
          sluice: [ladder(1400, "2000/s p99 300.0 ms"), ladder(1400, "2000/s p99 250.0 ms")]
        }
      }
    }, meta)
    const f = figs.find((x: { id: string }) => x.id === "ladder.max_rate")
    expect(f.values).toEqual({ direct: 8000, nginx: 4800, sluice: 1400 })
    expect(f.vsNginx).toBeCloseTo(1400 / 4800)
    expect(f.flags.direct).toBe("^")
    expect(f.flags.nginx).toBeUndefined()
    expect(f.verdict).toBe("fail")
  })
})

describe("open streams: the time to establish them all", () => {
  it("sums each level's ramp (the pauses between levels excluded) and flags a target whose streams did not all arrive", async () => {
    const { build } = await load("figures")
    const level = (lv: number, rampMs: number, open = lv, allFirst = true) =>
      ({ level: lv, open, failed: 0, allFirst, rampMs, measured: { rssBytes: 2 ** 20 * lv / 100 } })
    const figs = build({
      "open-streams": {
        runs: {
          nginx: [{ baseRssBytes: 0, afterCloseRssBytes: 0, closeMs: 1, levels: [level(1000, 2000), level(5000, 8000), level(9000, 8100)] }],
          sluice: [{ baseRssBytes: 0, afterCloseRssBytes: 0, closeMs: 1, levels: [level(1000, 2500), level(5000, 9000), level(9000, 38_000, 7412, false)] }]
        }
      }
    }, { ...meta, levels: [1000, 5000, 9000], durations: { openRate: 500 } })
    const f = figs.find((x: { id: string }) => x.id === "open_streams.ramp_s")
    expect(f.label).toContain("9000 streams opened at 500/s")
    expect(f.values.nginx).toBeCloseTo(18.1)
    expect(f.values.sluice).toBeCloseTo(49.5)
    expect(f.flags).toEqual({ sluice: "!" })
    expect(f.notes.join(" ")).toContain("sluice: 7412 of 9000 had their first chunk")
    expect(f.vsNginx).toBeCloseTo(49.5 / 18.1)
  })
})

describe("open streams: RSS a minute after the load", () => {
  it("compares the RSS a minute after the close with the idle RSS before the streams, judged on sluice", async () => {
    const { build } = await load("figures")
    const MiB = 2 ** 20
    const level = { level: 1000, open: 1000, failed: 0, allFirst: true, rampMs: 2000, measured: { rssBytes: 300 * MiB } }
    const run = (base: number, recovered: number) =>
      ({ baseRssBytes: base * MiB, afterCloseRssBytes: 250 * MiB, recoveredRssBytes: recovered * MiB, closeMs: 1, levels: [level] })
    const figs = (sluice: number) =>
      build({ "open-streams": { runs: { nginx: [run(15, 16)], sluice: [run(100, sluice)] } } }, { ...meta, levels: [1000], recoverMs: 60_000, durations: { openRate: 500 } })
    const ratio = (sluice: number) => figs(sluice).find((x: { id: string }) => x.id === "rss.recovered_ratio")
    expect(figs(120).find((x: { id: string }) => x.id === "rss.recovered_mib").label).toContain("60 s after")
    expect(ratio(120).values.sluice).toBeCloseTo(1.2)
    expect(ratio(120).verdict).toBe("pass")
    expect(ratio(140).verdict).toBe("fail")
  })
})

describe("the bench config", () => {
  it("has the bench key on by default and `auth: none` with --auth-off (a run prints which it used)", async () => {
    const { writeSluiceConfig, sluiceAuthOf } = await load("targets")
    const dir = mkdtempSync(join(tmpdir(), "sluice-bench-config-"))
    const { readFileSync } = await import("node:fs")
    const on = readFileSync(writeSluiceConfig(dir, "http://127.0.0.1:1"), "utf8")
    expect(sluiceAuthOf(on)).toBe("keys")
    expect(on).toContain("$argon2id$")
    const off = readFileSync(writeSluiceConfig(dir, "http://127.0.0.1:1", { authOff: true }), "utf8")
    expect(sluiceAuthOf(off)).toBe("none")
    expect(off).not.toContain("$argon2id$")
  })
})
