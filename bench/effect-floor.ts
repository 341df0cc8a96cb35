/**
 * The Effect floor: the smallest OpenAI-shaped pass-through on Sluice's own stack (effect/http on
 * @effect/platform-node's NodeHttpServer, an undici Pool upstream), no Sluice code. It shows what
 * the stack costs per request, so that Sluice's figures can be split into "the stack" and "the
 * gateway's own work" (bench/README, "JIT warm-up and the steady-state tail").
 *
 * It runs in place of Sluice through `--bundle`, taking the bench config's first backend URL:
 *
 *   npx esbuild bench/effect-floor.ts --bundle --platform=node --format=esm --target=node24 \
 *     --outfile=bench/results/effect-floor.mjs \
 *     --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
 *   npm run bench -- --only latency --rates 1000 --targets sluice --bundle bench/results/effect-floor.mjs
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { readFileSync } from "node:fs"
import { createServer } from "node:http"
import { Pool } from "undici"

const config = readFileSync(process.argv[process.argv.indexOf("--config") + 1]!, "utf8")
const upstream = /url: (http:\/\/[^\s/]+)/.exec(config)?.[1]
if (upstream === undefined) throw new Error("effect-floor: no backend url in the config")
const pool = new Pool(upstream, { connections: 256 })

const models = JSON.stringify({ object: "list", data: [{ id: "bench-model", object: "model" }] })

const Routes = HttpRouter.use(Effect.fn(function*(router) {
  yield* router.add("GET", "/v1/models", Effect.succeed(HttpServerResponse.text(models, { contentType: "application/json" })))
  yield* router.add(
    "POST",
    "/v1/chat/completions",
    Effect.gen(function*() {
      const req = yield* HttpServerRequest.HttpServerRequest
      const body = yield* Effect.orDie(req.text)
      const text = yield* Effect.promise(async () => {
        const r = await pool.request({ method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body })
        return await r.body.text()
      })
      return HttpServerResponse.text(text, { contentType: "application/json" })
    })
  )
}))

NodeRuntime.runMain(Layer.launch(
  HttpRouter.serve(Routes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port: Number(process.env["PORT"]), host: process.env["HOST"] }))
  )
))
