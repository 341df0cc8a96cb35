/**
 * Picker `weighted_random`: the first candidate drawn with probability proportional to its
 * score, then the rest by score. See README.md.
 */
import type { PickerFactory } from "../../Contract.ts"
import { byScore } from "../support.ts"

export const weightedRandom: PickerFactory = () => ({
  name: "weighted_random",
  order: (_ctx, scored, random) => {
    if (scored.length <= 1) return byScore(scored)
    let total = 0
    for (const s of scored) total += Math.max(0, s.score)
    let pick = scored[0]!
    if (total <= 0) {
      pick = scored[Math.floor(random() * scored.length)]!
    } else {
      let r = random() * total
      for (const s of scored) {
        if (s.score <= 0) continue
        pick = s
        r -= s.score
        if (r < 0) break
      }
    }
    return [pick.view, ...byScore(scored.filter((s) => s !== pick))]
  }
})
