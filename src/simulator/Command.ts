/**
 * The standalone simulator as a command (`sluice simulate …`, `npm run simulate -- …`): one
 * instance from flags or every instance of a fleet file. Prints one line per instance with
 * its URL, serves until SIGINT/SIGTERM (NodeRuntime.runMain interrupts the program and every
 * server closes through its scope), and exits with status 1 after a crash in mode "exit",
 * 2 on a usage error.
 *
 * Must never: hold simulator logic (Simulator.ts does); it only parses flags and starts instances.
 */
import { NodeFileSystem, NodeRuntime } from "@effect/platform-node"
import { Console, Deferred, Effect, Result } from "effect"
import { type CliCommand, loadFleetFile, parseCli, USAGE } from "./fleet.ts"
import * as Simulator from "./Simulator.ts"

const serve = (command: Exclude<CliCommand, { readonly _tag: "Help" }>) =>
  Effect.gen(function*() {
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

export const program = (argv: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const parsed = parseCli(argv)
    if (Result.isFailure(parsed)) {
      yield* Console.error(`${parsed.failure}\n\n${USAGE}`)
      return yield* Effect.sync(() => void (process.exitCode = 2))
    }
    if (parsed.success._tag === "Help") return yield* Console.log(USAGE)
    return yield* serve(parsed.success)
  })

export const run = (argv: ReadonlyArray<string>): void => NodeRuntime.runMain(program(argv))
