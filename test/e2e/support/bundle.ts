/**
 * Vitest global setup: builds the production bundle (`npm run bundle` → dist/main.mjs)
 * once per run, so the end-to-end suite starts exactly what `npm start` ships. Skips the
 * build when dist/main.mjs is newer than every source file, package.json and the lock
 * file (a run that touches nothing pays a directory walk, not a build), and when
 * `SLUICE_BUNDLE=skip` says the run starts no bundle.
 */
import { execFileSync } from "node:child_process"
import { existsSync, readdirSync, statSync } from "node:fs"
import { join } from "node:path"

const root = new URL("../../..", import.meta.url).pathname

const newest = (dir: string): number => {
  let max = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    max = Math.max(max, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs)
  }
  return max
}

export const setup = () => {
  // Runs that start no bundle (the mutation check runs only the lifecycle property, in
  // copies of the repository) say so and skip the build.
  if (process.env["SLUICE_BUNDLE"] === "skip") return
  const bundle = join(root, "dist", "main.mjs")
  const sources = Math.max(
    newest(join(root, "src")),
    statSync(join(root, "package.json")).mtimeMs,
    statSync(join(root, "package-lock.json")).mtimeMs
  )
  if (existsSync(bundle) && statSync(bundle).mtimeMs > sources) return
  execFileSync("npm", ["run", "--silent", "bundle"], { cwd: root, stdio: "inherit" })
}
