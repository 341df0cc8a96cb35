/**
 * The closed sets of states the gateway reports about its backends: endpoint health (the
 * backend actor's judgement) and circuit-breaker state (per model and GPU SKU). Used as
 * metric labels, so they must stay small closed unions. Types only: no behaviour.
 */

/**
 * Endpoint health as judged from probes and token throughput: `cold` until the engine has
 * answered (or while it loads a model), `degraded` while it answers but streams badly,
 * `unhealthy` when it fails; recovery goes through half-open probing.
 */
export type Health = "cold" | "healthy" | "degraded" | "unhealthy"

export const HealthStates: ReadonlyArray<Health> = ["cold", "healthy", "degraded", "unhealthy"]

/** A (model, GPU SKU) circuit breaker: closed → degraded → open → half-open. */
export type BreakerState = "closed" | "degraded" | "open" | "half_open"

export const BreakerStates: ReadonlyArray<BreakerState> = ["closed", "degraded", "open", "half_open"]
