/**
 * Key events every replica must hear: a key revoked or its expiry changed, a tenant
 * disabled (drop the cached keys), a key created (a replica serving anonymously because no
 * key existed turns keys on). `announce` applies the event here at once, then, when
 * `REDIS_URL` is set, publishes it on `auth.revocation_channel`; every replica subscribed to
 * the channel applies it when it arrives (milliseconds). Pub/sub is fire-and-forget: an event
 * missed while Redis was away is covered by the cache TTL (`auth.cache_ttl`), after which
 * the key's row is read again.
 *
 * Owns the two Redis connections (a subscribed connection can issue no other command),
 * closed with the graph. Must never: carry key material (events name public key ids only).
 */
import { Config, Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import type { Redis } from "ioredis"

export type KeyEvent =
  | { readonly kind: "key"; readonly id: string }
  | { readonly kind: "tenant"; readonly id: string }
  | { readonly kind: "created" }

const Event = Schema.Union([
  Schema.Struct({ kind: Schema.Literal("key"), id: Schema.String }),
  Schema.Struct({ kind: Schema.Literal("tenant"), id: Schema.String }),
  Schema.Struct({ kind: Schema.Literal("created") })
])
const decodeEvent = Schema.decodeUnknownOption(Schema.fromJsonString(Event))

export class Revocations extends Context.Service<Revocations, {
  /** Applies the event on this replica now and sends it to the others. */
  readonly announce: (event: KeyEvent) => Effect.Effect<void>
  /** Adds a listener (called for local and remote events). */
  readonly listen: (listener: (event: KeyEvent) => void) => void
  /** Whether events reach other replicas (Redis configured). */
  readonly shared: boolean
}>()("sluice/auth/Revocations") {
  /** This process only (no Redis). */
  static readonly local: Layer.Layer<Revocations> = Layer.sync(Revocations, () => {
    const listeners: Array<(event: KeyEvent) => void> = []
    return Revocations.of({
      announce: (event) => Effect.sync(() => listeners.forEach((l) => l(event))),
      listen: (listener) => void listeners.push(listener),
      shared: false
    })
  })

  /** Through Redis pub/sub on `channel` when `REDIS_URL` is set, else local. */
  static readonly fromEnvironment = (channel: string): Layer.Layer<Revocations> =>
    Layer.unwrap(Effect.gen(function*() {
      const url = yield* Config.option(Config.Redacted("REDIS_URL")).pipe(Effect.orElseSucceed(() => Option.none()))
      if (Option.isNone(url) || Redacted.value(url.value) === "") return Revocations.local
      return Revocations.redis(Redacted.value(url.value), channel)
    }))

  static readonly redis = (url: string, channel: string): Layer.Layer<Revocations> =>
    Layer.effect(Revocations, Effect.gen(function*() {
      const listeners: Array<(event: KeyEvent) => void> = []
      const apply = (event: KeyEvent) => listeners.forEach((l) => l(event))
      const publisher = yield* connect(url)
      const subscriber = yield* connect(url)
      subscriber.on("message", (from: string, message: string) => {
        if (from !== channel) return
        const event = decodeEvent(message)
        if (Option.isSome(event)) apply(event.value)
      })
      yield* Effect.tryPromise(() => subscriber.subscribe(channel)).pipe(
        Effect.catch((cause) =>
          Effect.logWarning("cannot subscribe to key revocations; revoked keys reach this replica after the cache TTL")
            .pipe(Effect.annotateLogs({ channel, cause: String(cause) }))
        )
      )
      return Revocations.of({
        announce: (event) =>
          Effect.andThen(
            Effect.sync(() => apply(event)),
            Effect.tryPromise(() => publisher.publish(channel, JSON.stringify(event))).pipe(
              Effect.retry({ times: 2 }),
              Effect.catch((cause) =>
                Effect.logWarning("key event not published; other replicas learn it after the cache TTL").pipe(
                  Effect.annotateLogs({ event: event.kind, cause: String(cause) })
                )
              )
            )
          ),
        listen: (listener) => void listeners.push(listener),
        shared: true
      })
    }))
}

/** A Redis connection that is ready before it is used (ioredis is loaded only when Redis is configured). */
const connect = (url: string) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const { Redis } = yield* Effect.promise(() => import("../stores/Ioredis.ts"))
      const redis: Redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000 })
      yield* Effect.tryPromise(() => redis.connect()).pipe(
        Effect.catch((cause) =>
          Effect.logWarning("redis for key events is not reachable yet; retrying in the background").pipe(
            Effect.annotateLogs({ cause: String(cause) })
          )
        )
      )
      return redis
    }),
    (redis) => Effect.promise(() => redis.quit().catch(() => "OK"))
  )
