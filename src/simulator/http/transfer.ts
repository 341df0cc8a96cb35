/**
 * Prefill/decode disaggregation in the simulator: the KV transfer store and its wire.
 *
 * Protocol (vLLM NixlConnector-shaped; the gateway owns the plan, see src/routing/Disaggregation.ts):
 * - prefill leg: a request with `kv_transfer_params: {do_remote_decode: true}` (and `max_tokens: 1`) runs
 *   normally; when it finishes, the instance keeps a transfer entry (prompt tokens, KV bytes =
 *   tokens × the profile's `kvBytesPerToken`) keyed by the response id and answers with
 *   `kv_transfer_params: {transfer_id, remote_url, num_tokens, bytes}`.
 * - decode leg: a request with `kv_transfer_params: {do_remote_prefill: true, transfer_id, remote_url}` makes
 *   the instance pull the entry (`POST {remote_url}/kv_transfer/{transfer_id}`, which removes it), wait
 *   `transfer_ms = bytes ÷ bandwidth` (`kvTransferGBps`, default 25 GB/s ≈ 200 Gb/s RDMA) in simulated time, and
 *   admit the sequence with that many prompt tokens already computed (no prefill cost for them). A failed pull
 *   (unknown id, expired, unreachable) falls back to a local prefill and is counted as a miss.
 *
 * Simplifications (documented in the README): the prefill engine's blocks are not pinned while waiting to be
 * pulled (they sit in its prefix cache like any finished request's), and the decode side allocates the
 * transferred blocks at admission rather than during the transfer. Entries expire after 60 simulated seconds.
 * Must never: block the event loop, or hold a transfer entry past its expiry.
 */
import type { ServerResponse } from "node:http"
import { isRecord, type Json, num, sendJson, type SimContext, str } from "./wire.ts"

const TTL_MS = 60_000

export type { TransferEntry } from "./wire.ts"

export type TransferRequest =
  | { readonly _tag: "RemoteDecode" }
  | { readonly _tag: "RemotePrefill"; readonly transferId: string; readonly remoteUrl: string }

/** Reads a request's `kv_transfer_params`. */
export const transferRequest = (body: Json): TransferRequest | undefined => {
  const p = body["kv_transfer_params"]
  if (!isRecord(p)) return undefined
  if (p["do_remote_decode"] === true) return { _tag: "RemoteDecode" }
  const id = str(p, "transfer_id")
  const url = str(p, "remote_url")
  if (p["do_remote_prefill"] === true && id !== undefined && url !== undefined) {
    return { _tag: "RemotePrefill", transferId: id, remoteUrl: url }
  }
  return undefined
}

/** Keeps a finished prefill's KV for a decode engine to pull; returns the response's `kv_transfer_params`. */
export const offer = (ctx: SimContext, id: string, promptTokens: number, host: string | undefined): Json => {
  const now = ctx.virtualNow()
  for (const [k, e] of ctx.transfers) if (e.expiresAtMs <= now) ctx.transfers.delete(k)
  const bytes = promptTokens * ctx.profile.kvBytesPerToken
  ctx.transfers.set(id, { numTokens: promptTokens, bytes, expiresAtMs: now + TTL_MS })
  ctx.engine.counters.kvTransfersOut++
  return { transfer_id: id, remote_url: `http://${host ?? "127.0.0.1"}`, num_tokens: promptTokens, bytes }
}

/** `POST /kv_transfer/{id}`: hands the entry over (once) to the decode engine that pulls it. */
export const handlePull = (ctx: SimContext, res: ServerResponse, id: string): void => {
  const e = ctx.transfers.get(id)
  ctx.transfers.delete(id)
  if (e === undefined || e.expiresAtMs <= ctx.virtualNow()) {
    sendJson(res, 404, { error: `no KV transfer ${id}` })
    return
  }
  sendJson(res, 200, { num_tokens: e.numTokens, bytes: e.bytes })
}

/**
 * Pulls a transfer and calls `then` with the tokens received (0 on a miss) once the transfer time has passed.
 * Plain callbacks: the wire is not Effect code.
 */
export const pull = (
  ctx: SimContext,
  res: ServerResponse,
  t: Extract<TransferRequest, { _tag: "RemotePrefill" }>,
  then: (tokens: number) => void
): void => {
  const c = ctx.engine.counters
  const miss = () => {
    c.kvTransferMisses++
    then(0)
  }
  const controller = new AbortController()
  res.once("close", () => controller.abort())
  fetch(`${t.remoteUrl}/kv_transfer/${encodeURIComponent(t.transferId)}`, { method: "POST", signal: controller.signal })
    .then(async (r) => {
      if (r.status !== 200) return miss()
      const body: unknown = await r.json()
      const tokens = isRecord(body) ? num(body, "num_tokens") : undefined
      const bytes = isRecord(body) ? num(body, "bytes") : undefined
      if (tokens === undefined || bytes === undefined) return miss()
      c.kvTransfersIn++
      c.kvTransferBytes += bytes
      const transferMs = bytes / (ctx.kvTransferGBps * 1e6)
      setTimeout(() => then(tokens), transferMs / ctx.timeScale)
    })
    .catch(miss)
}
