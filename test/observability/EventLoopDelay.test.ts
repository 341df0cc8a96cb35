/**
 * `sluice_event_loop_delay_seconds` on /metrics: measured inside the gateway, it shows a
 * blocked event loop in its maximum and keeps p50 near zero when the loop is free.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Fake from "../support/FakeEngine.ts"
import { startGateway, type TestGateway } from "../support/Gateway.ts"

const value = (text: string, series: string): number => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `))
  expect(line, series).toBeDefined()
  return Number(line!.slice(series.length + 1))
}

describe("event-loop delay metric", () => {
  let engine: Fake.FakeEngine
  let gw: TestGateway

  beforeAll(async () => {
    engine = await Fake.start()
    gw = await startGateway(`
backends:
  - id: a
    url: ${engine.url}
    models: [m]
`)
  })
  afterAll(async () => {
    await gw?.close()
    await engine?.close()
  })

  it("reports the loop's delay as a summary: a 150 ms block shows as the maximum", async () => {
    await new Promise((r) => setTimeout(r, 300))
    const before = await (await fetch(`${gw.url}/metrics`)).text()
    expect(before).toContain("# TYPE sluice_event_loop_delay_seconds summary")
    expect(value(before, "sluice_event_loop_delay_seconds{quantile=\"1\"}")).toBeLessThan(1)
    const blockUntil = performance.now() + 150
    while (performance.now() < blockUntil) {
      // a synchronous stretch: nothing else runs in this process, the gateway included
    }
    await new Promise((r) => setTimeout(r, 100))
    const after = await (await fetch(`${gw.url}/metrics`)).text()
    expect(value(after, "sluice_event_loop_delay_seconds{quantile=\"1\"}")).toBeGreaterThan(0.12)
    expect(value(after, "sluice_event_loop_delay_seconds{quantile=\"0.5\"}")).toBeLessThan(0.12)
    expect(value(after, "sluice_event_loop_delay_seconds_count")).toBeGreaterThan(value(before, "sluice_event_loop_delay_seconds_count"))
    expect(value(after, "sluice_event_loop_delay_seconds_sum")).toBeGreaterThan(0.12)
  })
})
