/**
 * The command line's grammar: which commands exist, which flags each takes, and turning
 * argv into one typed `Invocation` (or a usage error). Flags are tokenized by Node's own
 * `util.parseArgs` in strict mode, so an unknown flag, a missing value or a stray argument
 * is an error, never ignored.
 *
 * Must never: import effect or anything that starts, loads or reads (this runs before
 * `--help` and `--version` print, which must stay instant). A new command (the key
 * commands of the identity work) is one more entry in `COMMANDS` and one more case here.
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util"
import type { Flags } from "../config/Settings.ts"

export const COMMANDS = ["serve", "check-config", "simulate", "plan", "keys", "tenants", "limits", "prices", "usage", "help"] as const
export type CommandName = typeof COMMANDS[number]

/** Accepted by `--log-level` (any case). */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "warning", "error", "fatal", "none", "all"] as const

export type Invocation =
  | { readonly _tag: "Help"; readonly topic: CommandName | undefined }
  | { readonly _tag: "Version" }
  | { readonly _tag: "Serve"; readonly flags: Flags }
  | { readonly _tag: "CheckConfig"; readonly files: ReadonlyArray<string> }
  /** The simulator parses its own flags (strictly too: src/simulator/fleet.ts). */
  | { readonly _tag: "Simulate"; readonly argv: ReadonlyArray<string> }
  /** The tenant and key commands parse their own arguments (src/cli/keys.ts). */
  | { readonly _tag: "Keys"; readonly command: "keys" | "tenants" | "limits" | "prices"; readonly argv: ReadonlyArray<string> }
  /** `sluice usage`: the audit ledger's usage report (src/cli/usage.ts reads it). */
  | { readonly _tag: "Usage"; readonly flags: UsageFlags }
  /** `sluice plan`: replay a trace through a virtual-time fleet (src/cli/plan.ts runs src/planner/). */
  | { readonly _tag: "Plan"; readonly flags: PlanFlags }
  | { readonly _tag: "UsageError"; readonly message: string; readonly topic: CommandName | undefined }

export interface UsageFlags {
  readonly tenant: string | undefined
  readonly from: string | undefined
  readonly to: string | undefined
  readonly json: boolean
}

export interface PlanFlags {
  readonly trace: string
  readonly fleet: string
  /** `inference[+kv][/<picker>]`, `round_robin`, `least_outstanding`, `random`, `ordered`. */
  readonly policies: ReadonlyArray<string>
  readonly seed: number
  readonly jitter: number
  /** Seconds; undefined: everything measured, run to completion. */
  readonly warmup: number | undefined
  readonly duration: number | undefined
  readonly drain: number | undefined
  readonly kvBlocks: number | undefined
  readonly json: boolean
}

const PLAN_POLICY = /^(inference(\+kv)?(\/[a-z][a-z0-9_]{0,63})?|round_robin|least_outstanding|random|ordered)$/

const help = { help: { type: "boolean", short: "h" } } as const satisfies ParseArgsOptionsConfig

const serveOptions = {
  ...help,
  version: { type: "boolean" },
  config: { type: "string" },
  upstream: { type: "string" },
  host: { type: "string" },
  port: { type: "string" },
  "log-level": { type: "string" },
  workers: { type: "string" }
} as const satisfies ParseArgsOptionsConfig

const usageOptions = {
  ...help,
  tenant: { type: "string" },
  from: { type: "string" },
  to: { type: "string" },
  json: { type: "boolean" }
} as const satisfies ParseArgsOptionsConfig

const planOptions = {
  ...help,
  trace: { type: "string" },
  fleet: { type: "string" },
  policies: { type: "string" },
  seed: { type: "string" },
  jitter: { type: "string" },
  warmup: { type: "string" },
  duration: { type: "string" },
  drain: { type: "string" },
  "kv-blocks": { type: "string" },
  json: { type: "boolean" }
} as const satisfies ParseArgsOptionsConfig

const isCommand = (word: string): word is CommandName => (COMMANDS as ReadonlyArray<string>).includes(word)

const usageError = (message: string, topic: CommandName | undefined): Invocation => ({ _tag: "UsageError", message, topic })

/** Node's parseArgs messages, first sentence only (its hint about `--` is noise here). */
const parseError = (e: unknown): string => {
  const text = e instanceof Error ? e.message : String(e)
  const first = text.split("\n")[0] ?? text
  const unknown = /^Unknown option '(.+?)'/.exec(first)
  return unknown !== null ? `unknown flag ${unknown[1]}` : first
}

/** Node's parser throws on bad input; this is the boundary that turns that into data. */
const attempt = <A>(f: () => A): { readonly ok: true; readonly value: A } | { readonly ok: false; readonly message: string } => {
  try {
    return { ok: true, value: f() }
  } catch (e) {
    return { ok: false, message: parseError(e) }
  }
}

/** Flags of commands that take only `--help`, plus positional arguments. */
const parseHelpOnly = (args: ReadonlyArray<string>) =>
  attempt(() => parseArgs({ args: [...args], options: help, strict: true, allowPositionals: true }))

const parsePort = (raw: string): number | undefined => {
  if (!/^\d{1,5}$/.test(raw)) return undefined
  const n = Number(raw)
  return n <= 65535 ? n : undefined
}

const parseWorkers = (raw: string): number | "auto" | undefined => {
  if (raw === "auto") return "auto"
  if (!/^\d{1,4}$/.test(raw)) return undefined
  const n = Number(raw)
  return n >= 1 ? n : undefined
}

const parseServe = (args: ReadonlyArray<string>, topic: CommandName | undefined): Invocation => {
  const parsed = attempt(() => parseArgs({ args: [...args], options: serveOptions, strict: true, allowPositionals: true }))
  if (!parsed.ok) return usageError(parsed.message, topic)
  const v = parsed.value.values
  const stray = parsed.value.positionals[0]
  // `sluice --help check-config` asks for that command's help; any other word is a mistake.
  if (v.help === true && topic === undefined && stray !== undefined && parsed.value.positionals.length === 1 && isCommand(stray)) {
    return { _tag: "Help", topic: stray }
  }
  if (stray !== undefined && (v.help === true || v.version === true)) {
    return usageError(topic === undefined && !isCommand(stray) ? `unknown command "${stray}"` : `unexpected argument "${stray}"`, topic)
  }
  if (v.help === true) return { _tag: "Help", topic }
  if (v.version === true) return { _tag: "Version" }
  if (stray !== undefined) {
    return topic === undefined
      ? usageError(`unknown command "${stray}"`, undefined)
      : usageError(`unexpected argument "${stray}"`, topic)
  }
  let port: number | undefined
  if (v.port !== undefined) {
    port = parsePort(v.port)
    if (port === undefined) return usageError(`--port must be a port number (0-65535), got "${v.port}"`, topic)
  }
  let workers: number | "auto" | undefined
  if (v.workers !== undefined) {
    workers = parseWorkers(v.workers)
    if (workers === undefined) return usageError(`--workers must be a positive integer or "auto", got "${v.workers}"`, topic)
  }
  const level = v["log-level"]
  if (level !== undefined && !(LOG_LEVELS as ReadonlyArray<string>).includes(level.toLowerCase())) {
    return usageError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got "${level}"`, topic)
  }
  return {
    _tag: "Serve",
    flags: { config: v.config, upstream: v.upstream, host: v.host, port, logLevel: level, workers }
  }
}

/** A decimal number within [min, max], or undefined. */
const parseNumber = (raw: string, min: number, max: number, integer: boolean): number | undefined => {
  if (!/^\d{1,12}(\.\d{1,9})?$/.test(raw)) return undefined
  const n = Number(raw)
  return n >= min && n <= max && (!integer || Number.isInteger(n)) ? n : undefined
}

const parsePlan = (args: ReadonlyArray<string>): Invocation => {
  const parsed = attempt(() => parseArgs({ args: [...args], options: planOptions, strict: true, allowPositionals: false }))
  if (!parsed.ok) return usageError(parsed.message, "plan")
  const v = parsed.value.values
  if (v.help === true) return { _tag: "Help", topic: "plan" }
  if (v.trace === undefined) return usageError("--trace FILE is required", "plan")
  if (v.fleet === undefined) return usageError("--fleet FILE is required", "plan")
  const policies = (v.policies ?? "inference,round_robin,least_outstanding").split(",").map((p) => p.trim())
  const bad = policies.find((p) => !PLAN_POLICY.test(p))
  if (bad !== undefined) {
    return usageError(`--policies: unknown policy "${bad}" (inference[+kv][/picker], round_robin, least_outstanding, random, ordered)`, "plan")
  }
  if (policies.length > 16) return usageError("--policies: at most 16", "plan")
  const numbers: Array<[string, string | undefined, number, number, boolean]> = [
    ["seed", v.seed, 0, 2 ** 32 - 1, true],
    ["jitter", v.jitter, 0, 0.5, false],
    ["warmup", v.warmup, 0, 1e7, false],
    ["duration", v.duration, 0, 1e7, false],
    ["drain", v.drain, 0, 1e7, false],
    ["kv-blocks", v["kv-blocks"], 1, 1e8, true]
  ]
  const values = new Map<string, number>()
  for (const [name, raw, min, max, integer] of numbers) {
    if (raw === undefined) continue
    const n = parseNumber(raw, min, max, integer)
    if (n === undefined) return usageError(`--${name} must be ${integer ? "an integer" : "a number"} in [${min}, ${max}], got "${raw}"`, "plan")
    values.set(name, n)
  }
  const warmup = values.get("warmup")
  const duration = values.get("duration")
  if ((warmup !== undefined || values.has("drain")) && duration === undefined) return usageError("--warmup and --drain need --duration", "plan")
  if (warmup !== undefined && duration !== undefined && warmup >= duration) return usageError("--warmup must be less than --duration", "plan")
  return {
    _tag: "Plan",
    flags: {
      trace: v.trace,
      fleet: v.fleet,
      policies,
      seed: values.get("seed") ?? 1,
      jitter: values.get("jitter") ?? 0,
      warmup: duration === undefined ? undefined : warmup ?? 0,
      duration,
      drain: duration === undefined ? undefined : values.get("drain") ?? 60,
      kvBlocks: values.get("kv-blocks"),
      json: v.json === true
    }
  }
}

/** argv (without node and the script) → what to do. */
export const parse = (argv: ReadonlyArray<string>): Invocation => {
  const first = argv[0]
  // No command word: the flags are serve's (`sluice --config x.yaml`, as `npm start -- …` passes them).
  if (first === undefined || first.startsWith("-")) return parseServe(argv, undefined)
  const rest = argv.slice(1)
  if (!isCommand(first)) return usageError(`unknown command "${first}"`, undefined)
  switch (first) {
    case "serve":
      return parseServe(rest, "serve")
    case "simulate":
      return { _tag: "Simulate", argv: rest }
    case "plan":
      return parsePlan(rest)
    case "keys":
    case "tenants":
    case "limits":
    case "prices":
      return { _tag: "Keys", command: first, argv: rest }
    case "usage": {
      const parsed = attempt(() => parseArgs({ args: [...rest], options: usageOptions, strict: true, allowPositionals: false }))
      if (!parsed.ok) return usageError(parsed.message, "usage")
      const v = parsed.value.values
      if (v.help === true) return { _tag: "Help", topic: "usage" }
      return { _tag: "Usage", flags: { tenant: v.tenant, from: v.from, to: v.to, json: v.json === true } }
    }
    case "check-config": {
      const parsed = parseHelpOnly(rest)
      if (!parsed.ok) return usageError(parsed.message, "check-config")
      if (parsed.value.values.help === true) return { _tag: "Help", topic: "check-config" }
      return { _tag: "CheckConfig", files: parsed.value.positionals }
    }
    case "help": {
      const parsed = parseHelpOnly(rest)
      if (!parsed.ok) return usageError(parsed.message, "help")
      const [topic, extra] = parsed.value.positionals
      if (topic === undefined) return { _tag: "Help", topic: undefined }
      if (extra !== undefined) return usageError(`unexpected argument "${extra}"`, "help")
      return isCommand(topic) ? { _tag: "Help", topic } : usageError(`unknown command "${topic}"`, undefined)
    }
  }
}
