/**
 * `sluice plan --trace FILE --fleet FILE [--policies a,b,c]`: reads the two files (bounded in size),
 * decodes them (planner/Trace.ts, planner/Fleet.ts), runs the planner once per policy and prints one
 * row per policy (or JSON). Owns the files and the printing; the planner itself does no I/O.
 *
 * Exit codes: 0 printed, 1 a file could not be read or decoded (or a plugin name is unknown).
 * Must never: start a server or an engine process, or write anything but stdout and stderr.
 */
import { Effect, Exit } from "effect"
import { readFileSync, statSync } from "node:fs"
import * as Fleet from "../planner/Fleet.ts"
import * as Planner from "../planner/Planner.ts"
import * as Trace from "../planner/Trace.ts"
import type { PlanFlags } from "./Command.ts"
import type { Io } from "./keys.ts"

/** Largest trace and fleet file read (the trace is held in memory, one string). */
export const MAX_TRACE_BYTES = 256 * 1024 * 1024
const MAX_FLEET_BYTES = 4 * 1024 * 1024

const stdio: Io = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`)
}

const readBounded = (path: string, max: number): string | Error => {
  try {
    const size = statSync(path).size
    if (size > max) return new Error(`${path}: ${size} bytes, more than the ${max} this command reads`)
    return readFileSync(path, "utf8")
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e))
  }
}

const ms = (x: number): string =>
  Number.isNaN(x) ? "–" : x >= 1000 ? `${(x / 1000).toFixed(x >= 10_000 ? 1 : 2)} s` : `${x.toFixed(0)} ms`

/** The Markdown table of the reports. */
export const table = (reports: ReadonlyArray<Planner.Report>): ReadonlyArray<string> => [
  "| policy | reqs | done | unfinished | rejected | TTFT p50 | TTFT p90 | TTFT p99 | ITL p50 | ITL p99 | out tok/s | goodput req/s (share) | prefix hit | preempt | flow waited / refused | GPU-s | cost | cost / M out tok |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ...reports.map((r) =>
    `| ${r.policy} | ${r.requests} | ${r.completed} | ${r.unfinished} | ${r.rejected} | ${ms(r.ttft.p50)} | ${ms(r.ttft.p90)} | ${ms(r.ttft.p99)} | ` +
    `${ms(r.itl.p50)} | ${ms(r.itl.p99)} | ${r.outputTokensPerS.toFixed(0)} | ${r.goodput.toFixed(2)} (${(r.goodputShare * 100).toFixed(0)}%) | ` +
    `${(r.hitRate * 100).toFixed(0)}% | ${r.preemptions} | ${r.flowWaited} / ${r.flowRefused} | ${r.gpuSeconds.toFixed(1)} | ${r.cost.toFixed(1)} | ${r.costPerMTokens.toFixed(0)} |`
  )
]

export const main = async (flags: PlanFlags, io: Io = stdio): Promise<number> => {
  const traceText = readBounded(flags.trace, MAX_TRACE_BYTES)
  if (traceText instanceof Error) {
    io.err(`sluice plan: ${traceText.message}`)
    return 1
  }
  const trace = Trace.parse(traceText)
  if (trace instanceof Trace.TraceError) {
    io.err(`sluice plan: ${flags.trace}: line ${trace.line}: ${trace.message}`)
    return 1
  }
  const fleetText = readBounded(flags.fleet, MAX_FLEET_BYTES)
  if (fleetText instanceof Error) {
    io.err(`sluice plan: ${fleetText.message}`)
    return 1
  }
  const plan = Effect.runSyncExit(Fleet.parse(fleetText, flags.fleet))
  if (Exit.isFailure(plan)) {
    const error = plan.cause.reasons.find((r) => r._tag === "Fail")
    io.err(`sluice plan: ${error?._tag === "Fail" ? `${error.error.source}: ${error.error.message}` : String(plan.cause)}`)
    return 1
  }
  const measure = flags.duration === undefined
    ? undefined
    : { warmupMs: (flags.warmup ?? 0) * 1000, durationMs: flags.duration * 1000, drainMs: (flags.drain ?? 60) * 1000 }
  const reports: Array<Planner.Report> = []
  for (const name of flags.policies) {
    const [head, picker] = name.split("/")
    const policy = head?.replace(/\+kv$/, "")
    if (policy === undefined || !Planner.isPolicy(policy)) {
      io.err(`sluice plan: unknown policy "${name}"`)
      return 1
    }
    try {
      reports.push(Planner.run(plan.value, trace, {
        policy,
        picker,
        seed: flags.seed,
        jitter: flags.jitter,
        measure,
        kvBlocks: flags.kvBlocks,
        kvEvents: head !== policy
      }))
    } catch (e) {
      if (e instanceof Planner.PlannerError) {
        io.err(`sluice plan: ${e.message}`)
        return 1
      }
      throw e
    }
  }
  if (flags.json) {
    io.out(JSON.stringify({ trace: flags.trace, fleet: flags.fleet, arrivals: trace.length, backends: plan.value.backends.length, reports }, null, 2))
    return 0
  }
  io.out(`${trace.length} arrivals over ${((trace.at(-1)?.atMs ?? 0) / 1000).toFixed(1)} s, ${plan.value.backends.length} engines; times are virtual (engine) time`)
  for (const line of table(reports)) io.out(line)
  return 0
}
