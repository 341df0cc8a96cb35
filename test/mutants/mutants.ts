/**
 * The planted lifecycle bugs of the mutation check (`npm run test:mutants`), as data: each
 * mutant is one or more exact edits (file, source text to find, replacement) and the bug it
 * plants. The runner applies them to a temporary copy of the repository, never to the
 * working tree, and fails loudly when a `find` text does not occur exactly once: a refactor
 * of the lifecycle must update its mutants rather than silently disable them.
 */

export interface Edit {
  /** Path from the repository root. */
  readonly file: string
  readonly find: string
  readonly replace: string
}

export interface Mutant {
  readonly name: string
  /** The bug, in one line. */
  readonly plants: string
  readonly edits: ReadonlyArray<Edit>
}

export const mutants: ReadonlyArray<Mutant> = [
  {
    name: "skip-settlement-on-abort",
    plants: "a request whose client left is never settled or recorded",
    edits: [{
      file: "src/request/Pipeline.ts",
      find: `          (admission: Admitted, exit: Exit.Exit<unknown, unknown>) =>
            Effect.flatMap(Clock.currentTimeMillis, (nowMs) =>`,
      replace: `          (admission: Admitted, exit: Exit.Exit<unknown, unknown>) =>
            Exit.hasInterrupts(exit) ? Effect.void : Effect.flatMap(Clock.currentTimeMillis, (nowMs) =>`
    }]
  },
  {
    name: "settle-twice",
    plants: "a request that needed a retry settles its reservation twice",
    edits: [{
      file: "src/accounting/Accounting.ts",
      find: `            yield* budget.settle(reservation, { inputTokens: usage.promptTokens, outputTokens: usage.completionTokens, costMicros: micros })
`,
      replace: `            yield* budget.settle(reservation, { inputTokens: usage.promptTokens, outputTokens: usage.completionTokens, costMicros: micros })
            if (attempts.failed.length > 0) {
              yield* budget.settle(reservation, { inputTokens: usage.promptTokens, outputTokens: usage.completionTokens, costMicros: micros })
            }
`
    }]
  },
  {
    name: "leak-slot-on-failure",
    plants: "a model slot is not returned when its attempt fails",
    edits: [
      {
        file: "src/dispatch/Hold.ts",
        find: `import { Clock, Context, Effect, Scope } from "effect"`,
        replace: `import { Cause, Clock, Context, Effect, Scope } from "effect"`
      },
      {
        file: "src/dispatch/Hold.ts",
        find: `Scope.addFinalizerExit(scope, () => Effect.sync(() => held.release()))`,
        replace: `Scope.addFinalizerExit(scope, (exit) =>
    Effect.sync(() => {
      if (exit._tag === "Failure" && !Cause.hasInterrupts(exit.cause)) held.slot = false
      held.release()
    }))`
      }
    ]
  },
  {
    name: "leak-kv-pin",
    plants: "a KV pin stays held when its attempt fails or its client leaves",
    edits: [{
      file: "src/dispatch/Hold.ts",
      find: `Scope.addFinalizerExit(scope, () => Effect.sync(() => held.release()))`,
      replace: `Scope.addFinalizerExit(scope, (exit) =>
    Effect.sync(() => {
      if (exit._tag === "Failure") held.pin = undefined
      held.release()
    }))`
    }]
  },
  {
    name: "charge-estimate",
    plants: "the tenant is charged the admission estimate instead of the reported usage",
    edits: [{
      file: "src/accounting/Accounting.ts",
      find: `    return { usage: tally.reported, reported: true }`,
      replace: `    return {
      usage: { promptTokens: req.estimate.promptTokens, completionTokens: tally.countedCompletionTokens, cachedTokens: 0 },
      reported: true
    }`
    }]
  },
  {
    name: "retry-after-first-token",
    plants: "dispatch commits only at the finish, so a failure after the first token fails over",
    edits: [{
      file: "src/dispatch/Dispatch.ts",
      find: `const isCommitting = (frame: Frame): boolean => frame.events.some((e) => e._tag !== "Error")`,
      replace: `const isCommitting = (frame: Frame): boolean => frame.events.some((e) => e._tag === "Finish")`
    }]
  },
  {
    name: "upstream-left-open-on-abort",
    plants: "the upstream call (stream or unary) keeps running after the client left",
    edits: [{
      file: "src/backends/Upstream.ts",
      find: `    if (!this.done) this.abort(clientGone)`,
      replace: `    // (the unfinished request is left to run)`
    }, {
      // the same bug for the close on the client socket's end (ahead of the interruption)
      file: "src/backends/Upstream.ts",
      find: `held.unhook = onClientGone(clientRequest, held.goneNow)`,
      replace: `held.unhook = undefined`
    }]
  },
  {
    name: "queue-keeps-departed-waiter",
    plants: "a waiter that timed out or left stays in the slot queue (and is later handed a slot)",
    edits: [{
      file: "src/backends/SlotPool.ts",
      find: `                // Interrupted or timed out: leave the queue, or give back a slot handed over meanwhile.
                this.waiters.delete(waiter)`,
      replace: `                // Interrupted or timed out: leave the queue, or give back a slot handed over meanwhile.
                void waiter`
    }]
  },
  {
    name: "no-idle-deadline",
    plants: "a committed stream waits for the total deadline instead of the idle-gap deadline",
    edits: [{
      file: "src/dispatch/Relay.ts",
      find: `    const wait = Math.min(idle, untilTotal)`,
      replace: `    const wait = untilTotal`
    }]
  }
]
