import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import * as Gateway from "./Gateway.ts"

Layer.launch(Gateway.main(process.argv.slice(2))).pipe(NodeRuntime.runMain)
