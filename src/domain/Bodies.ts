/**
 * Reading a whole Node readable (a client's request body, a backend's unary answer) into one
 * buffer, capped, in one callback: the reading fiber resumes once per body, not once per chunk.
 *
 * Owns nothing: the caller owns the stream (and keeps an `error` listener on it for after the
 * read, when an overflow leaves the stream draining or destroyed).
 */
import { Effect } from "effect"
import type { Readable } from "node:stream"

export interface ReadOptions<E> {
  /** Bytes at most; past it the read fails with `tooLarge()` at once. */
  readonly limit: number
  readonly tooLarge: () => E
  /** The stream failed (or, with `closeIsFailure`, closed before its end). */
  readonly failed: (cause: unknown) => E
  /**
   * Past the cap: `destroy` the stream (its connection closes), or `drain` the rest unread (the
   * connection stays usable, e.g. for the error answer on the same HTTP/1.1 connection).
   */
  readonly overflow: "destroy" | "drain"
  /** A `close` before the end is a failure (a request body cut off by its client). */
  readonly closeIsFailure?: boolean
  /** When given, a body not complete after `ms` fails with `onTimeout()` and is destroyed (one timer). */
  readonly within?: { readonly ms: number; readonly onTimeout: () => E } | undefined
}

export const readAll = <E>(body: Readable, options: ReadOptions<E>): Effect.Effect<Buffer, E> =>
  Effect.callback<Buffer, E>((resume) => {
    const parts: Array<Buffer> = []
    let size = 0
    let timer: NodeJS.Timeout | undefined
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > options.limit) {
        cleanup()
        if (options.overflow === "destroy") body.destroy()
        else body.resume()
        resume(Effect.fail(options.tooLarge()))
        return
      }
      parts.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      resume(Effect.succeed(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size)))
    }
    const onFail = (cause: unknown) => {
      cleanup()
      resume(Effect.fail(options.failed(cause)))
    }
    const cleanup = () => {
      if (timer !== undefined) clearTimeout(timer)
      body.off("data", onData)
      body.off("end", onEnd)
      body.off("error", onFail)
      body.off("close", onFail)
    }
    if (body.readableEnded) return resume(Effect.succeed(Buffer.alloc(0)))
    body.on("data", onData)
    body.once("end", onEnd)
    body.once("error", onFail)
    if (options.closeIsFailure === true) body.once("close", onFail)
    const within = options.within
    if (within !== undefined) {
      timer = setTimeout(() => {
        cleanup()
        body.destroy()
        resume(Effect.fail(within.onTimeout()))
      }, Math.max(0, within.ms))
    }
    return Effect.sync(cleanup)
  })
