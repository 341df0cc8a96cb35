/**
 * Making and checking API keys (format in domain/ApiKeys.ts). A new key's id and secret come
 * from the CSPRNG, drawn as base62 characters by rejection sampling (no modulo bias). At rest
 * a key is only its Argon2id hash (@node-rs/argon2: a prebuilt binary from the registry, no
 * install script; default parameters m=19 MiB, t=2, p=1, the OWASP minimum, carried in the
 * PHC string so a hash made with other parameters still verifies). Argon2 runs on libuv's
 * thread pool, never on the event loop, and only when a key is not in the cache (KeyCache.ts):
 * the hot path compares SHA-256 digests in constant time instead. The native module stays
 * outside the bundle (a package next to dist/, because of its `.node` binary). A gateway with
 * keys loads it while it starts (ApiKeys.ts), so a missing or unloadable binary stops the start
 * with its reason; one with no keys loads it on first use. If it cannot be loaded then, a key is
 * not "wrong": `verify` fails with `Argon2Unavailable`, which callers answer as a 503.
 *
 * Owns key material while it is being made or checked. Must never: log, store or return a
 * raw key except the one `generate` hands to the caller that shows it once.
 */
import { Data, Effect } from "effect"
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { ALPHABET, KEY_ID_LENGTH, PREFIX, SECRET_LENGTH } from "../domain/ApiKeys.ts"

/** `n` base62 characters from the CSPRNG: bytes ≥ 248 (= 4 × 62) are dropped, the rest taken mod 62. */
export const randomBase62 = (n: number): string => {
  let out = ""
  while (out.length < n) {
    for (const byte of randomBytes(n * 2)) {
      if (byte < 248) out += ALPHABET[byte % 62]
      if (out.length === n) break
    }
  }
  return out
}

export const newKeyId = (): string => randomBase62(KEY_ID_LENGTH)

/** A new key: `sk-sluice-<id>-<secret>`; the caller shows `key` once and keeps only its hash. */
export const generate = (): { readonly keyId: string; readonly key: string } => {
  const keyId = newKeyId()
  return { keyId, key: `${PREFIX}${keyId}-${randomBase62(SECRET_LENGTH)}` }
}

/** The Argon2 module (@node-rs/argon2) could not be loaded: no key can be checked until it can. */
export class Argon2Unavailable extends Data.TaggedError("Argon2Unavailable")<{ readonly reason: string }> {
  override get message(): string {
    return `the Argon2 module (@node-rs/argon2) could not be loaded, so API keys cannot be checked: ${this.reason}`
  }
}

let argon2: Promise<typeof import("@node-rs/argon2")> | undefined
/** The module, loaded once; a failed load is not remembered (the next call tries again). */
const loadArgon2 = () =>
  (argon2 ??= import("@node-rs/argon2").catch((cause: unknown) => {
    argon2 = undefined
    throw cause
  }))

/** The native module, loaded on first use. */
const argon2Module = Effect.tryPromise({
  try: () => loadArgon2(),
  catch: (cause) => new Argon2Unavailable({ reason: cause instanceof Error ? cause.message : String(cause) })
})

/** Loads the native module now (start-up, when keys exist). */
export const load: Effect.Effect<void, Argon2Unavailable> = Effect.asVoid(argon2Module)

/** The Argon2id hash (PHC string) of a key. */
export const hash = (key: string): Effect.Effect<string> => Effect.promise(() => loadArgon2().then((a) => a.hash(key)))

/**
 * Whether `key` matches the Argon2id hash; a malformed hash is a mismatch. A module that
 * cannot be loaded is `Argon2Unavailable`, never a mismatch: a right key is not refused as
 * wrong (and remembered as wrong) because of the machine.
 */
export const verify = (hashed: string, key: string): Effect.Effect<boolean, Argon2Unavailable> =>
  Effect.flatMap(argon2Module, (a) => Effect.tryPromise(() => a.verify(hashed, key)).pipe(Effect.orElseSucceed(() => false)))

/** The fast digest the cache keeps of a verified key (SHA-256, 32 bytes). */
export const digest = (key: string): Buffer => createHash("sha256").update(key).digest()

/** Constant-time equality of two digests (false when their lengths differ). */
export const sameDigest = (a: Buffer, b: Buffer): boolean => a.length === b.length && timingSafeEqual(a, b)
