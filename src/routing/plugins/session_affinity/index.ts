/**
 * Scorer `session_affinity`: prefers the backend the request's session is pinned or hinted
 * to (`x-session-id` header or the `user` field). See README.md.
 */
import type { ScorerFactory } from "../../Contract.ts"

export const sessionAffinity: ScorerFactory = () => ({
  name: "session_affinity",
  score: (_ctx, v) => (v.sessionAffine && v.health !== "unhealthy" ? 1 : 0)
})
