/**
 * Prefill/decode disaggregation, as the router plans it: a request whose model is served by
 * a P/D pool (backends with `role: prefill` and `role: decode`) and whose prompt is long
 * enough gets a two-leg route: the decode backends are its candidates and the ranked
 * prefill backends travel with the route, for dispatch to run the prefill leg
 * (dispatch/PrefillLeg.ts). Only engines that speak vLLM's `kv_transfer_params` extension
 * (vLLM, SGLang and the simulator) take part. Pure: no I/O.
 */
import type { Backend } from "../backends/Backend.ts"

/** Backends whose engines speak the `kv_transfer_params` extension. */
export const supportsTransfer = (b: Backend): boolean => b.adapter.kvTransfer === true
