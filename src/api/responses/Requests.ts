/**
 * Wire schema of the OpenAI Responses API request (`POST /v1/responses`) and of its input
 * items (also the shape the conversation store keeps, see Conversation.ts).
 *
 * Objects keep the fields they don't know (an open record). Items are a union on `type`
 * (a message may omit it); item and content-part types the gateway does not translate decode
 * as catch-all shapes so the translator can refuse them by name. Validation is for clear
 * 400s naming the field; it never drops data.
 */
import { Schema } from "effect"

const Rest = [Schema.Record(Schema.String, Schema.Unknown)] as const
const open = <F extends Schema.Struct.Fields>(fields: F) => Schema.StructWithRest(Schema.Struct(fields), Rest)
const optional = <S extends Schema.Top>(s: S) => Schema.optionalKey(s)
const nullable = <S extends Schema.Top>(s: S) => Schema.optionalKey(Schema.NullOr(s))
const other = (known: ReadonlySet<string>) =>
  Schema.String.check(Schema.makeFilter((t) => !known.has(t), { expected: "a type other than the ones listed" }))

const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))

const PART_TYPES = new Set(["input_text", "input_image", "output_text", "refusal"])

export const InputText = open({ type: Schema.Literal("input_text"), text: Schema.String })
export const InputImage = open({
  type: Schema.Literal("input_image"),
  image_url: nullable(Schema.String),
  file_id: nullable(Schema.String),
  detail: nullable(Schema.String)
})
export const OutputText = open({ type: Schema.Literal("output_text"), text: Schema.String })
export const Refusal = open({ type: Schema.Literal("refusal"), refusal: Schema.String })
/** input_file and later part types. */
export const OtherPart = open({ type: other(PART_TYPES) })

export const ContentPart = Schema.Union([InputText, InputImage, OutputText, Refusal, OtherPart])
export type ContentPart = typeof ContentPart.Type

const ITEM_TYPES = new Set(["message", "function_call", "function_call_output", "reasoning"])

export const MessageItem = open({
  type: optional(Schema.Literal("message")),
  role: Schema.Literals(["user", "assistant", "system", "developer"]),
  content: Schema.Union([Schema.String, Schema.Array(ContentPart)])
})
export type MessageItem = typeof MessageItem.Type

export const FunctionCallItem = open({
  type: Schema.Literal("function_call"),
  call_id: Schema.String,
  name: Schema.String,
  arguments: Schema.String
})

export const FunctionCallOutputItem = open({
  type: Schema.Literal("function_call_output"),
  call_id: Schema.String,
  output: Schema.Union([Schema.String, Schema.Array(ContentPart)])
})

export const ReasoningItem = open({ type: Schema.Literal("reasoning") })

/** item_reference, web_search_call, file_search_call, computer_call, ... */
export const OtherItem = open({ type: other(ITEM_TYPES) })

export const InputItem = Schema.Union([MessageItem, FunctionCallItem, FunctionCallOutputItem, ReasoningItem, OtherItem])
export type InputItem = typeof InputItem.Type

export const Tool = open({
  type: Schema.String,
  name: optional(Schema.String),
  description: nullable(Schema.String),
  parameters: nullable(Schema.Record(Schema.String, Schema.Unknown)),
  strict: nullable(Schema.Boolean)
})
export type Tool = typeof Tool.Type

export const ToolChoice = Schema.Union([
  Schema.Literals(["none", "auto", "required"]),
  open({ type: Schema.Literal("function"), name: Schema.String }),
  open({ type: other(new Set(["function"])) })
])
export type ToolChoice = typeof ToolChoice.Type

export const TextConfig = open({
  format: optional(Schema.Union([
    open({ type: Schema.Literal("text") }),
    open({ type: Schema.Literal("json_object") }),
    open({
      type: Schema.Literal("json_schema"),
      name: Schema.String,
      schema: Schema.Record(Schema.String, Schema.Unknown),
      description: optional(Schema.String),
      strict: nullable(Schema.Boolean)
    })
  ]))
})

export const Reasoning = open({ effort: nullable(Schema.String), summary: nullable(Schema.String) })

export const ResponsesRequest = open({
  model: Schema.String,
  input: optional(Schema.Union([Schema.String, Schema.Array(InputItem)])),
  instructions: nullable(Schema.String),
  tools: optional(Schema.Array(Tool)),
  tool_choice: optional(ToolChoice),
  max_output_tokens: nullable(PositiveInt),
  temperature: nullable(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 2 }))),
  top_p: nullable(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))),
  stream: nullable(Schema.Boolean),
  store: nullable(Schema.Boolean),
  previous_response_id: nullable(Schema.String),
  metadata: nullable(Schema.Record(Schema.String, Schema.String)),
  user: optional(Schema.String),
  parallel_tool_calls: nullable(Schema.Boolean),
  reasoning: nullable(Reasoning),
  text: optional(TextConfig),
  background: nullable(Schema.Boolean)
})
export type ResponsesRequest = typeof ResponsesRequest.Type
