/**
 * Small helpers the plugins share. Plain functions on the hot path.
 */
import type { BackendView } from "../Contract.ts"

/** `views` itself when every view passes (no allocation), else the passing ones. */
export const keep = (
  views: ReadonlyArray<BackendView>,
  pass: (v: BackendView) => boolean
): ReadonlyArray<BackendView> => {
  for (let i = 0; i < views.length; i++) {
    if (!pass(views[i]!)) return views.filter(pass)
  }
  return views
}

/** Clamps to [0, 1] (NaN → 0), so every score honours the contract whatever its inputs. */
export const unit = (x: number): number => (x > 0 ? (x < 1 ? x : 1) : 0)

/**
 * The minimum of `f` over `all`, memoised on the array's identity: a scorer that normalises
 * against the best candidate computes it once per request, not once per candidate (routing
 * is synchronous, so the last array seen is the current request's).
 */
export const minOver = (f: (v: BackendView) => number) => {
  let lastAll: ReadonlyArray<BackendView> | undefined
  let lastMin = 0
  return (all: ReadonlyArray<BackendView>): number => {
    if (all !== lastAll) {
      let m = Infinity
      for (let i = 0; i < all.length; i++) m = Math.min(m, f(all[i]!))
      lastAll = all
      lastMin = m
    }
    return lastMin
  }
}

/** Candidates by score, highest first; equal scores keep config order (deterministic). */
export const byScore = (scored: ReadonlyArray<{ readonly view: BackendView; readonly score: number }>): Array<BackendView> =>
  [...scored]
    .sort((a, b) => b.score - a.score || a.view.index - b.view.index)
    .map((s) => s.view)
