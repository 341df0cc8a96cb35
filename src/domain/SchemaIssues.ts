/**
 * Turns a Schema issue into a message that names the path (`messages[0].role: Expected string`).
 * Shared by the config loader (paths in the YAML file) and the public API (the OpenAI `param`).
 */
import { SchemaIssue } from "effect"

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>((acc, key) =>
    typeof key === "number"
      ? `${acc}[${key}]`
      : acc === "" ? String(key) : `${acc}.${String(key)}`, "")

export interface IssueSummary {
  /** Path of the first issue, e.g. `messages[0].role` ("" at the root). */
  readonly path: string
  /** All issues as `path: message`, joined with "; ". */
  readonly message: string
  /** Each issue as `path: message`. */
  readonly issues: ReadonlyArray<string>
}

export const summarize = (issue: SchemaIssue.Issue): IssueSummary => {
  const issues = formatter(issue).issues
  const parts = issues.map((i) => {
    const path = formatPath((i.path ?? []).map((p) => typeof p === "object" ? p.key : p))
    return path === "" ? i.message : `${path}: ${i.message}`
  })
  const first = issues[0]
  return {
    path: first === undefined ? "" : formatPath((first.path ?? []).map((p) => typeof p === "object" ? p.key : p)),
    message: parts.join("; "),
    issues: parts
  }
}
