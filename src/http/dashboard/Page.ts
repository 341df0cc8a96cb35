/**
 * The live dashboard's page: one HTML document with its CSS and script inlined (no build
 * step beyond the gateway's own esbuild bundle, no framework, nothing fetched from elsewhere).
 * The script asks for the admin token once, keeps it in `sessionStorage` (this tab only,
 * gone when it closes; never in a URL, a cookie or a log), and reads the snapshot stream
 * (`/admin/v1/dashboard/events`, Server-Sent Events) with `fetch`, so the token travels in
 * the `Authorization` header. Everything shown is set with `textContent`: a tenant or model
 * name can never become markup.
 *
 * Owns the page's markup, style and script, and their Content-Security-Policy hashes.
 * Must never: embed data, a token or anything from the request in the document.
 */
import { createHash } from "node:crypto"

const style = `
:root { color-scheme: dark; --bg:#0f1216; --card:#171b21; --line:#262c35; --text:#d9dee5; --dim:#8a94a3;
  --ok:#3fb950; --warn:#d29922; --bad:#f85149; --accent:#58a6ff; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
header { display: flex; align-items: center; gap: 12px; padding: 10px 16px; border-bottom: 1px solid var(--line); }
header h1 { font-size: 15px; margin: 0; font-weight: 600; }
#status, #updated { color: var(--dim); font-size: 12px; }
#updated { margin-left: auto; }
#status.live::before { content: "●"; color: var(--ok); margin-right: 4px; }
#status.down::before { content: "●"; color: var(--bad); margin-right: 4px; }
main { padding: 12px 16px; display: grid; gap: 12px; grid-template-columns: repeat(12, 1fr); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; min-width: 0; }
section h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: var(--dim); margin: 0 0 8px; font-weight: 600; }
.kpis { grid-column: span 12; display: grid; grid-template-columns: repeat(6, 1fr); gap: 12px; background: none; border: 0; padding: 0; }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.kpi .label { color: var(--dim); font-size: 11px; text-transform: uppercase; letter-spacing: .05em; }
.kpi .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.kpi .sub { color: var(--dim); font-size: 11px; font-variant-numeric: tabular-nums; }
.wide { grid-column: span 12; } .half { grid-column: span 6; } .third { grid-column: span 4; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 240px; }
th { color: var(--dim); font-weight: 500; font-size: 11px; }
td.num, th.num { text-align: right; }
.pill { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 11px; border: 1px solid currentColor; }
.s-healthy, .s-closed { color: var(--ok); } .s-degraded, .s-half_open, .s-cold { color: var(--warn); } .s-unhealthy, .s-open { color: var(--bad); }
.empty { color: var(--dim); font-style: italic; }
canvas { width: 100%; height: 70px; display: block; }
form { display: flex; gap: 8px; align-items: center; padding: 40px 16px; }
input { background: var(--card); color: var(--text); border: 1px solid var(--line); border-radius: 4px; padding: 6px 8px; width: 320px; }
button { background: var(--accent); color: #fff; border: 0; border-radius: 4px; padding: 6px 12px; cursor: pointer; }
[hidden] { display: none !important; }
`

const script = `
"use strict";
(() => {
  const KEY = "sluice.admin.token";
  const $ = (id) => document.getElementById(id);
  const history = [];
  let controller;

  const fmt = (n, digits = 1) => n === null || n === undefined || Number.isNaN(n) ? "–" :
    n >= 1000 ? (n / 1000).toFixed(1) + "k" : n.toFixed(digits);
  const ms = (n) => n === null || n === undefined ? "–" : n < 10 ? n.toFixed(1) + " ms" : Math.round(n) + " ms";
  const pct = (n) => n === null || n === undefined ? "–" : Math.round(n * 100) + "%";
  const cell = (text, cls) => { const td = document.createElement("td"); td.textContent = String(text); if (cls) td.className = cls; return td; };
  const pill = (state) => { const td = document.createElement("td"); const s = document.createElement("span");
    s.className = "pill s-" + state; s.textContent = state; td.appendChild(s); return td; };
  const fill = (id, rows, empty) => {
    const body = $(id); body.replaceChildren();
    if (rows.length === 0) { const tr = document.createElement("tr"); const td = cell(empty, "empty"); td.colSpan = 9; tr.appendChild(td); body.appendChild(tr); return; }
    for (const cells of rows) { const tr = document.createElement("tr"); for (const c of cells) tr.appendChild(c); body.appendChild(tr); }
  };

  const spark = () => {
    const canvas = $("spark"); const w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = w * devicePixelRatio; canvas.height = h * devicePixelRatio;
    const g = canvas.getContext("2d"); g.scale(devicePixelRatio, devicePixelRatio); g.clearRect(0, 0, w, h);
    if (history.length < 2) return;
    const max = Math.max(1, ...history);
    g.strokeStyle = "#58a6ff"; g.lineWidth = 1.5; g.beginPath();
    history.forEach((v, i) => { const x = (i / (history.length - 1)) * w; const y = h - 4 - (v / max) * (h - 8); i ? g.lineTo(x, y) : g.moveTo(x, y); });
    g.stroke();
    g.fillStyle = "#8a94a3"; g.font = "10px system-ui"; g.fillText("max " + fmt(max) + " tok/s", 4, 12);
  };

  const render = (snap) => {
    const s = snap.summary;
    history.push(s.tokensPerSecond); if (history.length > 120) history.shift();
    $("k-tps").textContent = fmt(s.tokensPerSecond);
    $("k-tps-sub").textContent = "prompt " + fmt(s.promptTokensPerSecond) + "/s";
    $("k-rps").textContent = fmt(s.requestsPerSecond, 2);
    $("k-rps-sub").textContent = s.requests + " in " + Math.round(s.windowSeconds) + " s";
    $("k-inflight").textContent = String(snap.gateway.inFlight);
    $("k-inflight-sub").textContent = snap.gateway.draining ? "draining" : "accepting";
    $("k-ttft").textContent = ms(s.ttftMs.p50);
    $("k-ttft-sub").textContent = "p90 " + ms(s.ttftMs.p90) + " · p99 " + ms(s.ttftMs.p99);
    $("k-itl").textContent = ms(s.interTokenMs.p50);
    $("k-itl-sub").textContent = "p90 " + ms(s.interTokenMs.p90) + " · p99 " + ms(s.interTokenMs.p99);
    const failed = Object.entries(s.outcomes).filter(([k]) => k !== "completed").reduce((n, [, v]) => n + v, 0);
    $("k-err").textContent = s.requests === 0 ? "–" : pct(failed / s.requests);
    $("k-err-sub").textContent = failed + " not completed";
    fill("backends", snap.backends.map((b) => [cell(b.id), pill(b.health), pill(b.breaker), cell(b.inFlight + " / " + b.maxConcurrency, "num"),
      cell(b.queue, "num"), cell(b.engineQueue === null ? "–" : b.engineQueue, "num"), cell(pct(b.kvUsage), "num"),
      cell(fmt(b.tokensPerSecond), "num"), cell(fmt(b.streamTokensPerSecond), "num")]), "no backends");
    fill("errors", s.errors.map((e) => [cell(e.reason), cell(e.count, "num")]), "no errors in the window");
    fill("tenants", s.topTenants.map((t) => [cell(t.tenant), cell(t.requests, "num"), cell(fmt(t.tokens, 0), "num")]), "no requests yet");
    fill("failures", s.recentFailures.map((f) => [cell(f.at.slice(11, 19)), cell(f.outcome), cell(f.status, "num"), cell(f.model),
      cell(f.backend ?? "–"), cell(f.tenant ?? "–"), cell(f.error ?? "–"), cell(f.requestId)]), "no failures");
    $("updated").textContent = "updated " + snap.at.slice(11, 19) + " UTC";
    spark();
  };

  const status = (text, live) => { const el = $("status"); el.textContent = text; el.className = live ? "live" : "down"; };

  const ask = (message) => {
    if (controller) controller.abort();
    sessionStorage.removeItem(KEY);
    $("login").hidden = false; $("board").hidden = true; $("login-msg").textContent = message;
  };

  const connect = async () => {
    const token = sessionStorage.getItem(KEY);
    if (!token) return ask("Admin token:");
    $("login").hidden = true; $("board").hidden = false;
    controller = new AbortController();
    try {
      const res = await fetch("/admin/v1/dashboard/events", { headers: { authorization: "Bearer " + token }, signal: controller.signal, cache: "no-store" });
      if (res.status === 401 || res.status === 404) return ask(res.status === 401 ? "That token was refused. Admin token:" : "The admin API is off (no SLUICE_ADMIN_TOKEN).");
      if (!res.ok || !res.body) throw new Error("HTTP " + res.status);
      status("live", true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\\n\\n")) >= 0) {
          const event = buffer.slice(0, end); buffer = buffer.slice(end + 2);
          const data = event.split("\\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\\n");
          if (data) render(JSON.parse(data));
        }
        if (buffer.length > 1 << 20) throw new Error("event too large");
      }
      status("reconnecting", false);
    } catch (e) {
      if (controller.signal.aborted) return;
      status("disconnected (" + e.message + "), retrying", false);
    }
    setTimeout(connect, 2000);
  };

  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = $("token").value.trim();
    $("token").value = "";
    if (value) { sessionStorage.setItem(KEY, value); connect(); }
  });
  $("logout").addEventListener("click", () => ask("Admin token:"));
  connect();
})();
`

const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><link rel="icon" href="data:,"><title>Sluice dashboard</title><style>${style}</style></head>
<body>
<header><h1>Sluice</h1><span id="status" class="down">connecting</span><span id="updated"></span>
<button id="logout" type="button">Forget token</button></header>
<form id="login" hidden><label id="login-msg" for="token">Admin token:</label>
<input id="token" type="password" autocomplete="off" spellcheck="false"><button type="submit">Open</button></form>
<main id="board">
<section class="kpis">
<div class="kpi"><div class="label">Tokens/s</div><div class="value" id="k-tps">–</div><div class="sub" id="k-tps-sub"></div></div>
<div class="kpi"><div class="label">Requests/s</div><div class="value" id="k-rps">–</div><div class="sub" id="k-rps-sub"></div></div>
<div class="kpi"><div class="label">In flight</div><div class="value" id="k-inflight">–</div><div class="sub" id="k-inflight-sub"></div></div>
<div class="kpi"><div class="label">TTFT p50</div><div class="value" id="k-ttft">–</div><div class="sub" id="k-ttft-sub"></div></div>
<div class="kpi"><div class="label">Inter-token p50</div><div class="value" id="k-itl">–</div><div class="sub" id="k-itl-sub"></div></div>
<div class="kpi"><div class="label">Not completed</div><div class="value" id="k-err">–</div><div class="sub" id="k-err-sub"></div></div>
</section>
<section class="wide"><h2>Output tokens/s (last 2 min)</h2><canvas id="spark"></canvas></section>
<section class="wide"><h2>Backends</h2><table><thead><tr><th>Backend</th><th>Health</th><th>Breaker</th><th class="num">In flight</th>
<th class="num">Gateway queue</th><th class="num">Engine queue</th><th class="num">KV use</th><th class="num">Tokens/s</th><th class="num">Tokens/s per stream</th></tr></thead>
<tbody id="backends"></tbody></table></section>
<section class="half"><h2>Errors by reason (window)</h2><table><thead><tr><th>Reason</th><th class="num">Count</th></tr></thead><tbody id="errors"></tbody></table></section>
<section class="half"><h2>Top tenants (tokens)</h2><table><thead><tr><th>Tenant</th><th class="num">Requests</th><th class="num">Tokens</th></tr></thead><tbody id="tenants"></tbody></table></section>
<section class="wide"><h2>Recent failures (requests, and attempts that failed over)</h2><table><thead><tr><th>Time</th><th>Outcome</th><th class="num">Status</th><th>Model</th><th>Backend</th><th>Tenant</th><th>Error</th><th>Request</th></tr></thead>
<tbody id="failures"></tbody></table></section>
</main>
<script>${script}</script>
</body></html>
`

const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`

export const html = body

/** Only this page's own inline script and style run; it may talk to this origin only. */
export const contentSecurityPolicy = [
  "default-src 'none'",
  `script-src ${hash(script)}`,
  `style-src ${hash(style)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join("; ")
