#!/usr/bin/env node
/**
 * The production bundle (`npm run bundle` → dist/main.mjs, dist/simulator-worker.mjs and
 * dist/chunks/): esbuild, split ESM for Node 24, with two plugins (the CLI takes none).
 *
 * `node:http` is loaded with `require` (through the banner's `createRequire`) instead of an
 * ESM `import`. An ESM import of a built-in makes Node build an ESM facade of it, which reads
 * every export once, lazy getters included, and `node:http`'s `WebSocket`, `MessageEvent` and
 * `CloseEvent` getters load Node's own copy of undici (~37 ms of CPU in a fresh process
 * here) that the gateway never uses: it has its own undici for upstreams, and no WebSocket.
 * Only `node:http`: the same for every built-in (fs, crypto, net have lazy getters too) cost
 * more than it saved, one more mark-compact before the first completion (bench/README.md,
 * "Start-up: node:http through require").
 *
 * The BPE tables of gpt-tokenizer (`bpeRanks/cl100k_base.js`, `o200k_base.js`: a 100k-element array
 * literal each) go into the bundle as one JSON string that the module parses when loaded: V8 builds
 * the array from `JSON.parse` in half the time it takes to evaluate the literal (cl100k, compile
 * cache warm: 16 against 31 ms of CPU), and the tables load on the way to the first completion
 * (src/admission/Tokenizer.ts). The contents are the package's own, checked at build time.
 *
 * Flags (the tests and the bench's profiled build pass them): `--outdir=DIR` (default
 * dist), `--metafile=FILE`, `--sourcemap`. Anything else is an error.
 */
import { writeFileSync } from "node:fs"
import { pathToFileURL } from "node:url"
import * as esbuild from "esbuild"

const THROUGH_REQUIRE = new Set(["http", "node:http"])

/**
 * An `import` of `node:http` becomes a CommonJS module `module.exports = require(name)`;
 * esbuild then reads its names at use (`__toESM` copies them as getters, not values), so no
 * lazy export of the built-in is touched until the code uses it. The shim's own `require`
 * (and every other `require` of a built-in) stays what it is: external.
 */
const httpThroughRequire = {
  name: "http-through-require",
  setup(build) {
    build.onResolve({ filter: /^(node:)?http$/ }, (args) =>
      THROUGH_REQUIRE.has(args.path) && (args.kind === "import-statement" || args.kind === "dynamic-import")
        ? { path: args.path, namespace: "builtin-require" }
        : undefined)
    build.onLoad({ filter: /.*/, namespace: "builtin-require" }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)})`,
      loader: "js"
    }))
  }
}

/** Where gpt-tokenizer keeps its tables: one ES module per encoding, `export default` the array. */
const BPE_RANKS = /[\\/]gpt-tokenizer[\\/]esm[\\/]bpeRanks[\\/][a-z0-9_]+\.js$/

/** A table entry is a token's text, or its bytes when they are not UTF-8. */
const isEntry = (e) => typeof e === "string" || (Array.isArray(e) && e.every((b) => Number.isInteger(b) && b >= 0 && b <= 255))

/**
 * The table module as `export default JSON.parse("…")`, built from the module itself, so the
 * bundle holds exactly the package's table. A hole or any other value (which JSON would turn into
 * `null`) fails the build instead.
 */
const bpeRanksAsJson = {
  name: "bpe-ranks-as-json",
  setup(build) {
    build.onLoad({ filter: BPE_RANKS }, async (args) => {
      const table = (await import(pathToFileURL(args.path).href)).default
      if (!Array.isArray(table) || table.length === 0) throw new Error(`${args.path}: not a table`)
      for (let i = 0; i < table.length; i++) {
        if (!(i in table) || !isEntry(table[i])) throw new Error(`${args.path}: entry ${i} is neither a string nor bytes`)
      }
      const json = JSON.stringify(table)
      const back = JSON.parse(json)
      for (let i = 0; i < table.length; i++) {
        if (String(back[i]) !== String(table[i]) || typeof back[i] !== typeof table[i]) throw new Error(`${args.path}: entry ${i} does not survive JSON`)
      }
      return { contents: `export default JSON.parse(${JSON.stringify(json)})`, loader: "js" }
    })
  }
}

const parseFlags = (argv) => {
  const flags = { outdir: "dist", metafile: undefined, sourcemap: false }
  for (const a of argv) {
    if (a.startsWith("--outdir=")) flags.outdir = a.slice("--outdir=".length)
    else if (a.startsWith("--metafile=")) flags.metafile = a.slice("--metafile=".length)
    else if (a === "--sourcemap") flags.sourcemap = true
    else throw new Error(`scripts/bundle.mjs: unknown flag ${a} (known: --outdir=DIR, --metafile=FILE, --sourcemap)`)
  }
  return flags
}

const flags = parseFlags(process.argv.slice(2))
const result = await esbuild.build({
  entryPoints: { main: "src/main.ts", "simulator-worker": "src/simulator/worker.ts" },
  bundle: true,
  splitting: true,
  platform: "node",
  target: "node24",
  format: "esm",
  outdir: flags.outdir,
  entryNames: "[name]",
  chunkNames: "chunks/[name]-[hash]",
  outExtension: { ".js": ".mjs" },
  external: ["@node-rs/argon2"],
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: "none",
  logLevel: "warning",
  sourcemap: flags.sourcemap,
  metafile: flags.metafile !== undefined,
  // the bundle's `require` (CommonJS dependencies, and the built-ins above) is Node's, made for this file
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  plugins: [httpThroughRequire, bpeRanksAsJson]
})
if (flags.metafile !== undefined) writeFileSync(flags.metafile, JSON.stringify(result.metafile))
