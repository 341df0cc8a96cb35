/**
 * The `sluice` binary: parse the command line, then do one thing. Help, version and usage
 * errors are answered from here with nothing else loaded; every other command is imported
 * only when chosen (its own chunk in the bundle), so `--help` never loads the gateway, the
 * simulator or the tokenizers.
 *
 * Exit status: 0 done, 1 the command failed (an invalid config, a server that could not
 * start), 2 a usage error (unknown command or flag, a bad flag value).
 * Must never: start anything before the command line has been accepted.
 */
import pkg from "../../package.json" with { type: "json" }
import * as Command from "./Command.ts"
import * as Help from "./Help.ts"

export const version: string = pkg.version

const failed = (e: unknown) => {
  process.stderr.write(`sluice: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`)
  process.exitCode = 1
}

export const main = (argv: ReadonlyArray<string>): void => {
  const invocation = Command.parse(argv)
  switch (invocation._tag) {
    case "Help":
      process.stdout.write(`${Help.text(invocation.topic)}\n`)
      return
    case "Version":
      process.stdout.write(`sluice ${version}\n`)
      return
    case "UsageError": {
      const more = invocation.topic === undefined ? "sluice --help" : `sluice help ${invocation.topic}`
      process.stderr.write(`sluice: ${invocation.message}\nRun '${more}' for usage.\n`)
      process.exitCode = 2
      return
    }
    case "Serve":
      import("../Cluster.ts").then((Cluster) => Cluster.serve(invocation.flags), failed)
      return
    case "CheckConfig":
      import("./CheckConfig.ts").then((CheckConfig) => CheckConfig.run(invocation.files), failed)
      return
    case "Simulate":
      import("../simulator/Command.ts").then((Simulator) => Simulator.run(invocation.argv), failed)
      return
    case "Plan":
      import("./plan.ts").then((Plan) => Plan.main(invocation.flags), failed).then((code) => {
        if (typeof code === "number") process.exitCode = code
      })
      return
    case "Usage":
      import("./usage.ts").then((Usage) => Usage.main(invocation.flags), failed).then((code) => {
        if (typeof code === "number") process.exitCode = code
      })
      return
    case "Keys":
      import("./keys.ts").then((Keys) => Keys.main([invocation.command, ...invocation.argv]), failed).then((code) => {
        if (typeof code === "number") process.exitCode = code
      })
      return
  }
}
