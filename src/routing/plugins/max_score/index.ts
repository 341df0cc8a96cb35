/**
 * Picker `max_score`: the highest combined score first, then the rest by score. See README.md.
 */
import type { PickerFactory } from "../../Contract.ts"
import { byScore } from "../support.ts"

export const maxScore: PickerFactory = () => ({
  name: "max_score",
  order: (_ctx, scored) => byScore(scored)
})
