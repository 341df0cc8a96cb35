/**
 * The command line for tenants and API keys, on the same store as the gateway (directly
 * through the database: `DATABASE_URL`, else `SLUICE_DATA_DIR`, else `data/`), with the same
 * rules as the admin API (auth/KeyAdmin.ts). With `REDIS_URL` set, a revocation or expiry
 * change is announced to running replicas at once; otherwise they see it when their cache
 * entry for the key goes stale (`auth.cache_ttl`, 30 s by default).
 *
 *   keys create --tenant ID --name NAME [--models a,b] [--expires 30d|ISO-TIME]
 *   keys list [--tenant ID]
 *   keys revoke KEY_ID
 *   keys rotate KEY_ID [--grace 7d]
 *   keys expire KEY_ID (--in 30d | --at ISO-TIME | --never)
 *   keys hash [KEY | -]        hash a key for `auth.keys` (no KEY: make a new one)
 *   tenants create ID [--name NAME] | tenants list | tenants disable ID | tenants enable ID
 *   limits set (--tenant ID [--model M] | --key KEY_ID) --requests-per-minute N ... (a value `none` lifts a limit)
 *   limits show (--tenant ID [--model M] | --key KEY_ID)
 *   prices set MODEL --input USD --output USD [--cached-input USD] [--backend ID]   (per million tokens)
 *   prices list
 *
 * `--json` prints JSON instead of text; `--config FILE` reads the gateway's config (known
 * models, the revocation channel). Exit codes: 0 done, 1 refused or failed, 2 usage.
 * The raw key is printed once, by `create`, `rotate` and `hash`; nothing else ever prints it.
 *
 * Limits and prices written here reach running gateways within 5 s (they re-read the
 * database); the admin API applies them at once on the replica that serves it.
 *
 * Entry points: `keys(argv)`, `tenants(argv)`, `limits(argv)` and `prices(argv)` (argv
 * after the command word), for the `sluice` command line to mount; `main(argv)` runs one
 * and resolves to the exit code.
 */
import { NodeServices } from "@effect/platform-node"
import { Clock, Data, Effect, Layer, References } from "effect"
import { createInterface } from "node:readline"
import * as ApiKey from "../auth/ApiKey.ts"
import { DEFAULT_ROTATION_GRACE_MS, KeyAdmin, parseExpiry, parseSpanMs } from "../auth/KeyAdmin.ts"
import { Revocations } from "../auth/Revocations.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import * as Format from "../domain/ApiKeys.ts"
import * as ErrorResponse from "../http/ErrorResponse.ts"
import { keyJson, tenantJson } from "../http/Admin.ts"
import * as Database from "../stores/Database.ts"
import { KeyStore } from "../stores/KeyStore.ts"
import * as Quotas from "../admission/Quotas.ts"
import { LIMIT_FIELD_NAMES, type LimitField } from "../domain/Quotas.ts"
import { type LimitScope, QuotaStore, type StoredLimits } from "../stores/QuotaStore.ts"

export interface Io {
  readonly out: (line: string) => void
  readonly err: (line: string) => void
}

const stdio: Io = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`)
}

interface Args {
  readonly positional: ReadonlyArray<string>
  readonly flags: ReadonlyMap<string, string | true>
}

const BOOLEAN = new Set(["json", "never", "help"])

export const parseArgs = (argv: ReadonlyArray<string>): Args => {
  const positional: Array<string> = []
  const flags = new Map<string, string | true>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith("--")) {
      positional.push(arg)
      continue
    }
    const eq = arg.indexOf("=")
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2)
    if (eq > 0) flags.set(name, arg.slice(eq + 1))
    else if (BOOLEAN.has(name) || i + 1 >= argv.length || argv[i + 1]!.startsWith("--")) flags.set(name, true)
    else flags.set(name, argv[++i]!)
  }
  return { positional, flags }
}

class Usage extends Data.TaggedError("Usage")<{ readonly message: string }> {}

/** Flags every command takes. */
const COMMON = ["json", "config", "help"]

/**
 * Each subcommand's own flags and how many words it takes (the subcommand included): an
 * unknown flag or a stray word is a usage error, never ignored.
 */
const GRAMMAR: Readonly<Record<string, { readonly flags: ReadonlyArray<string>; readonly words: readonly [number, number] }>> = {
  "keys create": { flags: ["tenant", "name", "models", "expires"], words: [1, 1] },
  "keys list": { flags: ["tenant"], words: [1, 1] },
  "keys revoke": { flags: [], words: [1, 2] },
  "keys rotate": { flags: ["grace"], words: [1, 2] },
  "keys expire": { flags: ["in", "at", "never"], words: [1, 2] },
  "keys hash": { flags: [], words: [1, 2] },
  "tenants create": { flags: ["name"], words: [1, 2] },
  "tenants list": { flags: [], words: [1, 1] },
  "tenants disable": { flags: [], words: [1, 2] },
  "tenants enable": { flags: [], words: [1, 2] }
}

/** The usage error of `args` for `command`, if any (an unknown subcommand is the command's to report). */
export const strict = (command: "keys" | "tenants", args: Args): string | undefined => {
  const grammar = GRAMMAR[`${command} ${args.positional[0] ?? ""}`]
  if (grammar === undefined) return undefined
  for (const name of args.flags.keys()) {
    if (!COMMON.includes(name) && !grammar.flags.includes(name)) return `unknown flag --${name} for ${command} ${args.positional[0]}`
  }
  const extra = args.positional[grammar.words[1]]
  if (extra !== undefined) return `unexpected argument "${extra}"`
  return undefined
}

const text = (args: Args, name: string): string | undefined => {
  const v = args.flags.get(name)
  return typeof v === "string" ? v : undefined
}
const required = (args: Args, name: string) =>
  Effect.suspend(() => {
    const v = text(args, name)
    return v === undefined || v === "" ? Effect.fail(new Usage({ message: `--${name} is required` })) : Effect.succeed(v)
  })

/** The store, the key administration and (with REDIS_URL) the revocation channel, for one command. */
const services = (args: Args) => {
  const config = GatewayConfig.fromEnvironment({ config: text(args, "config") })
  const revocations = Layer.unwrap(Effect.map(GatewayConfig, ({ initial }) => Revocations.fromEnvironment(initial.auth.revocationChannel)))
  return KeyAdmin.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(KeyStore.layer, QuotaStore.layer, revocations)),
    Layer.provideMerge(Database.fromEnvironment("data")),
    Layer.provideMerge(config),
    Layer.provide(NodeServices.layer)
  )
}

const iso = (ms: number | undefined) => ms === undefined ? "never" : new Date(ms).toISOString()

const readStdin = Effect.callback<string>((resume) => {
  const lines: Array<string> = []
  const rl = createInterface({ input: process.stdin })
  rl.on("line", (l) => lines.push(l))
  rl.on("close", () => resume(Effect.succeed(lines.join("\n").trim())))
})

const hashCommand = (args: Args, io: Io) =>
  Effect.gen(function*() {
    const given = args.positional[1] === "-" ? yield* readStdin : args.positional[1]
    const made = given === undefined ? ApiKey.generate() : undefined
    const key = given ?? made!.key
    const keyId = Format.keyIdOf(key)
    if (keyId === undefined) return yield* new Usage({ message: "not a Sluice key (sk-sluice-<12 characters>-<43 characters>)" })
    const hash = yield* ApiKey.hash(key)
    if (args.flags.has("json")) {
      io.out(JSON.stringify(made === undefined ? { id: keyId, hash } : { id: keyId, hash, key }))
      return 0
    }
    if (made !== undefined) io.out(`key:  ${key}   (shown once: give it to the client now)`)
    io.out(`id:   ${keyId}`)
    io.out(`hash: ${hash}`)
    io.out("")
    io.out("# under auth.keys in the config file (declare the tenant under auth.tenants):")
    io.out(`- { id: ${keyId}, tenant: TENANT, name: NAME, hash: "${hash}" }`)
    return 0
  })

const keyCommand = (args: Args, io: Io) =>
  Effect.gen(function*() {
    const admin = yield* KeyAdmin
    const now = yield* Clock.currentTimeMillis
    const json = args.flags.has("json")
    const id = () => args.positional[1] === undefined ? Effect.fail(new Usage({ message: "a key id is required" })) : Effect.succeed(args.positional[1])
    const show = (k: Parameters<typeof keyJson>[0]) =>
      json
        ? io.out(JSON.stringify(keyJson(k, now)))
        : io.out(`${k.id}  tenant=${k.tenant}  name=${k.name}  status=${keyJson(k, now).status}  expires=${iso(k.expiresAtMs)}`)
    switch (args.positional[0]) {
      case "create": {
        const expires = text(args, "expires")
        const expiresAtMs = expires === undefined ? undefined : parseExpiry(expires, now)
        if (expires !== undefined && expiresAtMs === undefined) return yield* new Usage({ message: "--expires is a span (30d, 12h) or an ISO time" })
        const models = text(args, "models")?.split(",").map((m) => m.trim()).filter((m) => m !== "")
        const created = yield* admin.createKey({
          tenant: yield* required(args, "tenant"),
          name: yield* required(args, "name"),
          models,
          expiresAtMs,
          createTenant: true
        })
        if (json) io.out(JSON.stringify({ ...keyJson(created.record, now), key: created.key }))
        else {
          io.out(`key:    ${created.key}`)
          io.out("        (shown once: Sluice keeps only its hash; give it to the client now)")
          io.out(`id:     ${created.record.id}`)
          io.out(`tenant: ${created.record.tenant}`)
          io.out(`models: ${created.record.models?.join(",") ?? "all"}`)
          io.out(`expires: ${iso(created.record.expiresAtMs)}`)
        }
        return 0
      }
      case "list": {
        const keys = yield* admin.keys(text(args, "tenant"))
        if (json) io.out(JSON.stringify(keys.map((k) => keyJson(k, now))))
        else keys.forEach(show)
        return 0
      }
      case "revoke": {
        show(yield* admin.revokeKey(yield* id()))
        return 0
      }
      case "rotate": {
        const grace = text(args, "grace")
        const graceMs = grace === undefined ? DEFAULT_ROTATION_GRACE_MS : parseSpanMs(grace)
        if (graceMs === undefined) return yield* new Usage({ message: "--grace is a span such as 7d or 12h" })
        const { created, old } = yield* admin.rotateKey(yield* id(), graceMs)
        if (json) io.out(JSON.stringify({ ...keyJson(created.record, now), key: created.key, replaces: keyJson(old, now) }))
        else {
          io.out(`key:    ${created.key}`)
          io.out("        (shown once: Sluice keeps only its hash)")
          io.out(`id:     ${created.record.id}`)
          io.out(`old key ${old.id} expires ${iso(old.expiresAtMs)}`)
        }
        return 0
      }
      case "expire": {
        const at = text(args, "at")
        const span = text(args, "in")
        const expiresAtMs = args.flags.has("never")
          ? undefined
          : at !== undefined
          ? parseExpiry(at, now)
          : span !== undefined
          ? (parseSpanMs(span) ?? Number.NaN) + now
          : Number.NaN
        if (expiresAtMs !== undefined && Number.isNaN(expiresAtMs)) return yield* new Usage({ message: "give --in 30d, --at ISO-TIME or --never" })
        show(yield* admin.setExpiry(yield* id(), expiresAtMs))
        return 0
      }
      default:
        return yield* new Usage({ message: `unknown keys command "${args.positional[0] ?? ""}"` })
    }
  })

const tenantCommand = (args: Args, io: Io) =>
  Effect.gen(function*() {
    const admin = yield* KeyAdmin
    const json = args.flags.has("json")
    const show = (t: Parameters<typeof tenantJson>[0]) =>
      json ? io.out(JSON.stringify(tenantJson(t))) : io.out(`${t.id}  name=${t.name}  status=${tenantJson(t).status}`)
    const id = args.positional[1]
    switch (args.positional[0]) {
      case "create":
        if (id === undefined) return yield* new Usage({ message: "a tenant id is required" })
        show(yield* admin.createTenant(id, text(args, "name")))
        return 0
      case "list":
        ;(yield* admin.tenants).forEach(show)
        return 0
      case "disable":
      case "enable":
        if (id === undefined) return yield* new Usage({ message: "a tenant id is required" })
        show(yield* admin.updateTenant(id, { disabled: args.positional[0] === "disable" }))
        return 0
      default:
        return yield* new Usage({ message: `unknown tenants command "${args.positional[0] ?? ""}"` })
    }
  })

/** A limit value from the command line: a non-negative number, or `none` (lifts the limit). */
const limitValue = (flag: string, raw: string) => {
  if (raw === "none") return Effect.succeed(null)
  const n = Number(raw)
  return raw.trim() === "" || !Number.isFinite(n) || n < 0
    ? Effect.fail(new Usage({ message: `--${flag} is a non-negative number or none` }))
    : Effect.succeed(n)
}

const dollars = (args: Args, name: string) =>
  Effect.gen(function*() {
    const raw = text(args, name)
    if (raw === undefined) return undefined
    const n = Number(raw)
    if (raw.trim() === "" || !Number.isFinite(n) || n < 0) return yield* new Usage({ message: `--${name} is a non-negative number (USD per million tokens)` })
    return n
  })

/** The subject of a limits command: `--key ID`, or `--tenant ID` with an optional `--model`. */
const limitSubject = (args: Args) =>
  Effect.gen(function*() {
    const key = text(args, "key")
    const tenant = text(args, "tenant")
    if ((key === undefined) === (tenant === undefined)) return yield* new Usage({ message: "give --tenant ID (and --model M) or --key KEY_ID" })
    if (key !== undefined) {
      yield* (yield* KeyAdmin).key(key)
      return { scope: "key" as LimitScope, subject: key, model: "" }
    }
    const name = text(args, "model")
    if (name === undefined) return { scope: "tenant" as LimitScope, subject: tenant!, model: "" }
    const model = (yield* GatewayConfig).initial.modelNames.get(name)
    if (model === undefined) return yield* new Usage({ message: `unknown model "${name}" (pass the gateway's --config)` })
    return { scope: "model" as LimitScope, subject: tenant!, model: model as string }
  })

const limitsCommand = (args: Args, io: Io) =>
  Effect.gen(function*() {
    const store = yield* QuotaStore
    const { initial } = yield* GatewayConfig
    const json = args.flags.has("json")
    const { scope, subject, model } = yield* limitSubject(args)
    const rows = yield* store.limits
    const stored = rows.find((r) => r.scope === scope && r.subject === subject && r.model === model)
    const show = (all: typeof rows) => {
      const table = Quotas.make(initial, { rows: all, prices: [] })
      const limits = table.limitsOf(scope, subject, model) ?? {}
      if (json) io.out(JSON.stringify({ scope, subject, ...(model === "" ? {} : { model }), limits }))
      else {
        io.out(`${scope === "key" ? "key" : "tenant"} ${subject}${model === "" ? "" : `, model ${model}`}:`)
        const fields = Object.entries(limits)
        if (fields.length === 0) io.out("  no limits")
        for (const [field, value] of fields) io.out(`  ${field}: ${field.startsWith("spend_") ? `$${value}` : value}`)
      }
    }
    switch (args.positional[0]) {
      case "show":
        show(rows)
        return 0
      case "set": {
        const change: { [F in LimitField]?: number | null } = {}
        for (const field of LIMIT_FIELD_NAMES) {
          const flag = field.replaceAll("_", "-")
          const raw = text(args, flag)
          if (raw !== undefined) change[field] = yield* limitValue(flag, raw)
        }
        if (Object.keys(change).length === 0) {
          return yield* new Usage({ message: `give at least one limit: ${LIMIT_FIELD_NAMES.map((f) => `--${f.replaceAll("_", "-")}`).join(", ")}` })
        }
        const limits: StoredLimits = { ...stored?.limits, ...change }
        const row = { scope, subject, model, limits }
        yield* store.setLimits(row, yield* Clock.currentTimeMillis)
        show([...rows.filter((r) => r !== stored), row])
        return 0
      }
      default:
        return yield* new Usage({ message: `unknown limits command "${args.positional[0] ?? ""}"` })
    }
  })

const pricesCommand = (args: Args, io: Io) =>
  Effect.gen(function*() {
    const store = yield* QuotaStore
    const { initial } = yield* GatewayConfig
    const json = args.flags.has("json")
    switch (args.positional[0]) {
      case "list": {
        const table = Quotas.make(initial, { rows: [], prices: yield* store.prices })
        const list: Array<Record<string, unknown>> = []
        for (const model of initial.models.keys()) {
          const price = table.price(model, undefined)
          if (price !== undefined) list.push({ model, backend: null, input: price.input, cached_input: price.cachedInput, output: price.output })
          for (const b of initial.backends) {
            const own = table.price(model, b.id)
            if (own !== undefined && own !== price) list.push({ model, backend: b.id, input: own.input, cached_input: own.cachedInput, output: own.output })
          }
        }
        if (json) io.out(JSON.stringify(list))
        else {
          for (const p of list) {
            io.out(`${p["model"]}${p["backend"] === null ? "" : ` on ${p["backend"]}`}: input $${p["input"]}  cached $${p["cached_input"]}  output $${p["output"]} per 1M tokens`)
          }
        }
        return 0
      }
      case "set": {
        const name = args.positional[1]
        if (name === undefined) return yield* new Usage({ message: "a model is required" })
        const model = initial.modelNames.get(name)
        if (model === undefined) return yield* new Usage({ message: `unknown model "${name}" (pass the gateway's --config)` })
        const input = yield* dollars(args, "input")
        const output = yield* dollars(args, "output")
        if (input === undefined || output === undefined) return yield* new Usage({ message: "--input and --output are required" })
        const cachedInput = (yield* dollars(args, "cached-input")) ?? input
        const backend = text(args, "backend") ?? ""
        if (backend !== "" && !initial.backends.some((b) => b.id === backend)) return yield* new Usage({ message: `unknown backend "${backend}"` })
        yield* store.setPrice({ model, backend, price: { input, cachedInput, output } }, yield* Clock.currentTimeMillis)
        const shown = { model, backend: backend === "" ? null : backend, input, cached_input: cachedInput, output }
        io.out(json ? JSON.stringify(shown) : `${model}${backend === "" ? "" : ` on ${backend}`}: input $${input}  cached $${cachedInput}  output $${output} per 1M tokens`)
        return 0
      }
      default:
        return yield* new Usage({ message: `unknown prices command "${args.positional[0] ?? ""}"` })
    }
  })

const finish = <R>(effect: Effect.Effect<number, unknown, R>, io: Io, help: string) =>
  effect.pipe(
    Effect.catch((error) =>
      Effect.sync(() => {
        if (error instanceof Usage) {
          io.err(`${error.message}\n\n${help}`)
          return 2
        }
        const known = ErrorResponse.toWireIfKnown(error)
        io.err(known === undefined ? `failed: ${String(error)}` : known.body.message)
        return 1
      })
    ),
    Effect.provideService(References.MinimumLogLevel, "Warn")
  )

/** A usage error before anything is opened: the message and the usage on stderr, exit 2. */
const usage = (message: string, io: Io, help: string): Effect.Effect<number> =>
  Effect.sync(() => {
    io.err(`${message}\n\n${help}`)
    return 2
  })

const KEYS_HELP = `usage: keys create --tenant ID --name NAME [--models a,b] [--expires 30d]
       keys list [--tenant ID] | keys revoke ID | keys rotate ID [--grace 7d]
       keys expire ID (--in 30d | --at TIME | --never) | keys hash [KEY | -]`
const TENANTS_HELP = "usage: tenants create ID [--name NAME] | tenants list | tenants disable ID | tenants enable ID"

/** `sluice keys ...` (argv after `keys`). */
export const keys = (argv: ReadonlyArray<string>, io: Io = stdio): Effect.Effect<number> => {
  const args = parseArgs(argv)
  if (args.flags.has("help")) {
    io.out(KEYS_HELP)
    return Effect.succeed(0)
  }
  const wrong = args.positional.length === 0 ? "a keys command is required" : strict("keys", args)
  if (wrong !== undefined) return usage(wrong, io, KEYS_HELP)
  if (args.positional[0] === "hash") return finish(hashCommand(args, io), io, KEYS_HELP)
  return finish(Effect.scoped(Effect.provide(keyCommand(args, io), services(args))), io, KEYS_HELP)
}

/** `sluice tenants ...` (argv after `tenants`). */
export const tenants = (argv: ReadonlyArray<string>, io: Io = stdio): Effect.Effect<number> => {
  const args = parseArgs(argv)
  if (args.flags.has("help")) {
    io.out(TENANTS_HELP)
    return Effect.succeed(0)
  }
  const wrong = args.positional.length === 0 ? "a tenants command is required" : strict("tenants", args)
  if (wrong !== undefined) return usage(wrong, io, TENANTS_HELP)
  return finish(Effect.scoped(Effect.provide(tenantCommand(args, io), services(args))), io, TENANTS_HELP)
}

const LIMITS_HELP = `usage: limits set (--tenant ID [--model M] | --key KEY_ID) [--requests-per-minute N] [--tokens-per-minute N]
         [--input-tokens-per-day N] [--output-tokens-per-month N] ... [--spend-per-day USD] [--spend-per-month USD]
         [--concurrent-requests N]          (a value of none lifts that limit)
       limits show (--tenant ID [--model M] | --key KEY_ID)`
const PRICES_HELP = `usage: prices set MODEL --input USD --output USD [--cached-input USD] [--backend ID]   (USD per million tokens)
       prices list`

const subcommand = (
  command: (args: Args, io: Io) => Effect.Effect<number, unknown, KeyAdmin | QuotaStore | GatewayConfig>,
  help: string
) =>
(argv: ReadonlyArray<string>, io: Io = stdio): Effect.Effect<number> => {
  const args = parseArgs(argv)
  if (args.positional.length === 0 || args.flags.has("help")) {
    io.out(help)
    return Effect.succeed(args.flags.has("help") ? 0 : 2)
  }
  return finish(Effect.scoped(Effect.provide(command(args, io), services(args))), io, help)
}

/** `sluice limits ...` (argv after `limits`). */
export const limits = subcommand(limitsCommand, LIMITS_HELP)

/** `sluice prices ...` (argv after `prices`). */
export const prices = subcommand(pricesCommand, PRICES_HELP)

/** Runs `keys ...`, `tenants ...`, `limits ...` or `prices ...`; resolves to the exit code. */
export const main = (argv: ReadonlyArray<string>, io: Io = stdio): Promise<number> =>
  Effect.runPromise(
    argv[0] === "tenants"
      ? tenants(argv.slice(1), io)
      : argv[0] === "limits"
      ? limits(argv.slice(1), io)
      : argv[0] === "prices"
      ? prices(argv.slice(1), io)
      : keys(argv[0] === "keys" ? argv.slice(1) : argv, io)
  )
