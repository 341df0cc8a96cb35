/**
 * The mutation check (`npm run test:mutants`): shows that the lifecycle property can fail.
 *
 * For the unmutated code and for each mutant of mutants.ts, it copies the repository
 * (src/, test/, config/ and the build files; node_modules is a symlink) into a temporary
 * directory, applies the mutant's edits there (never to the working tree), and runs the
 * lifecycle property once per seed in one vitest process (SLUICE_PROPERTY_SEEDS, no
 * shrinking), JOBS variants at a time. A mutant is caught by a seed when the property
 * fails that seed because its oracle found a lifecycle problem; a seed that fails any
 * other way (a mutant that does not load, a crash, a timeout) is an error, never a catch.
 * It prints a table (mutant, caught/seeds, time, first problem) and exits non-zero when a
 * mutant's text is not found exactly once, a variant errs, any mutant is caught by fewer
 * than MIN_CAUGHT seeds, or the unmutated code fails any seed.
 *
 * Options (environment): SLUICE_MUTANT_SEEDS (default 20), SLUICE_PROPERTY_RUNS (runs per
 * seed, default 3), SLUICE_MUTANT_JOBS (default 2), SLUICE_MUTANTS (comma-separated names:
 * only those), SLUICE_MUTANT_TYPECHECK=1 (also type-check each copy), SLUICE_MUTANT_KEEP=1
 * (keep the temporary copies; a failed check always keeps them), SLUICE_MUTANT_SKIP_BASELINE=1
 * (only the mutants, while working on one).
 */
import { spawn, spawnSync } from "node:child_process"
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { type Edit, type Mutant, mutants } from "./mutants.ts"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..")
const SEEDS = Number(process.env["SLUICE_MUTANT_SEEDS"] ?? 20)
const MIN_CAUGHT = Math.ceil(SEEDS * 0.95)
const RUNS = process.env["SLUICE_PROPERTY_RUNS"] ?? "3"
const JOBS = Math.max(1, Number(process.env["SLUICE_MUTANT_JOBS"] ?? 2))
const TYPECHECK = process.env["SLUICE_MUTANT_TYPECHECK"] === "1"
/** What the property's failure says when its oracle found a problem (lifecycle.property.test.ts). */
const ORACLE_FAILURE = /(\d+) lifecycle problem\(s\); first: (.*?)(?:: expected \[.*)?$/m
const ONLY = process.env["SLUICE_MUTANTS"]?.split(",").map((s) => s.trim()).filter((s) => s !== "")
const COPIED = ["src", "test", "config", "package.json", "tsconfig.json", "vitest.config.ts"]
const PROPERTY = "test/properties/lifecycle.property.test.ts"

const occurrences = (text: string, find: string): number => {
  let n = 0
  for (let i = text.indexOf(find); i !== -1; i = text.indexOf(find, i + find.length)) n++
  return n
}

/** Every edit must match exactly once in the working tree, before anything runs. */
const validate = (list: ReadonlyArray<Mutant>): Array<string> =>
  list.flatMap((m) =>
    m.edits.flatMap((e: Edit) => {
      const path = join(ROOT, e.file)
      if (!existsSync(path)) return [`${m.name}: ${e.file} does not exist`]
      const n = occurrences(readFileSync(path, "utf8"), e.find)
      return n === 1 ? [] : [`${m.name}: the text to replace occurs ${n} times in ${e.file} (exactly once expected):\n${e.find}`]
    })
  )

const copyRepository = (dir: string) => {
  for (const entry of COPIED) {
    const from = join(ROOT, entry)
    if (existsSync(from)) cpSync(from, join(dir, entry), { recursive: true })
  }
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir")
}

const apply = (dir: string, edits: ReadonlyArray<Edit>) => {
  for (const e of edits) {
    const path = join(dir, e.file)
    const text = readFileSync(path, "utf8")
    if (occurrences(text, e.find) !== 1) throw new Error(`${e.file}: the text to replace is no longer unique after earlier edits`)
    writeFileSync(path, text.replace(e.find, () => e.replace))
  }
}

interface SeedResult {
  readonly seed: number
  readonly status: "passed" | "caught" | "error"
  readonly message: string
}

const asRecord = (v: unknown): Record<string, unknown> => typeof v === "object" && v !== null ? v as Record<string, unknown> : {}
const asArray = (v: unknown): ReadonlyArray<unknown> => Array.isArray(v) ? v : []

/** Per-seed results from vitest's JSON report. */
const readReport = (path: string): Array<SeedResult> => {
  if (!existsSync(path)) return []
  const report = asRecord(JSON.parse(readFileSync(path, "utf8")))
  return asArray(report["testResults"]).flatMap((file) =>
    asArray(asRecord(file)["assertionResults"]).flatMap((a): Array<SeedResult> => {
      const r = asRecord(a)
      const m = /^seed (\d+)$/.exec(String(r["title"]))
      if (m === null) return []
      const text = asArray(r["failureMessages"]).map(String).join("\n").replace(/\u001b\[[0-9;]*m/g, "")
      if (r["status"] === "passed") return [{ seed: Number(m[1]), status: "passed", message: "" }]
      const oracle = ORACLE_FAILURE.exec(text)
      return oracle === null
        ? [{ seed: Number(m[1]), status: "error", message: text.split("\n").find((l) => l.trim() !== "")?.slice(0, 200) ?? "" }]
        : [{ seed: Number(m[1]), status: "caught", message: oracle[2]!.slice(0, 160) }]
    })
  )
}

interface Outcome {
  readonly name: string
  readonly plants: string
  readonly results: ReadonlyArray<SeedResult>
  readonly seconds: number
  readonly error: string | undefined
}

const exec = (command: string, args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv) =>
  new Promise<{ readonly code: number | null; readonly stderr: string }>((resolve) => {
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString("utf8")).slice(-4000)
    })
    child.on("close", (code) => resolve({ code, stderr }))
  })

const run = async (work: string, name: string, plants: string, edits: ReadonlyArray<Edit>): Promise<Outcome> => {
  const started = performance.now()
  const dir = join(work, name)
  copyRepository(dir)
  apply(dir, edits)
  const done = (results: ReadonlyArray<SeedResult>, error?: string): Outcome => ({
    name,
    plants,
    results,
    seconds: (performance.now() - started) / 1000,
    error
  })
  if (TYPECHECK) {
    const typecheck = spawnSync("npx", ["tsc", "-p", "."], { cwd: dir, encoding: "utf8" })
    if (typecheck.status !== 0) return done([], `does not compile:\n${typecheck.stdout}${typecheck.stderr}`)
  }
  // vitest.config.ts has the JSON reporter write test-results/vitest.json in the copy.
  const report = join(dir, "test-results", "vitest.json")
  const test = await exec("npx", ["vitest", "run", PROPERTY], dir, {
    ...process.env,
    SLUICE_PROPERTY_SEEDS: `1-${SEEDS}`,
    SLUICE_PROPERTY_RUNS: RUNS,
    SLUICE_PROPERTY_END_ON_FAILURE: "1",
    // The property starts no bundle: skip the end-to-end suite's build in the copy.
    SLUICE_BUNDLE: "skip"
  })
  const results = readReport(report)
  if (results.length !== SEEDS) {
    return done(results, `vitest reported ${results.length} of ${SEEDS} seeds (exit ${test.code}):\n${test.stderr.slice(-2000)}`)
  }
  const errors = results.filter((r) => r.status === "error")
  if (errors.length > 0) return done(results, `${errors.length} seed(s) failed without a lifecycle problem: seed ${errors[0]!.seed}: ${errors[0]!.message}`)
  return done(results)
}

const pad = (s: string, n: number) => s.length >= n ? s : s + " ".repeat(n - s.length)

const main = async () => {
  const selected = ONLY === undefined ? mutants : mutants.filter((m) => ONLY.includes(m.name))
  const unknown = (ONLY ?? []).filter((n) => !mutants.some((m) => m.name === n))
  const invalid = [...validate(mutants), ...unknown.map((n) => `no mutant named ${n}`)]
  if (invalid.length > 0) {
    console.error(`mutation check: ${invalid.length} mutant(s) no longer apply:\n\n${invalid.join("\n\n")}`)
    process.exit(2)
  }
  const work = mkdtempSync(join(tmpdir(), "sluice-mutants-"))
  console.log(`mutation check: ${selected.length} mutants × ${SEEDS} seeds × ${RUNS} runs, ${JOBS} at a time, in ${work}`)
  const started = performance.now()
  const baseline = { name: "baseline", plants: "(no mutant: must pass every seed)", edits: [] }
  const variants: ReadonlyArray<{ readonly name: string; readonly plants: string; readonly edits: ReadonlyArray<Edit> }> =
    process.env["SLUICE_MUTANT_SKIP_BASELINE"] === "1" ? selected : [baseline, ...selected]
  const outcomes = new Array<Outcome>(variants.length)
  let next = 0
  const worker = async () => {
    while (next < variants.length) {
      const i = next++
      const v = variants[i]!
      const outcome = await run(work, v.name, v.plants, v.edits)
      outcomes[i] = outcome
      const failed = outcome.results.filter((r) => r.status !== "passed").length
      console.log(`  ${pad(v.name, 30)} ${failed}/${outcome.results.length} seeds failed, ${outcome.seconds.toFixed(1)} s${outcome.error === undefined ? "" : `  ERROR ${outcome.error.split("\n")[0]}`}`)
    }
  }
  await Promise.all(Array.from({ length: Math.min(JOBS, variants.length) }, worker))
  const total = (performance.now() - started) / 1000

  const rows = outcomes.map((o) => {
    const failed = o.results.filter((r) => r.status !== "passed")
    const baseline = o.name === "baseline"
    const ok = o.error === undefined && (baseline ? failed.length === 0 : failed.length >= MIN_CAUGHT)
    return {
      ok,
      cells: [
        o.name,
        baseline ? `${o.results.length - failed.length}/${SEEDS} passed` : `${failed.length}/${SEEDS}`,
        `${o.seconds.toFixed(1)} s`,
        ok ? "ok" : "FAIL",
        o.error?.split("\n")[0] ?? (baseline ? (failed[0] === undefined ? "" : `seed ${failed[0].seed}: ${failed[0].message}`) : failed[0]?.message ?? o.plants)
      ]
    }
  })
  const header = ["mutant", "caught", "time", "", "first failure seen"]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.min(r.cells[i]!.length, i === 4 ? 110 : 40))))
  const line = (cells: ReadonlyArray<string>) => `| ${cells.map((c, i) => pad(c.slice(0, i === 4 ? 110 : 40), widths[i]!)).join(" | ")} |`
  console.log("")
  console.log(line(header))
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`)
  for (const r of rows) console.log(line(r.cells))
  console.log("")
  const bad = rows.filter((r) => !r.ok)
  console.log(`mutation check: ${bad.length === 0 ? "passed" : "FAILED"} in ${total.toFixed(0)} s (a mutant must be caught by at least ${MIN_CAUGHT} of ${SEEDS} seeds; the unmutated code must pass all ${SEEDS})`)
  for (const o of outcomes) if (o.error !== undefined) console.log(`\n${o.name}: ${o.error}`)
  // A failed check keeps its copies (each has test-results/vitest.json) for a closer look.
  if (process.env["SLUICE_MUTANT_KEEP"] === "1" || bad.length > 0) console.log(`copies kept in ${work}`)
  else rmSync(work, { recursive: true, force: true })
  process.exit(bad.length === 0 ? 0 : 1)
}

void main()
