/**
 * What routing can end with: no backend can serve the model right now (none configured,
 * or every one excluded by a filter that does not fail open).
 */
import { Data } from "effect"
import type { ModelId } from "../domain/Ids.ts"

export class NoBackendAvailable extends Data.TaggedError("NoBackendAvailable")<{
  readonly model: ModelId
  readonly message: string
}> {}
