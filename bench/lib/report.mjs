/**
 * Human output: the figure table, its notes, and the before/after comparison of two
 * results files. Formatting only; it never computes a figure.
 */

export const fmt = (x) => {
  if (x === undefined || x === null) return "-"
  if (typeof x !== "number") return String(x)
  if (Number.isNaN(x)) return "-"
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf"
  const a = Math.abs(x)
  if (a === 0) return "0"
  if (a < 1) return x.toFixed(3)
  if (a < 10) return x.toFixed(2)
  if (a < 100) return x.toFixed(1)
  return x.toFixed(0)
}

const fmtRatio = (x) => (x === undefined || x === null || !Number.isFinite(x) ? "" : `${x.toFixed(2)}×`)

const pad = (s, n) => (s.length >= n ? s : s + " ".repeat(n - s.length))
const lpad = (s, n) => (s.length >= n ? s : " ".repeat(n - s.length) + s)

const ALL_COLS = ["direct", "floor", "nginx", "portkey", "sluice", "sluice-info"]
/** Ratio columns: sluice over each baseline; the reference ones only when that target ran. */
const RATIOS = [["s/floor", "vsFloor"], ["s/direct", "vsDirect"], ["s/nginx", "vsNginx"], ["s/portkey", "vsPortkey"]]

export const table = (figures) => {
  const ran = (c) => figures.some((f) => f.values[c] !== undefined)
  // the reference proxies get a column only when they ran; the usual four always have one
  const COLS = ALL_COLS.filter((c) => !(c === "nginx" || c === "portkey") || ran(c))
  const ratios = RATIOS.filter(([, k]) => k === "vsFloor" || k === "vsDirect" || figures.some((f) => f[k] !== undefined))
  const labelW = Math.max(40, ...figures.map((f) => f.label.length)) + 1
  const head = pad("figure", labelW) + COLS.map((c) => lpad(c, 12)).join("") + ratios.map(([h]) => lpad(h, 10)).join("") + "  " + pad("goal", 14) + "verdict"
  const lines = [head, "-".repeat(head.length)]
  let group
  for (const f of figures) {
    if (f.group !== group) {
      if (group !== undefined) lines.push("")
      group = f.group
    }
    const cells = COLS.map((c) => lpad(fmt(f.values[c]) + (Number.isFinite(f.values[c]) ? f.flags?.[c] ?? "" : ""), 12)).join("")
    const verdict = f.verdict === undefined ? "" : f.verdict === "fail" ? "FAIL" : f.verdict
    lines.push(pad(f.label, labelW) + cells + ratios.map(([, k]) => lpad(fmtRatio(f[k]), 10)).join("") + "  " + pad(f.goal?.text ?? "", 14) + verdict)
  }
  return lines.join("\n")
}

export const notes = (figures) => {
  const out = []
  const flags = new Set(figures.flatMap((f) => Object.values(f.flags ?? {})))
  if (flags.has("!")) out.push("- ! : from runs where that target could not keep up with the offered rate (a queue built up)")
  if (flags.has("^")) out.push("- ^ : the rate ladder ended at the load generator's ceiling or the ladder's top: a lower bound")
  if (flags.has("~")) out.push("- ~ : includes a run that other work on this shared machine disturbed (kept after the repeats/budget ran out)")
  for (const f of figures) for (const n of f.notes ?? []) out.push(`- ${f.label}: ${n}`)
  return out.join("\n")
}

const pct = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(((a - b) / Math.abs(b)) * 100).toFixed(1)}%` : "")

/** Before/after for the gateway (and the floor, to see how much the machine itself moved). */
export const compare = (before, after) => {
  const byId = new Map(before.figures.map((f) => [f.id, f]))
  const labelW = Math.max(40, ...after.figures.map((f) => f.label.length)) + 1
  // the ratio to nginx too when both files have it (it is the same nginx both times)
  const nginx = before.figures.some((f) => f.vsNginx !== undefined) && after.figures.some((f) => f.vsNginx !== undefined)
  const head = pad("figure", labelW) + lpad("floor before", 13) + lpad("after", 10) + lpad("sluice before", 14) + lpad("after", 10) + lpad("change", 9) +
    lpad("s/floor before", 15) + lpad("after", 8) + (nginx ? lpad("s/nginx before", 15) + lpad("after", 8) : "") + "  verdict"
  const lines = [
    `before: ${before.meta.startedAt} ${before.meta.git?.commit ?? ""}${before.meta.git?.dirty ? " (dirty)" : ""}`,
    `after:  ${after.meta.startedAt} ${after.meta.git?.commit ?? ""}${after.meta.git?.dirty ? " (dirty)" : ""}`,
    "",
    head,
    "-".repeat(head.length)
  ]
  for (const f of after.figures) {
    const b = byId.get(f.id)
    if (b === undefined) continue
    const v = (x, t) => x?.values?.[t] ?? (t === "sluice" ? x?.values?.["sluice-info"] : undefined) ?? null
    const verdict = b.verdict === undefined && f.verdict === undefined ? "" : `${b.verdict ?? "-"} → ${f.verdict ?? "-"}`
    lines.push(
      pad(f.label, labelW) +
        lpad(fmt(v(b, "floor")), 13) + lpad(fmt(v(f, "floor")), 10) +
        lpad(fmt(v(b, "sluice")), 14) + lpad(fmt(v(f, "sluice")), 10) + lpad(pct(v(f, "sluice"), v(b, "sluice")), 9) +
        lpad(fmtRatio(b.vsFloor), 15) + lpad(fmtRatio(f.vsFloor), 8) +
        (nginx ? lpad(fmtRatio(b.vsNginx), 15) + lpad(fmtRatio(f.vsNginx), 8) : "") + "  " + verdict
    )
  }
  lines.push("", `The floor${nginx ? " and nginx run" : " runs"} the same code in both files: when ${nginx ? "their" : "its"} figures moved, the machine moved too; read s/floor${nginx ? " and s/nginx" : ""}.`)
  return lines.join("\n")
}
