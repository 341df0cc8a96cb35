/**
 * One store test suite, run against both databases: the embedded SQLite file (through the
 * node:sqlite client) and the machine's real PostgreSQL (127.0.0.1:5432, database `test`).
 * The PostgreSQL half fails, never skips, when PostgreSQL is not running. Tables are
 * shared with other runs: every tenant id is unique to this run, nothing is dropped.
 */
import { Effect, Exit, Layer, ManagedRuntime, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { TenantId } from "../../src/domain/Ids.ts"
import * as Database from "../../src/stores/Database.ts"
import { KeyStore } from "../../src/stores/KeyStore.ts"
import * as Migrations from "../../src/stores/Migrations.ts"

const pgUrl = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const dir = mkdtempSync(join(tmpdir(), "sluice-store-"))
const run = `${process.pid}-${Date.now().toString(36)}`

const databases: ReadonlyArray<readonly [string, Database.Location]> = [
  ["embedded SQLite", { kind: "sqlite", file: join(dir, "sluice.db") }],
  ["PostgreSQL", { kind: "postgres", url: Redacted.make(pgUrl) }]
]

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe.each(databases)("key store on %s", (label, location) => {
  const runtime = ManagedRuntime.make(KeyStore.layer.pipe(Layer.provideMerge(Database.layer(location))))
  const go = <A, E>(effect: Effect.Effect<A, E, KeyStore | SqlClient.SqlClient>) => runtime.runPromise(effect)
  const tenant = (name: string) => TenantId(`${name}-${label === "PostgreSQL" ? "pg" : "lite"}-${run}`)

  beforeAll(async () => {
    // Opens and migrates; a missing PostgreSQL fails here.
    await go(Effect.asVoid(KeyStore))
  })
  afterAll(async () => {
    // Only this run's rows: the tables are shared with other runs and never dropped. Best
    // effort and bounded (the rows are unique to this run): a lock some other process holds
    // on the shared database must not hang the suite.
    await go(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`DELETE FROM sluice_keys WHERE tenant_id LIKE ${`%-${run}`}`
      yield* sql`DELETE FROM sluice_tenants WHERE id LIKE ${`%-${run}`}`
    }).pipe(
      Effect.timeout("5 seconds"),
      Effect.catchCause((cause) => Effect.sync(() => console.warn(`key store test: rows of run ${run} left in place`, String(cause))))
    ))
    await runtime.dispose()
  })

  it("creates, reads, lists, renames and disables tenants; a second create is a conflict", async () => {
    const acme = tenant("acme")
    const created = await go(Effect.flatMap(KeyStore, (s) => s.createTenant({ id: acme, name: "ACME" }, 1000)))
    expect(created).toEqual({ id: acme, name: "ACME", createdAtMs: 1000, disabledAtMs: undefined })
    const again = await go(Effect.exit(Effect.flatMap(KeyStore, (s) => s.createTenant({ id: acme, name: "x" }, 2000))))
    expect(Exit.isFailure(again) && JSON.stringify(again.cause)).toContain("TenantExists")
    expect(await go(Effect.flatMap(KeyStore, (s) => s.tenant(acme)))).toEqual(created)
    expect((await go(Effect.flatMap(KeyStore, (s) => s.tenants))).filter((t) => t.id === acme)).toEqual([created])
    const disabled = await go(Effect.flatMap(KeyStore, (s) => s.updateTenant(acme, { name: "ACME Corp", disabled: true }, 3000)))
    expect(disabled).toEqual({ id: acme, name: "ACME Corp", createdAtMs: 1000, disabledAtMs: 3000 })
    const enabled = await go(Effect.flatMap(KeyStore, (s) => s.updateTenant(acme, { disabled: false }, 4000)))
    expect(enabled?.disabledAtMs).toBeUndefined()
    expect(await go(Effect.flatMap(KeyStore, (s) => s.tenant(tenant("nobody"))))).toBeUndefined()
    expect(await go(Effect.flatMap(KeyStore, (s) => s.updateTenant(tenant("nobody"), { disabled: true }, 1)))).toBeUndefined()
  })

  it("stores keys with their models and times, lists them per tenant, revokes once, sets expiry, records use", async () => {
    const t = tenant("keys")
    const id = `k${run}`.slice(0, 12) + (label === "PostgreSQL" ? "p" : "s")
    const key = await go(Effect.gen(function*() {
      const s = yield* KeyStore
      yield* s.createTenant({ id: t, name: "keys" }, 1)
      return yield* s.createKey({ id, tenant: t, name: "ci", hash: "$argon2id$fake", models: ["m-a", "m-b"], expiresAtMs: 1_900_000_000_000 }, 10)
    }))
    expect(key.models).toEqual(["m-a", "m-b"])
    const read = await go(Effect.flatMap(KeyStore, (s) => s.key(id)))
    expect(read).toEqual(key)
    const forAuth = await go(Effect.flatMap(KeyStore, (s) => s.keyForAuth(id)))
    expect(forAuth).toEqual({ ...key, tenantDisabledAtMs: undefined })
    expect(await go(Effect.flatMap(KeyStore, (s) => s.anyKey))).toBe(true)
    expect((await go(Effect.flatMap(KeyStore, (s) => s.keys(t)))).map((k) => k.id)).toEqual([id])
    const revoked = await go(Effect.flatMap(KeyStore, (s) => s.revokeKey(id, 20)))
    expect(revoked?.revokedAtMs).toBe(20)
    const twice = await go(Effect.flatMap(KeyStore, (s) => s.revokeKey(id, 30)))
    expect(twice?.revokedAtMs).toBe(20)
    const expiring = await go(Effect.flatMap(KeyStore, (s) => s.setKeyExpiry(id, 5000, 40)))
    expect(expiring?.expiresAtMs).toBe(5000)
    const never = await go(Effect.flatMap(KeyStore, (s) => s.setKeyExpiry(id, undefined, 50)))
    expect(never?.expiresAtMs).toBeUndefined()
    await go(Effect.flatMap(KeyStore, (s) => s.touchKeys(new Map([[id, 1234.5]]))))
    expect((await go(Effect.flatMap(KeyStore, (s) => s.key(id))))?.lastUsedAtMs).toBe(1234.5)
    await go(Effect.flatMap(KeyStore, (s) => s.updateTenant(t, { disabled: true }, 60)))
    expect((await go(Effect.flatMap(KeyStore, (s) => s.keyForAuth(id))))?.tenantDisabledAtMs).toBe(60)
    expect(await go(Effect.flatMap(KeyStore, (s) => s.revokeKey("no-such-key", 1)))).toBeUndefined()
    expect(await go(Effect.flatMap(KeyStore, (s) => s.key("no-such-key")))).toBeUndefined()
  })

  it("a key without a model list may use every model; a key must belong to an existing tenant", async () => {
    const t = tenant("open")
    const id = `o${run}`.slice(0, 12) + (label === "PostgreSQL" ? "p" : "s")
    const key = await go(Effect.gen(function*() {
      const s = yield* KeyStore
      yield* s.createTenant({ id: t, name: "open" }, 1)
      return yield* s.createKey({ id, tenant: t, name: "all", hash: "h", models: undefined, expiresAtMs: undefined }, 1)
    }))
    expect((await go(Effect.flatMap(KeyStore, (s) => s.key(id))))).toEqual(key)
    const orphan = await go(Effect.exit(Effect.flatMap(KeyStore, (s) =>
      s.createKey({ id: `x${id}`, tenant: tenant("missing"), name: "x", hash: "h", models: undefined, expiresAtMs: undefined }, 1))))
    expect(Exit.isFailure(orphan)).toBe(true)
  })

  it("runs the migrations once: a second start finds the schema in place", async () => {
    // The PostgreSQL table is shared with other checkouts, whose code may know later
    // migrations: count only this code's own, before and after a second start.
    const ours = Object.keys(Migrations.all).map((name) => Number(name.split("_")[0]))
    const recorded = Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ migration_id: number }>`SELECT migration_id FROM sluice_db_migrations`
      return rows.map((r) => Number(r.migration_id)).filter((id) => ours.includes(id)).sort()
    })
    const before = await go(recorded)
    const again = ManagedRuntime.make(KeyStore.layer.pipe(Layer.provideMerge(Database.layer(location))))
    const after = await again.runPromise(recorded)
    await again.dispose()
    expect(before).toEqual(ours)
    expect(after).toEqual(ours)
  })
})
