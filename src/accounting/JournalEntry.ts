/**
 * The on-disk format of the ledger journal and of the embedded `usage.jsonl`: one JSON
 * object per line. Owns encoding (hand-written `JSON.stringify` with `t` first, on the
 * request path) and decoding (Schema, never a cast, at start and on replay). It must
 * never do I/O.
 *
 *   {"t":"h","next":N,"acked":A}            segment header: next sequence number, last acked one
 *   {"t":"a","id":…,"rq":…,"tn":…,…}        admitted: what is known when a request is admitted
 *   {"t":"s","sq":N,"r":{record}}           settled: the accounting record, sequence number N
 *   {"t":"k","sq":N}                        acked: every record up to N is in the store
 *
 * A line that does not decode (a torn tail after `kill -9`, a bad sector) is skipped and
 * counted by the reader; decoding never throws.
 */
import { Option, Schema } from "effect"
import { FailureTags } from "../backends/Failure.ts"
import { RequestOutcomes } from "../domain/Outcome.ts"
import type { AccountingRecord, Admission } from "./Accounting.ts"

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Seq = Schema.Int.check(Schema.isGreaterThan(0))
const RequestId = Schema.String.pipe(Schema.brand("RequestId"))
const TenantId = Schema.String.pipe(Schema.brand("TenantId"))
const ModelId = Schema.String.pipe(Schema.brand("ModelId"))
const BackendId = Schema.String.pipe(Schema.brand("BackendId"))

const Record = Schema.Struct({
  recordId: Schema.String,
  requestId: RequestId,
  tenant: TenantId,
  // Optional so that journals and usage files written before these fields existed still replay.
  keyId: Schema.optionalKey(Schema.String),
  model: ModelId,
  backend: Schema.optionalKey(BackendId),
  outcome: Schema.Literals(RequestOutcomes),
  reservedTokens: Count,
  estimatedPromptTokens: Count,
  charged: Schema.Struct({ promptTokens: Count, completionTokens: Count, cachedTokens: Count }),
  // Optional so that records written before prices existed still replay (as cost 0).
  costUsd: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  reported: Schema.Boolean,
  attempts: Schema.Array(Schema.Struct({
    backend: BackendId,
    reason: Schema.Literals(FailureTags),
    message: Schema.String,
    wastedPromptTokens: Count,
    // Optional so that journals written before these fields existed still replay.
    wastedCompletionTokens: Schema.optionalKey(Count),
    afterResponse: Schema.optionalKey(Schema.Boolean)
  })),
  wastedPromptTokens: Count,
  ttftMs: Schema.optionalKey(Schema.Finite),
  durationMs: Schema.Finite,
  settledAtMs: Schema.optionalKey(Schema.Finite)
})

const Header = Schema.Struct({ t: Schema.Literal("h"), next: Seq, acked: Count })
const Admitted = Schema.Struct({
  t: Schema.Literal("a"),
  id: Schema.String,
  rq: RequestId,
  tn: TenantId,
  ki: Schema.optionalKey(Schema.String),
  m: ModelId,
  rt: Count,
  ep: Count,
  at: Schema.Finite
})
const Settled = Schema.Struct({ t: Schema.Literal("s"), sq: Seq, r: Record })
const Acked = Schema.Struct({ t: Schema.Literal("k"), sq: Count })

export const Entry = Schema.Union([Header, Admitted, Settled, Acked])
export type Entry = typeof Entry.Type

const decodeEntry = Schema.decodeUnknownOption(Schema.fromJsonString(Entry))

/** Decodes one journal line (without its newline); none when it is torn or foreign. */
export const decode = (line: string): Option.Option<Entry> => decodeEntry(line)

const SETTLED = /^\{"t":"s","sq":(\d+),/

/** The sequence number of a settled entry, read without parsing it (undefined: another kind, or torn). */
export const settledSeq = (line: string): number | undefined => {
  const m = SETTLED.exec(line)
  return m === null ? undefined : Number(m[1])
}

const decodeUsageLine = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Struct({ seq: Schema.optionalKey(Count) })))

/** The sequence number of a `usage.jsonl` line (0 for lines written before it had one). */
export const usageLineSeq = (line: string): Option.Option<number> => Option.map(decodeUsageLine(line), (l) => l.seq ?? 0)

export const header = (next: number, acked: number): string => `{"t":"h","next":${next},"acked":${acked}}\n`

export const admitted = (a: Admission): string =>
  `{"t":"a","id":${JSON.stringify(a.recordId)},"rq":${JSON.stringify(a.requestId)},"tn":${JSON.stringify(a.tenant)},${
    a.keyId === undefined ? "" : `"ki":${JSON.stringify(a.keyId)},`
  }"m":${
    JSON.stringify(a.model)
  },"rt":${a.reservedTokens},"ep":${a.estimatedPromptTokens},"at":${a.admittedAtMs}}\n`

/** A settled entry; `json` is the record already serialized (`JSON.stringify(record)`). */
export const settled = (seq: number, json: string): string => `{"t":"s","sq":${seq},"r":${json}}\n`

export const acked = (seq: number): string => `{"t":"k","sq":${seq}}\n`

/** One line of the embedded ledger file `usage.jsonl` (`json`: the record serialized). */
export const usageLine = (seq: number, json: string, at: string): string => `{"at":${JSON.stringify(at)},"seq":${seq},${json.slice(1)}\n`

/** The admission of an `a` entry. */
export const admissionOf = (e: typeof Admitted.Type): Admission => ({
  recordId: e.id,
  requestId: e.rq,
  tenant: e.tn,
  keyId: e.ki,
  model: e.m,
  reservedTokens: e.rt,
  estimatedPromptTokens: e.ep,
  admittedAtMs: e.at
})

/** The accounting record of an `s` entry (optional keys back to explicit `undefined`). */
export const recordOf = (r: typeof Record.Type, atMs: number): AccountingRecord => ({
  ...r,
  keyId: r.keyId,
  backend: r.backend,
  costUsd: r.costUsd ?? 0,
  attempts: r.attempts.map((a) => ({
    ...a,
    wastedCompletionTokens: a.wastedCompletionTokens ?? 0,
    afterResponse: a.afterResponse ?? false
  })),
  ttftMs: r.ttftMs,
  settledAtMs: r.settledAtMs ?? atMs
})

/** What a restart knows of a request that was admitted and never settled. */
export const interrupted = (a: Admission): AccountingRecord => ({
  recordId: a.recordId,
  requestId: a.requestId,
  tenant: a.tenant,
  keyId: a.keyId,
  model: a.model,
  backend: undefined,
  outcome: "interrupted",
  reservedTokens: a.reservedTokens,
  estimatedPromptTokens: a.estimatedPromptTokens,
  charged: { promptTokens: 0, completionTokens: 0, cachedTokens: 0 },
  costUsd: 0,
  reported: false,
  attempts: [],
  wastedPromptTokens: 0,
  ttftMs: undefined,
  durationMs: 0,
  // Nothing is known of when it ended: reports count it on the day it was admitted.
  settledAtMs: a.admittedAtMs
})
