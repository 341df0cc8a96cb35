/**
 * The conversation-state hook of `previous_response_id`: what a store keeps for a response,
 * and how a request continues it. A stored response is a plain array of items (JSON values
 * in the Responses input-item shape): the whole conversation it answered — its previous
 * response's items, then its own input — followed by its output items. A request naming it
 * passes that array to `responses_openai.decode`, which puts those items before the new
 * input; a response's `instructions` are not carried over (the API specifies so).
 *
 * Phase 2 owns the store (bounded, in the embedded database or Postgres) and its lookups;
 * this module only defines the value it keeps. Pure functions: no I/O, no clocks.
 */
import type { InputItem } from "./Requests.ts"
import type { Item } from "./Response.ts"

/** The items to store under a response's id once it has completed. */
export const itemsToStore = (
  conversation: ReadonlyArray<InputItem>,
  output: ReadonlyArray<Item>
): ReadonlyArray<unknown> => [...conversation, ...output]
