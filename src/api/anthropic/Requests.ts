/**
 * Wire schema of the Anthropic Messages API request (`POST /v1/messages`) and of its token
 * counter (`POST /v1/messages/count_tokens`: the same body without `max_tokens`).
 *
 * Like every public wire schema here, objects keep the fields they don't know (an open
 * record), so `cache_control`, `citations` and later additions survive decoding. Content
 * blocks are a union on `type`: the blocks the gateway translates are typed in full, any
 * other type decodes as `OtherBlock` so the translator can refuse it by name rather than
 * the schema failing with a list of alternatives. Validation is for clear 400s naming the
 * field; it never drops data.
 */
import { Schema } from "effect"

const Rest = [Schema.Record(Schema.String, Schema.Unknown)] as const
const open = <F extends Schema.Struct.Fields>(fields: F) => Schema.StructWithRest(Schema.Struct(fields), Rest)
const optional = <S extends Schema.Top>(s: S) => Schema.optionalKey(s)
const nullable = <S extends Schema.Top>(s: S) => Schema.optionalKey(Schema.NullOr(s))

const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Unit = Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))

export const TextBlock = open({ type: Schema.Literal("text"), text: Schema.String })
export type TextBlock = typeof TextBlock.Type

export const ImageSource = Schema.Union([
  open({ type: Schema.Literal("base64"), media_type: Schema.String, data: Schema.String }),
  open({ type: Schema.Literal("url"), url: Schema.String }),
  open({ type: Schema.Literal("file"), file_id: Schema.String })
])

export const ImageBlock = open({ type: Schema.Literal("image"), source: ImageSource })
export type ImageBlock = typeof ImageBlock.Type

export const ToolUseBlock = open({
  type: Schema.Literal("tool_use"),
  id: Schema.String,
  name: Schema.String,
  input: Schema.Unknown
})

const KNOWN = new Set(["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"])

/** Any block type the gateway does not translate (document, search_result, server tool blocks, ...). */
export const OtherBlock = open({
  type: Schema.String.check(Schema.makeFilter((t) => !KNOWN.has(t), { expected: "a block type other than the ones listed" }))
})

export const ToolResultBlock = open({
  type: Schema.Literal("tool_result"),
  tool_use_id: Schema.String,
  content: optional(Schema.Union([Schema.String, Schema.Array(Schema.Union([TextBlock, ImageBlock, OtherBlock]))])),
  is_error: optional(Schema.Boolean)
})

export const ThinkingBlock = open({ type: Schema.Literal("thinking"), thinking: Schema.String, signature: optional(Schema.String) })
export const RedactedThinkingBlock = open({ type: Schema.Literal("redacted_thinking"), data: Schema.String })

export const ContentBlock = Schema.Union([
  TextBlock,
  ImageBlock,
  ToolUseBlock,
  ToolResultBlock,
  ThinkingBlock,
  RedactedThinkingBlock,
  OtherBlock
])
export type ContentBlock = typeof ContentBlock.Type

export const Message = open({
  // "system" turns inside `messages` are accepted by the current API (SystemMessageParam).
  role: Schema.Literals(["user", "assistant", "system"]),
  content: Schema.Union([Schema.String, Schema.Array(ContentBlock)])
})
export type Message = typeof Message.Type

export const Tool = open({
  name: Schema.String,
  description: optional(Schema.String),
  input_schema: optional(Schema.Record(Schema.String, Schema.Unknown)),
  /** Absent or "custom" for a client tool; anything else is a server tool (web_search_..., bash_...). */
  type: nullable(Schema.String)
})
export type Tool = typeof Tool.Type

const Parallel = { disable_parallel_tool_use: optional(Schema.Boolean) }
export const ToolChoice = Schema.Union([
  open({ type: Schema.Literal("auto"), ...Parallel }),
  open({ type: Schema.Literal("any"), ...Parallel }),
  open({ type: Schema.Literal("tool"), name: Schema.String, ...Parallel }),
  open({ type: Schema.Literal("none") })
])
export type ToolChoice = typeof ToolChoice.Type

export const Metadata = open({ user_id: nullable(Schema.String) })

/** The fields both endpoints share. */
const Prompt = {
  model: Schema.String,
  messages: Schema.Array(Message).check(Schema.isMinLength(1)),
  system: optional(Schema.Union([Schema.String, Schema.Array(TextBlock)])),
  tools: optional(Schema.Array(Tool)),
  tool_choice: optional(ToolChoice),
  thinking: optional(Schema.Unknown)
}

export const MessagesRequest = open({
  ...Prompt,
  /** Required, as Anthropic requires it: the cap the reservation is made for. */
  max_tokens: PositiveInt,
  stop_sequences: optional(Schema.Array(Schema.String)),
  temperature: optional(Unit),
  top_p: optional(Unit),
  top_k: optional(NonNegativeInt),
  metadata: optional(Metadata),
  stream: optional(Schema.Boolean)
})
export type MessagesRequest = typeof MessagesRequest.Type

export const CountTokensRequest = open(Prompt)
export type CountTokensRequest = typeof CountTokensRequest.Type
