/**
 * `sluice check-config [FILE...]`: each file through the gateway's own loader (decode with
 * the file schema, validate into a plan) and the built-in registries' checks (dialects,
 * routing plugins, authenticators, policies), exactly as `serve` checks it at start. Prints
 * `FILE: ok (…)` or one `FILE: path: problem` line per problem; exit status 0 or 1.
 * Must never: start engines or servers, or read anything but the files and the environment.
 */
import { NodeFileSystem, NodeRuntime } from "@effect/platform-node"
import { Config, Console, Effect, Option, Result } from "effect"
import { PlanChecks } from "../config/Checks.ts"
import * as Load from "../config/Load.ts"
import { builtInChecks } from "../Registries.ts"

/** Checks the files (none: what serve would load); succeeds with the exit status. */
export const check = (files: ReadonlyArray<string>, env: Readonly<Record<string, string | undefined>>) =>
  Effect.gen(function*() {
    const fallback = Option.getOrElse(yield* Config.option(Config.String("SLUICE_CONFIG")), () => Load.DEFAULT_PATH)
    const checks = yield* PlanChecks
    let valid = true
    for (const path of files.length > 0 ? files : [fallback]) {
      const result = yield* Effect.result(Load.loadFile(path, env))
      if (Result.isSuccess(result)) {
        const plan = result.success
        const issues = checks.run(plan)
        if (issues.length > 0) {
          valid = false
          for (const i of issues) yield* Console.error(`${path}: ${i.path}: ${i.message}`)
          continue
        }
        yield* Console.log(`${path}: ok (${plan.models.size} models, ${plan.backends.length} backends, routing ${plan.routing.policy})`)
      } else {
        valid = false
        for (const problem of result.failure.issues ?? [result.failure.message]) yield* Console.error(`${path}: ${problem}`)
      }
    }
    return valid ? 0 : 1
  }).pipe(Effect.provide(NodeFileSystem.layer), Effect.provide(builtInChecks))

export const run = (files: ReadonlyArray<string>): void =>
  NodeRuntime.runMain(Effect.flatMap(check(files, process.env), (status) => Effect.sync(() => void (process.exitCode = status))))
