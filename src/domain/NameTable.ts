/**
 * A table of named entries that is filled while the gateway's graph is built and sealed
 * before the first request: the data structure under every registry (routing plugins,
 * dialects, request and response policies, authenticators). Adding a name twice, or after
 * the table is sealed, throws: both are defects of the embedding program, never of a request.
 * Plain data, no Effect.
 */

export interface NameTable<A> {
  readonly get: (name: string) => A | undefined
  readonly has: (name: string) => boolean
  /** Names in registration order (built-ins first). */
  readonly names: () => ReadonlyArray<string>
  readonly entries: () => ReadonlyArray<readonly [string, A]>
  readonly add: (name: string, entry: A) => void
  readonly seal: () => void
}

/** `what` names the kind of entry in error messages ("routing scorer", "dialect", ...). */
export const make = <A>(what: string, initial: Iterable<readonly [string, A]> = []): NameTable<A> => {
  const table = new Map<string, A>(initial)
  let sealed = false
  return {
    get: (name) => table.get(name),
    has: (name) => table.has(name),
    names: () => [...table.keys()],
    entries: () => [...table.entries()],
    add: (name, entry) => {
      if (sealed) throw new Error(`${what} "${name}" was registered after the gateway started using the registry`)
      if (table.has(name)) throw new Error(`${what} "${name}" is already registered`)
      table.set(name, entry)
    },
    seal: () => {
      sealed = true
    }
  }
}

/** The usual message for a name nobody registered. */
export const unknown = (what: string, name: string, table: { readonly names: () => ReadonlyArray<string> }): string =>
  `unknown ${what} "${name}" (known: ${table.names().join(", ") || "none"})`
