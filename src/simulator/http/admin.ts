/**
 * The admin endpoint of one simulator instance (not part of any engine's API):
 *   GET  /admin/faults          → the current `Faults` record
 *   PUT  /admin/faults          → merge a partial record (unknown keys or bad values → 400), returns the result
 *   POST /admin/crash {"mode"}  → "reset": every connection reset, engine state and prefix cache dropped;
 *                                 "exit": the instance stops serving (standalone: the process exits)
 *   GET  /admin/stats           → `EngineStats`
 * Plus SGLang's `POST /abort_request {"rid", "abort_all"}` (SGLang dialect only).
 *
 * Owns: these routes' parsing and replies. Must never: change faults other than through `FaultState.apply`.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { Result } from "effect"
import { parseFaultsPatch } from "../faults.ts"
import { engineStats } from "../stats.ts"
import { bool, isRecord, readJson, sendJson, type SimContext, str } from "./wire.ts"

const badRequest = (res: ServerResponse, message: string) => sendJson(res, 400, { error: message })

export const statsOf = (ctx: SimContext) =>
  engineStats(ctx.engine, ctx.connections.size, ctx.faults.isLoading(ctx.nowMs()))

export const handleAdmin = (ctx: SimContext, req: IncomingMessage, res: ServerResponse, path: string): boolean => {
  const method = req.method ?? "GET"
  if (path === "/admin/faults" && method === "GET") {
    sendJson(res, 200, ctx.faults.current)
    return true
  }
  if (path === "/admin/faults" && (method === "PUT" || method === "PATCH" || method === "POST")) {
    readJson(req, (m) => badRequest(res, m), (body) => {
      const patch = parseFaultsPatch(body)
      if (Result.isFailure(patch)) return badRequest(res, patch.failure)
      ctx.faults.apply(patch.success, ctx.nowMs())
      sendJson(res, 200, ctx.faults.current)
    })
    return true
  }
  if (path === "/admin/stats" && method === "GET") {
    sendJson(res, 200, statsOf(ctx))
    return true
  }
  if (path === "/admin/crash" && method === "POST") {
    readJson(req, (m) => badRequest(res, m), (body) => {
      const mode = isRecord(body) ? str(body, "mode") ?? "reset" : "reset"
      if (mode !== "reset" && mode !== "exit") return badRequest(res, `mode must be "reset" or "exit"`)
      res.on("finish", () => setImmediate(() => ctx.crash(mode, req.socket)))
      sendJson(res, 202, { crashing: mode })
    })
    return true
  }
  return false
}

/** SGLang's `POST /abort_request`: aborts one request by `rid`, or all with `abort_all`. */
export const handleAbortRequest = (ctx: SimContext, req: IncomingMessage, res: ServerResponse): void =>
  readJson(req, (m) => badRequest(res, m), (body) => {
    if (!isRecord(body)) return badRequest(res, "invalid body")
    const victims = bool(body, "abort_all") === true
      ? ctx.engine.sequences()
      : [ctx.byRid.get(str(body, "rid") ?? "")].filter((s) => s !== undefined)
    for (const seq of victims) {
      if (ctx.engine.abort(seq)) seq.sink.onServerAbort(seq)
    }
    sendJson(res, 200, { aborted: victims.length })
  })
