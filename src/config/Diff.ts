/**
 * What a reload changes: two plans in, the models added, removed and changed, the sections
 * whose new values apply to new requests, and the settings that differ but are read only
 * at start ("needs restart": the listener, the stores, the sizes of in-memory state).
 * Pure. Owns the list of settings that cannot change live. Must never: decide what the
 * fleet does with a backend (backends/Fleet.ts compares backends itself) or start anything.
 */
import { Redacted } from "effect"
import type { Plan } from "./Plan.ts"

export interface NameChanges {
  readonly added: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  readonly changed: ReadonlyArray<string>
}

export interface PlanDiff {
  readonly models: NameChanges
  readonly backends: NameChanges
  /** Top-level sections (file names) with a change that new requests see. */
  readonly live: ReadonlyArray<string>
  /** File paths whose new value is ignored until the gateway restarts. */
  readonly needsRestart: ReadonlyArray<string>
}

/** Structural equality over plan values: maps, sets, arrays, records and redacted secrets. */
export const equal = (a: unknown, b: unknown): boolean => {
  if (Object.is(a, b)) return true
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false
  if (Redacted.isRedacted(a) || Redacted.isRedacted(b)) {
    return Redacted.isRedacted(a) && Redacted.isRedacted(b) && equal(Redacted.value(a), Redacted.value(b))
  }
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map) || !(b instanceof Map) || a.size !== b.size) return false
    for (const [k, v] of a) if (!b.has(k) || !equal(v, b.get(k))) return false
    return true
  }
  if (a instanceof Set || b instanceof Set) {
    if (!(a instanceof Set) || !(b instanceof Set) || a.size !== b.size) return false
    for (const v of a) if (!b.has(v)) return false
    return true
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    return a.every((v, i) => equal(v, b[i]))
  }
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined)
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined)
  if (ka.length !== kb.length) return false
  return ka.every((k) => equal((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}

/** A plan field as the file spells it (`prefixTtlMs` → `prefix_ttl`). */
const fileName = (field: string): string => field.replace(/Ms$/, "").replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/**
 * Settings read once when the graph is built. `"*"`: the whole section. Everything else
 * is read per request from the current plan (models, routing policy and plugins, limits,
 * timeouts, retries.max_attempts, extensions, prices and backends through the fleet).
 */
const RESTART: Readonly<Record<string, ReadonlyArray<string>>> = {
  // The listener: address, CORS, connection caps and deadlines; the idle memory reducer.
  server: ["*"],
  // Stores and the in-memory state sized at start.
  budgets: ["*"],
  ledger: ["*"],
  auth: ["mode", "cacheSize", "revocationChannel", "tenants", "keys"],
  breakers: ["windowMs", "minRequests", "degradeAt", "openAt", "openForMs", "halfOpenProbes"],
  retries: ["budgetRatio", "minPerSecond"],
  routing: ["seed", "prefixTtlMs", "prefixCapacity", "prefixBlockChars", "sessionTtlMs"],
  limits: ["maxBodyBytes"],
  timeouts: ["drainMs"],
  // Health settings live in each backend actor: a backend added or changed by a reload gets
  // the new ones, the others keep theirs until a restart.
  health: ["probeIntervalMs", "probeTimeoutMs", "probeBackoffMs", "probeBackoffMaxMs", "scrapeIntervalMs", "windowMs", "minSamples", "unhealthyAt", "degradeAt", "unhealthyAfter"]
}

const names = <A>(
  before: ReadonlyMap<string, A>,
  after: ReadonlyMap<string, A>
): NameChanges => ({
  added: [...after.keys()].filter((k) => !before.has(k)),
  removed: [...before.keys()].filter((k) => !after.has(k)),
  changed: [...after.keys()].filter((k) => before.has(k) && !equal(before.get(k), after.get(k)))
})

/** What differs between the running plan and a new one. */
export const diff = (before: Plan, after: Plan): PlanDiff => {
  const live = new Set<string>()
  const needsRestart: Array<string> = []
  const sections = Object.keys(after) as ReadonlyArray<keyof Plan>
  for (const section of sections) {
    if (section === "modelNames") continue
    const a: unknown = before[section]
    const b: unknown = after[section]
    if (equal(a, b)) continue
    const restart = RESTART[section] ?? []
    if (restart.includes("*")) {
      needsRestart.push(fileName(section))
      continue
    }
    const fields = typeof b === "object" && b !== null && !(b instanceof Map) && !Array.isArray(b)
      ? Object.keys(b)
      : []
    for (const field of fields) {
      const x = (a as Record<string, unknown>)[field]
      const y = (b as Record<string, unknown>)[field]
      if (equal(x, y)) continue
      if (restart.includes(field)) needsRestart.push(`${fileName(section)}.${fileName(field)}`)
      else live.add(fileName(section))
    }
    if (fields.length === 0) live.add(fileName(section))
  }
  const backends = (p: Plan) => new Map(p.backends.map((bp) => [bp.id, bp] as const))
  return {
    models: names(before.models, after.models),
    backends: names(backends(before), backends(after)),
    live: [...live],
    needsRestart
  }
}

/** Nothing at all differs. */
export const isEmpty = (d: PlanDiff): boolean =>
  d.live.length === 0 && d.needsRestart.length === 0 &&
  [d.models, d.backends].every((c) => c.added.length + c.removed.length + c.changed.length === 0)
