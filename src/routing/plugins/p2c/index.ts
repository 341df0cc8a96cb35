/**
 * Picker `p2c` (power of two choices): two distinct candidates drawn at random, the better
 * one first, then the rest by score. See README.md.
 */
import type { PickerFactory } from "../../Contract.ts"
import { byScore } from "../support.ts"

export const p2c: PickerFactory = () => ({
  name: "p2c",
  order: (_ctx, scored, random) => {
    const n = scored.length
    if (n <= 2) return byScore(scored)
    const i = Math.floor(random() * n)
    let j = Math.floor(random() * (n - 1))
    if (j >= i) j++
    const a = scored[i]!
    const b = scored[j]!
    const first = a.score > b.score || (a.score === b.score && a.view.index < b.view.index) ? a : b
    const rest = byScore(scored.filter((s) => s !== first))
    return [first.view, ...rest]
  }
})
