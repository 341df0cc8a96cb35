/**
 * The protected-mode start rule on the real graph: with no API key anywhere, a gateway
 * planned for a non-loopback address refuses to start and says how to fix it; `auth: none`
 * starts there with a warning; a declared key starts it; loopback starts with a warning.
 * The listener is a loopback test server in every case (the rule reads the planned address),
 * so nothing here ever binds a public address.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Exit, Layer, Logger, ManagedRuntime } from "effect"
import { createServer } from "node:http"
import { describe, expect, it } from "vitest"
import * as ApiKey from "../../src/auth/ApiKey.ts"
import { isLoopback } from "../../src/auth/Protection.ts"
import { EngineLauncher } from "../../src/backends/Fleet.ts"
import { GatewayConfig } from "../../src/config/GatewayConfig.ts"
import * as Gateway from "../../src/Gateway.ts"
import { Connections } from "../../src/http/Connections.ts"
import { RequestLog } from "../../src/observability/RequestLog.ts"
import { planFromYaml } from "../support/Gateway.ts"

const start = async (yaml: string) => {
  const logs: Array<string> = []
  const plan = await planFromYaml(yaml)
  const runtime = ManagedRuntime.make(
    Gateway.make({
      config: GatewayConfig.fromPlan({ ...plan, health: { ...plan.health, probeIntervalMs: 0 } }),
      launcher: EngineLauncher.none,
      requestLog: Layer.merge(RequestLog.memory([]), Logger.layer([Logger.map(Logger.formatJson, (l) => void logs.push(l))])),
      server: NodeHttpServer.layer(() => createServer(), { host: "127.0.0.1", port: 0 }).pipe(
        Layer.merge(Gateway.Listener.none),
        Layer.merge(Connections.none)
      )
    })
  )
  const exit = await runtime.runPromiseExit(Effect.void)
  await runtime.dispose()
  return { exit, logs: logs.join("\n") }
}

/** Whether a WARN line whose message starts with `text` was logged. */
const warned = (logs: string, text: string) =>
  logs.split("\n").some((line) => line.includes(`"message":"${text}`) && /"(logLevel|level)":"WARN"/.test(line))

const backends = `
backends:
  - { id: a, url: http://127.0.0.1:9, models: [m] }
`

describe("serving without keys (protected mode)", () => {
  it("refuses to start on a non-loopback address when no key exists, saying how to fix it", async () => {
    const { exit } = await start(`server: { host: 0.0.0.0 }\n${backends}`)
    expect(Exit.isFailure(exit)).toBe(true)
    const message = String(Exit.isFailure(exit) ? exit.cause : "")
    expect(message).toContain("refusing to listen on 0.0.0.0 without API keys")
    expect(message).toContain("sluice keys create")
    expect(message).toContain("auth: none")
  })

  it("starts there with `auth: none`, and warns that auth is off", async () => {
    const { exit, logs } = await start(`server: { host: 0.0.0.0 }\nauth: none\n${backends}`)
    expect(Exit.isSuccess(exit)).toBe(true)
    expect(warned(logs, "authentication is off (auth: none)")).toBe(true)
  })

  it("starts there when a key is declared in the config file", async () => {
    const { keyId, key } = ApiKey.generate()
    const hash = await Effect.runPromise(ApiKey.hash(key))
    const { exit, logs } = await start(`server: { host: 10.1.2.3 }
${backends}
auth:
  tenants: { acme: {} }
  keys: [{ id: ${keyId}, tenant: acme, hash: "${hash}" }]
`)
    expect(Exit.isSuccess(exit)).toBe(true)
    expect(logs).toContain("API keys required")
  })

  it("starts on loopback without keys, with a warning that says so", async () => {
    const { exit, logs } = await start(backends)
    expect(Exit.isSuccess(exit)).toBe(true)
    expect(warned(logs, "no API key exists yet")).toBe(true)
  })

  it("refuses an authenticator name nobody registered, naming the config path and what exists", async () => {
    const { exit } = await start(`${backends}auth: { authenticators: [oidc] }\n`)
    expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain(
      'auth.authenticators[0]: unknown authenticator "oidc" (known: anonymous, api_key)'
    )
  })

  it("knows which addresses are loopback", () => {
    for (const host of ["127.0.0.1", "127.8.9.10", "::1", "localhost", "[::1]"]) expect(isLoopback(host), host).toBe(true)
    for (const host of ["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "example.com", "127.0.0.1.example.com"]) {
      expect(isLoopback(host), host).toBe(false)
    }
  })
})
