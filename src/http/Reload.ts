/**
 * Hot reload: decode, validate, diff, apply. Three triggers run the same one-at-a-time
 * reload: `SIGHUP`, a watch on the config file's folder (debounced; an editor that writes a
 * new file and renames it over the old one, or a Kubernetes ConfigMap's symlink swap, is
 * seen as well as an in-place write) and `POST /admin/v1/reload` behind the admin token
 * (`GET` answers the last reload).
 *
 * A reload reads the source again (config/GatewayConfig.ts `load`: schema and plan
 * checks), runs the registries' checks, diffs it against the running plan
 * (config/Diff.ts), moves the fleet (backends/Fleet.ts `apply`: removed backends drain,
 * added ones start) and only then publishes the plan that new requests read. Anything that
 * fails keeps the last good plan and fleet and says why: a log line with every error path,
 * `sluice_config_reloads_total{result}` and the last-reload gauges, and the admin answer.
 * Settings read only at start are answered as `needs_restart`, never silently ignored.
 *
 * Lives above the backends (it moves the fleet) and beside the admin API (one of its
 * triggers). Must never: publish a plan the fleet did not take, or run two reloads at once.
 */
import { Clock, Context, Effect, Layer, Queue, Semaphore } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { watch } from "node:fs"
import { basename, dirname } from "node:path"
import { AdminToken } from "../auth/AdminToken.ts"
import { AdminDisabled, AdminUnauthorized, InvalidAdminRequest } from "../auth/Errors.ts"
import { Fleet, type FleetChanges } from "../backends/Fleet.ts"
import { PlanChecks } from "../config/Checks.ts"
import * as Diff from "../config/Diff.ts"
import { GatewayConfig } from "../config/GatewayConfig.ts"
import * as Metrics from "../observability/Metrics.ts"
import { requestIdOf } from "../request/Pipeline.ts"
import * as ErrorResponse from "./ErrorResponse.ts"

export type ReloadTrigger = "signal" | "watch" | "admin"

export interface ReloadError {
  /** Where in the file (`backends[1].url`), or the file itself when the problem has no path. */
  readonly path: string
  readonly message: string
}

export interface ReloadResult {
  /** applied: the new plan runs; unchanged: nothing differs; invalid / failed: the last good plan stays. */
  readonly result: "applied" | "unchanged" | "invalid" | "failed"
  readonly trigger: ReloadTrigger
  readonly source: string
  readonly at: string
  readonly errors: ReadonlyArray<ReloadError>
  readonly models: Diff.NameChanges | undefined
  readonly backends: FleetChanges | undefined
  /** Sections whose new values new requests see. */
  readonly live: ReadonlyArray<string>
  /** File paths whose new value waits for a restart. */
  readonly needsRestart: ReadonlyArray<string>
}

export interface ReloadOptions {
  /** Reload on SIGHUP (the service binary; an embedder's process signals are its own). */
  readonly signal?: boolean | undefined
  /** Watch the config file (when the config came from a file). */
  readonly watch?: boolean | undefined
  /** Quiet time after the last file event before reloading (default 300 ms). */
  readonly debounceMs?: number | undefined
}

/** `path: message` (the loader's and the checks' form) → structured. */
const splitIssue = (issue: string, source: string): ReloadError => {
  const at = issue.indexOf(": ")
  return at <= 0 ? { path: source, message: issue } : { path: issue.slice(0, at), message: issue.slice(at + 2) }
}

export class Reloader extends Context.Service<Reloader, {
  readonly reload: (trigger: ReloadTrigger) => Effect.Effect<ReloadResult>
  readonly last: () => ReloadResult | undefined
}>()("sluice/http/Reloader") {
  static layer(options: ReloadOptions = {}): Layer.Layer<Reloader, never, GatewayConfig | Fleet | PlanChecks> {
    return Layer.effect(
      Reloader,
      Effect.gen(function*() {
        const config = yield* GatewayConfig
        const fleet = yield* Fleet
        const checks = yield* PlanChecks
        const lock = yield* Semaphore.make(1)
        const source = config.file ?? "config"
        let last: ReloadResult | undefined

        const run = (trigger: ReloadTrigger) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const base = {
              trigger,
              source,
              at: new Date(now).toISOString(),
              errors: [] as ReadonlyArray<ReloadError>,
              models: undefined,
              backends: undefined,
              live: [] as ReadonlyArray<string>,
              needsRestart: [] as ReadonlyArray<string>
            }
            const loaded = yield* Effect.result(config.load)
            if (loaded._tag === "Failure") {
              const e = loaded.failure
              const errors = (e.issues ?? [e.message]).map((i) => splitIssue(i, e.source))
              return { ...base, result: "invalid", errors } satisfies ReloadResult
            }
            const plan = loaded.success
            const issues = checks.run(plan)
            if (issues.length > 0) return { ...base, result: "invalid", errors: issues } satisfies ReloadResult
            const previous = yield* config.current
            const diff = Diff.diff(previous, plan)
            if (Diff.isEmpty(diff)) return { ...base, result: "unchanged" } satisfies ReloadResult
            const moved = yield* Effect.result(fleet.apply(plan))
            if (moved._tag === "Failure") {
              const e = moved.failure
              const at = plan.backends.findIndex((b) => b.id === e.backend)
              return {
                ...base,
                result: "failed",
                errors: [{ path: at < 0 ? source : `backends[${at}]`, message: `backend ${e.backend} could not start: ${e.message}` }],
                needsRestart: diff.needsRestart
              } satisfies ReloadResult
            }
            yield* config.publish(plan)
            return {
              ...base,
              result: "applied",
              models: diff.models,
              backends: moved.success,
              live: diff.live,
              needsRestart: diff.needsRestart
            } satisfies ReloadResult
          })

        const report = (r: ReloadResult) => {
          const all: Record<string, string> = {
            trigger: r.trigger,
            source: r.source,
            result: r.result,
            ...(r.errors.length > 0 ? { errors: r.errors.map((e) => `${e.path}: ${e.message}`).join("; ") } : {}),
            ...(r.backends !== undefined
              ? {
                backends_added: r.backends.added.join(","),
                backends_removed: r.backends.removed.join(","),
                backends_replaced: r.backends.replaced.join(",")
              }
              : {}),
            ...(r.models !== undefined
              ? { models_added: r.models.added.join(","), models_removed: r.models.removed.join(","), models_changed: r.models.changed.join(",") }
              : {}),
            ...(r.live.length > 0 ? { changed: r.live.join(",") } : {}),
            ...(r.needsRestart.length > 0 ? { needs_restart: r.needsRestart.join(",") } : {})
          }
          // Only what happened: no empty `models_removed=` noise.
          const annotations = Object.fromEntries(Object.entries(all).filter(([, v]) => v !== ""))
          const log = r.result === "applied"
            ? Effect.logInfo("config reloaded")
            : r.result === "unchanged"
            ? (r.trigger === "watch" ? Effect.logDebug("config file touched; nothing changed") : Effect.logInfo("config reload: nothing changed"))
            : Effect.logError("config reload rejected; the last good config stays")
          const restart = r.needsRestart.length === 0 ? Effect.void : Effect.logWarning("config reload: some changes need a restart").pipe(
            Effect.annotateLogs({ needs_restart: r.needsRestart.join(",") })
          )
          return Effect.andThen(
            Effect.andThen(log.pipe(Effect.annotateLogs(annotations)), restart),
            Effect.flatMap(Clock.currentTimeMillis, (now) => Metrics.recordReload(r.result, now))
          )
        }

        const reload = (trigger: ReloadTrigger) =>
          lock.withPermit(Effect.gen(function*() {
            const result = yield* run(trigger)
            last = result
            yield* report(result)
            return result
          }))

        // Triggers from outside the runtime (signals, file events) queue a reload; one fiber runs them.
        const pending = yield* Queue.sliding<ReloadTrigger>(1)
        yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(pending), reload)))

        if (options.signal === true) {
          const onHangup = () => void Queue.offerUnsafe(pending, "signal")
          yield* Effect.acquireRelease(
            Effect.sync(() => process.on("SIGHUP", onHangup)),
            () => Effect.sync(() => process.off("SIGHUP", onHangup))
          )
        }

        const file = config.file
        if (options.watch === true && file !== undefined) {
          const name = basename(file)
          const debounceMs = options.debounceMs ?? 300
          let timer: ReturnType<typeof setTimeout> | undefined
          yield* Effect.acquireRelease(
            Effect.sync(() => {
              // The folder, not the file: a rename over the file replaces the inode a file watch holds.
              const watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
                // `..data`: a Kubernetes ConfigMap volume swaps a symlink; null: the platform did not say.
                if (changed !== null && changed !== name && !String(changed).startsWith("..")) return
                if (timer !== undefined) clearTimeout(timer)
                timer = setTimeout(() => void Queue.offerUnsafe(pending, "watch"), debounceMs)
              })
              watcher.on("error", () => watcher.close())
              return watcher
            }),
            (watcher) =>
              Effect.sync(() => {
                if (timer !== undefined) clearTimeout(timer)
                watcher.close()
              })
          )
        }

        return Reloader.of({ reload, last: () => last })
      })
    )
  }
}

const json = (status: number, body: unknown) =>
  HttpServerResponse.text(JSON.stringify(body), { status, contentType: "application/json" })

/** The wire shape of a reload (snake_case, like the rest of the admin API). */
export const resultJson = (r: ReloadResult) => ({
  object: "config.reload",
  result: r.result,
  trigger: r.trigger,
  source: r.source,
  at: r.at,
  errors: r.errors,
  models: r.models ?? null,
  backends: r.backends ?? null,
  changed: r.live,
  needs_restart: r.needsRestart
})

/** `POST /admin/v1/reload` (reload now) and `GET /admin/v1/reload` (the last one), behind the admin token. */
export const routes = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const token = yield* AdminToken
    const reloader = yield* Reloader
    const guarded = (
      handler: Effect.Effect<HttpServerResponse.HttpServerResponse>
    ) =>
    (request: Parameters<typeof requestIdOf>[0]) => {
      const checked = token.check(request.headers["authorization"])
      if (checked === "ok") return handler
      const error = checked === "disabled" ? new AdminDisabled({ path: request.url }) : new AdminUnauthorized()
      return Effect.succeed(ErrorResponse.response(ErrorResponse.toWire(error), requestIdOf(request)))
    }
    yield* router.add("POST", "/admin/v1/reload", (request) =>
      guarded(Effect.gen(function*() {
        // No body is needed; one that is there must be `{}` (nothing in it is read).
        // A body that cannot be read (over the size cap, cut off) is refused like any other.
        const text = yield* Effect.orElseSucceed(request.text, () => "\u0000")
        if (text.trim() !== "" && text.replace(/\s/g, "") !== "{}") {
          const error = new InvalidAdminRequest({ message: "POST /admin/v1/reload takes no body (or {}).", param: null })
          return ErrorResponse.response(ErrorResponse.toWire(error), requestIdOf(request))
        }
        const r = yield* reloader.reload("admin")
        return json(r.result === "applied" || r.result === "unchanged" ? 200 : 422, resultJson(r))
      }))(request))
    yield* router.add("GET", "/admin/v1/reload", (request) =>
      guarded(Effect.sync(() => {
        const r = reloader.last()
        return json(200, r === undefined ? { object: "config.reload", result: "none" } : resultJson(r))
      }))(request))
  })
)
