/**
 * Standalone simulator process: `npm run simulate -- --profile … --model … --port …` or `--fleet file.yaml`.
 * Prints one line per instance with its URL, serves until SIGINT/SIGTERM (NodeRuntime.runMain interrupts the
 * program and every server closes through its scope), and exits with status 1 after a crash in mode "exit".
 *
 * Must never: hold simulator logic (Simulator.ts does); it only parses flags and starts instances.
 */
import { NodeFileSystem, NodeRuntime } from "@effect/platform-node"
import { Console, Deferred, Effect, Result } from "effect"
import { type CliCommand, FleetConfigError, loadFleetFile, parseCli, USAGE } from "./fleet.ts"
import * as Simulator from "./Simulator.ts"

const program = Effect.gen(function*() {
  const argv = yield* Effect.sync(() => process.argv.slice(2))
  const parsed = parseCli(argv)
  if (Result.isFailure(parsed)) {
    yield* Console.error(`${parsed.failure}\n\n${USAGE}`)
    return yield* new FleetConfigError({ detail: parsed.failure })
  }
  const command: CliCommand = parsed.success
  if (command._tag === "Help") return yield* Console.log(USAGE)
  const options = command._tag === "Fleet" ? yield* loadFleetFile(command.path) : [command.options]
  const exited = yield* Deferred.make<void>()
  const hooks = { onExit: () => void Deferred.doneUnsafe(exited, Effect.void) }
  for (const o of options) {
    const sim = yield* Simulator.startWith(o, hooks)
    yield* Console.log(
      `${o.model}  ${o.profile}  dialect=${o.dialect ?? "openai"}  timeScale=${o.timeScale ?? 1}  ${sim.url}`
    )
  }
  yield* Deferred.await(exited)
  return yield* Effect.die(new Error("simulated crash (POST /admin/crash with mode exit)"))
}).pipe(Effect.scoped, Effect.provide(NodeFileSystem.layer))

NodeRuntime.runMain(program)
