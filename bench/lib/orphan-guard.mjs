/**
 * Preloaded into every process the harness starts (`node --import`): if the harness dies
 * without cleaning up (SIGKILL, OOM), this process notices that its parent changed and
 * stops itself (SIGTERM to self, so a --cpu-prof is still written; exit after 5 s).
 * One unref'd 500 ms timer; it never keeps the process alive and touches nothing else.
 */
const parent = Number(process.env.BENCH_PARENT_PID)
if (Number.isInteger(parent) && parent > 0) {
  setInterval(() => {
    if (process.ppid !== parent) {
      setTimeout(() => process.exit(1), 5000).unref()
      process.kill(process.pid, "SIGTERM")
    }
  }, 500).unref()
}
