/**
 * The two ways an engine dies on purpose (the `crash` fault): an uncaught exception thrown from a timer
 * callback (what an engine bug such as `JSON.stringify` running out of string length looks like), and heap
 * exhaustion. Either ends the process that runs the engine; an embedded engine runs in its own worker thread
 * (Supervisor.ts), so there it ends that thread only and its supervisor starts it again.
 *
 * Owns: these two deaths. Must never: run in a thread that hosts anything else (an in-process
 * `Simulator.start` in a test would take the test runner down with it).
 */

/** Kept reachable so the collector cannot free it: the allocation loop must exhaust the heap. */
const hoard: Array<Array<number>> = []

/** Kills the current thread from a timer callback, outside any caller's error handling. */
export const crashEngine = (mode: "throw" | "oom"): void => {
  setTimeout(() => {
    if (mode === "throw") throw new RangeError("Invalid string length (injected engine crash)")
    // 8 MiB of doubles per round; a heap-capped worker is terminated within a few dozen rounds.
    for (;;) hoard.push(new Array<number>(1 << 20).fill(hoard.length + 0.5))
  }, 0)
}
