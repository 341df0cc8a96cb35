/**
 * Making and checking API keys (format in domain/ApiKeys.ts). A new key's id and secret come
 * from the CSPRNG, drawn as base62 characters by rejection sampling (no modulo bias). At rest
 * a key is only its Argon2id hash (@node-rs/argon2: a prebuilt binary from the registry, no
 * install script; default parameters m=19 MiB, t=2, p=1, the OWASP minimum, carried in the
 * PHC string so a hash made with other parameters still verifies). Argon2 runs on libuv's
 * thread pool, never on the event loop, and only when a key is not in the cache (KeyCache.ts):
 * the hot path compares SHA-256 digests in constant time instead. The native module is loaded
 * on first use: a gateway with no keys never loads it (it stays outside the bundle, as a
 * package next to dist/, because of its `.node` binary).
 *
 * Owns key material while it is being made or checked. Must never: log, store or return a
 * raw key except the one `generate` hands to the caller that shows it once.
 */
import { Effect } from "effect"
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

let argon2: Promise<typeof import("@node-rs/argon2")> | undefined
const loadArgon2 = () => (argon2 ??= import("@node-rs/argon2"))

/** The Argon2id hash (PHC string) of a key. */
export const hash = (key: string): Effect.Effect<string> => Effect.promise(() => loadArgon2().then((a) => a.hash(key)))

/** Whether `key` matches the Argon2id hash; a malformed hash is a mismatch. */
export const verify = (hashed: string, key: string): Effect.Effect<boolean> =>
  Effect.tryPromise(() => loadArgon2().then((a) => a.verify(hashed, key))).pipe(Effect.orElseSucceed(() => false))

/** The fast digest the cache keeps of a verified key (SHA-256, 32 bytes). */
export const digest = (key: string): Buffer => createHash("sha256").update(key).digest()

/** Constant-time equality of two digests (false when their lengths differ). */
export const sameDigest = (a: Buffer, b: Buffer): boolean => a.length === b.length && timingSafeEqual(a, b)
