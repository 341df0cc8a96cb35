#!/usr/bin/env node
import { enableCompileCache } from "node:module"
import * as Cli from "./cli/Main.ts"

// V8's compiled code of the bundle's modules, kept on disk between runs (Node's own compile
// cache: under os.tmpdir()/node-compile-cache unless NODE_COMPILE_CACHE names a folder, keyed
// by file content and Node version; NODE_DISABLE_COMPILE_CACHE=1 turns it off). A restart
// skips parsing and compiling ~2.4 MB of bundle source, the largest part of start-up CPU
// (bench/README.md, round 2). Called before the command's chunks are imported.
enableCompileCache()

Cli.main(process.argv.slice(2))
