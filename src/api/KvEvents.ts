/**
 * The KV-cache event wire format: vLLM's `KVEventBatch` (vllm/distributed/kv_events.py) of `BlockStored`,
 * `BlockRemoved` and `AllBlocksCleared`, carried as JSON, one batch per line (NDJSON) on an engine's
 * `GET /kv_events?since=SEQ` stream, each batch with the sequence number vLLM sends in its ZMQ frame.
 *
 * vLLM publishes the same records as msgpack over ZMQ PUB (multipart: topic, 8-byte sequence, payload) with a
 * ROUTER socket for replay from a sequence. Here: the same field names and meaning, JSON instead of msgpack
 * (no native build, readable in a terminal), an HTTP stream instead of PUB (it rides the connection pool and
 * the base URL a backend already has) and `since` instead of the replay socket. The simulator writes it and
 * the backend actor reads it; both import this module. Values and schemas only: no I/O.
 */
import { Schema } from "effect"

/** A block hash: a non-negative integer below 2^53 (domain/KvBlocks.ts `chainHash`). */
const Hash = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))

export const BlockStored = Schema.Struct({
  type: Schema.Literal("BlockStored"),
  block_hashes: Schema.Array(Hash),
  /** The hash of the block before the first of `block_hashes`; null when they start the chain. */
  parent_block_hash: Schema.NullOr(Hash),
  token_ids: Schema.Array(Schema.Number),
  block_size: Schema.Number.check(Schema.isInt(), Schema.isGreaterThan(0)),
  lora_id: Schema.NullOr(Schema.Number),
  medium: Schema.optionalKey(Schema.NullOr(Schema.String))
})
export type BlockStored = typeof BlockStored.Type

export const BlockRemoved = Schema.Struct({
  type: Schema.Literal("BlockRemoved"),
  block_hashes: Schema.Array(Hash),
  medium: Schema.optionalKey(Schema.NullOr(Schema.String))
})
export type BlockRemoved = typeof BlockRemoved.Type

export const AllBlocksCleared = Schema.Struct({ type: Schema.Literal("AllBlocksCleared") })
export type AllBlocksCleared = typeof AllBlocksCleared.Type

export const KvEvent = Schema.Union([BlockStored, BlockRemoved, AllBlocksCleared])
export type KvEvent = typeof KvEvent.Type

/** One batch: what the engine's cache did in one step, in order. `seq` grows by one per batch, from 0. */
export const KvEventBatch = Schema.Struct({
  seq: Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)),
  /** Seconds since the epoch (vLLM's `ts`). */
  ts: Schema.Number,
  events: Schema.Array(KvEvent),
  data_parallel_rank: Schema.optionalKey(Schema.NullOr(Schema.Number))
})
export type KvEventBatch = typeof KvEventBatch.Type

/** Decodes one NDJSON line (hostile input: every failure is `undefined`, never a throw). */
export const decodeLine = Schema.decodeUnknownOption(Schema.fromJsonString(KvEventBatch))

/** The path of the stream, relative to the engine's origin. */
export const KV_EVENTS_PATH = "/kv_events"
