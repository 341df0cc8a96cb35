#!/usr/bin/env node
import * as Cli from "./cli/Main.ts"

Cli.main(process.argv.slice(2))
