/**
 * The command line's grammar, in process: what each argv becomes. (cli.test.ts runs the
 * built binary; this pins the typed result and the agreement with the log-level parser.)
 */
import { describe, expect, it } from "vitest"
import * as Command from "../../src/cli/Command.ts"
import * as Logging from "../../src/observability/Logging.ts"

describe("Command.parse", () => {
  it("serve is the default command and its flags become one typed value", () => {
    expect(Command.parse([])).toEqual({ _tag: "Serve", flags: { config: undefined, upstream: undefined, host: undefined, port: undefined, logLevel: undefined, workers: undefined } })
    const serve = Command.parse(["serve", "--config=a.yaml", "--upstream", "http://u/v1", "--host", "0.0.0.0", "--port", "0", "--log-level", "WARN", "--workers", "auto"])
    expect(serve).toEqual({ _tag: "Serve", flags: { config: "a.yaml", upstream: "http://u/v1", host: "0.0.0.0", port: 0, logLevel: "WARN", workers: "auto" } })
    expect(Command.parse(["--workers", "3"])).toMatchObject({ _tag: "Serve", flags: { workers: 3 } })
  })

  it("help and version win over the other flags", () => {
    expect(Command.parse(["--port", "1", "--help"])).toEqual({ _tag: "Help", topic: undefined })
    expect(Command.parse(["serve", "-h"])).toEqual({ _tag: "Help", topic: "serve" })
    expect(Command.parse(["help", "check-config"])).toEqual({ _tag: "Help", topic: "check-config" })
    expect(Command.parse(["--version"])).toEqual({ _tag: "Version" })
    expect(Command.parse(["--help", "check-config"])).toEqual({ _tag: "Help", topic: "check-config" })
  })

  it("help and version refuse stray words instead of ignoring them", () => {
    expect(Command.parse(["--version", "extra"])).toMatchObject({ _tag: "UsageError", message: "unknown command \"extra\"" })
    expect(Command.parse(["serve", "--version", "now"])).toMatchObject({ _tag: "UsageError", message: "unexpected argument \"now\"" })
    expect(Command.parse(["--help", "launch"])).toMatchObject({ _tag: "UsageError", message: "unknown command \"launch\"" })
    expect(Command.parse(["--help", "serve", "x"])).toMatchObject({ _tag: "UsageError" })
  })

  it("passes simulate's arguments to the simulator's own parser and check-config's files through", () => {
    expect(Command.parse(["simulate", "--profile", "x", "--weird"])).toEqual({ _tag: "Simulate", argv: ["--profile", "x", "--weird"] })
    expect(Command.parse(["check-config", "a.yaml", "b.yaml"])).toEqual({ _tag: "CheckConfig", files: ["a.yaml", "b.yaml"] })
  })

  it("parses usage's flags strictly: unknown flags and stray arguments are errors", () => {
    expect(Command.parse(["usage", "--tenant", "acme", "--from=2026-12-01", "--json"])).toEqual({
      _tag: "Usage",
      flags: { tenant: "acme", from: "2026-12-01", to: undefined, json: true }
    })
    expect(Command.parse(["usage", "--help"])).toEqual({ _tag: "Help", topic: "usage" })
    expect(Command.parse(["usage", "--since", "1d"])).toMatchObject({ _tag: "UsageError", message: "unknown flag --since", topic: "usage" })
    expect(Command.parse(["usage", "acme"])).toMatchObject({ _tag: "UsageError", topic: "usage" })
  })

  it("turns every mistake into a usage error naming it", () => {
    const error = (argv: ReadonlyArray<string>) => {
      const r = Command.parse(argv)
      return r._tag === "UsageError" ? r.message : `not an error: ${r._tag}`
    }
    expect(error(["--prot", "1"])).toBe("unknown flag --prot")
    expect(error(["-x"])).toBe("unknown flag -x")
    expect(error(["--port"])).toContain("argument missing")
    expect(error(["--config", "--port", "1"])).toContain("ambiguous")
    expect(error(["--help=yes"])).toContain("does not take an argument")
    expect(error(["--port", "-1"])).toContain("ambiguous")
    expect(error(["--port", "1.5"])).toContain("--port must be a port number")
    expect(error(["--workers", "two"])).toContain("--workers must be")
    expect(error(["stop"])).toBe("unknown command \"stop\"")
    expect(error(["serve", "now"])).toBe("unexpected argument \"now\"")
  })

  it("accepts exactly the log levels the logger knows", () => {
    for (const name of Command.LOG_LEVELS) {
      const level = Logging.parseLevel(name)
      expect(level.toLowerCase(), name).toBe(name === "warning" ? "warn" : name)
    }
  })
})
