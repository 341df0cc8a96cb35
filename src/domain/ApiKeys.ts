/**
 * The shape of a Sluice API key, as values and pure functions: `sk-sluice-<key id>-<secret>`,
 * where the key id (12 base62 characters) is public (it names the key in logs, the admin
 * API and the database) and the secret is 43 base62 characters drawn from the CSPRNG
 * (≥ 256 bits). Base62 keeps the key one double-clickable word with no separator inside its
 * parts; the prefix lets secret scanners recognise a leaked key. Generation and hashing live
 * in auth/ApiKey.ts; this module only says what a key looks like and where a request carries it.
 */

export const PREFIX = "sk-sluice-"
/** The name of the built-in authenticator that verifies these keys (in `auth.authenticators`). */
export const AUTHENTICATOR = "api_key"
export const KEY_ID_LENGTH = 12
export const SECRET_LENGTH = 43
export const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

export const KEY_ID = /^[0-9A-Za-z]{12}$/
const KEY = /^sk-sluice-([0-9A-Za-z]{12})-[0-9A-Za-z]{43}$/

/** The key id of a well-formed key, or undefined. */
export const keyIdOf = (key: string): string | undefined => KEY.exec(key)?.[1]

/** Whether a presented credential claims to be a Sluice key (well-formed or not). */
export const looksLikeKey = (credential: string): boolean => credential.startsWith(PREFIX)

/**
 * The credential a request presents: `Authorization: Bearer <key>` (OpenAI clients) or
 * `x-api-key: <key>` (Anthropic clients); the first when both are sent. Header names in lower case.
 */
export const presented = (headers: Readonly<Record<string, string | undefined>>): string | undefined => {
  const authorization = headers["authorization"]
  if (authorization !== undefined && authorization.length > 7 && authorization.slice(0, 7).toLowerCase() === "bearer ") {
    const token = authorization.slice(7).trim()
    if (token !== "") return token
  }
  const apiKey = headers["x-api-key"]?.trim()
  return apiKey === undefined || apiKey === "" ? undefined : apiKey
}
