/**
 * Errors of the public request itself (before admission): the client's fault, each
 * mapped to a 4xx in ErrorResponse.ts.
 */
import { Data } from "effect"

export class InvalidJson extends Data.TaggedError("InvalidJson")<{ readonly message: string }> {}

export class InvalidBody extends Data.TaggedError("InvalidBody")<{
  readonly message: string
  readonly param: string | null
}> {}

export class UnknownModel extends Data.TaggedError("UnknownModel")<{ readonly model: string }> {}

export class BodyTooLarge extends Data.TaggedError("BodyTooLarge")<{ readonly limit: number }> {}

export class UnsupportedOperation extends Data.TaggedError("UnsupportedOperation")<{ readonly message: string }> {}

export class Draining extends Data.TaggedError("Draining")<{}> {}

export type RequestError = InvalidJson | InvalidBody | UnknownModel | BodyTooLarge | UnsupportedOperation | Draining
