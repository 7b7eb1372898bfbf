/* The "Milvus memory" tab of `milvus-harness ui`.
 *
 * Locust renders the tab itself (template_args.extended_tabs); this script fills it: it polls
 * ./harness/memory (the harness process's figures, read from the run directory's files) and
 * draws per-component memory against the limit, restart and OOM markers, rows acked, the
 * verdict so far and, once the run is judged, the links to its report. It also shows the
 * target's facts above Locust's start form. Plain DOM and SVG: nothing to build or fetch.
 */
(() => {
  "use strict";

  const TAB_TITLE = "Milvus memory";
  const POLL_MS = 1000;
  const GIB = 2 ** 30;
  const COLORS = ["#1f9ae0", "#3fb950", "#a371f7", "#e3b341", "#f778ba", "#56d4dd"];
  const MARKERS = {
    OOMKilled: { color: "#f85149", label: "OOM kill" },
    MemoryStall: { color: "#d2a8ff", label: "stall" },
    Restarted: { color: "#f0883e", label: "restart" },
    Exited: { color: "#f0883e", label: "exit" },
    LoadStarted: { color: "#8b949e", label: "load start" },
    LoadStopped: { color: "#8b949e", label: "load stop" },
  };

  // Everything received for the run on screen; reset when another run starts.
  const state = { runId: null, samples: {}, data: null, failures: 0 };

  // --- formatting ----------------------------------------------------------------------

  const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const bytes = (n) => {
    if (n === null || n === undefined) return "–";
    if (n >= GIB) return `${(n / GIB).toFixed(2)} GiB`;
    if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(0)} MiB`;
    return `${(n / 1024).toFixed(0)} KiB`;
  };
  const int = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"));
  const clock = (t) => new Date(t * 1000).toLocaleTimeString("en-GB");
  const duration = (s) => (s >= 120 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}` : `${Math.round(s)}s`);

  // --- data --------------------------------------------------------------------------

  function since() {
    // The oldest "last sample" over the components: nothing newer than it was missed, and
    // what comes twice is dropped per component in merge().
    const lasts = Object.values(state.samples).map((list) => (list.length ? list[list.length - 1].t : null));
    if (!lasts.length || lasts.includes(null)) return null;
    return Math.min(...lasts);
  }

  function merge(data) {
    const run = data.run;
    if (!run) {
      state.runId = null;
      state.samples = {};
      return;
    }
    if (run.run_id !== state.runId) {
      state.runId = run.run_id;
      state.samples = {};
    }
    for (const [name, component] of Object.entries(run.components || {})) {
      const list = state.samples[name] || (state.samples[name] = []);
      const last = list.length ? list[list.length - 1].t : -Infinity;
      for (const sample of component.samples || []) {
        if (sample.t > last) list.push(sample);
      }
    }
  }

  async function poll() {
    try {
      const from = state.runId ? since() : null;
      const response = await fetch(`./harness/memory${from !== null ? `?since=${from}` : ""}`,
        { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      merge(data);
      state.data = data;
      state.failures = 0;
    } catch (error) {
      state.failures += 1;
      if (state.data) state.data.unreachable = String(error);
    }
    render();
  }

  // --- placing the panel ----------------------------------------------------------------

  function ourTab() {
    return [...document.querySelectorAll('[role="tab"]')].find((tab) => tab.textContent.trim() === TAB_TITLE);
  }

  function panel() {
    const tab = ourTab();
    let node = document.getElementById("harness-memory-panel");
    if (!tab) {
      if (node) node.remove();
      return null;
    }
    // Locust's tab bar sits in a Box inside the page's Container; the panel goes right below.
    const bar = tab.closest(".MuiTabs-root");
    const box = bar && bar.parentElement;
    if (!box) return null;
    if (!node) {
      node = document.createElement("section");
      node.id = "harness-memory-panel";
      node.className = "mh-panel";
    }
    if (node.previousElementSibling !== box) box.after(node);
    node.hidden = tab.getAttribute("aria-selected") !== "true";
    return node;
  }

  function formFacts() {
    // Above Locust's start form (first start, and the "New" dialog): what the run will hit.
    const headings = [...document.querySelectorAll("h2")].filter((h) => /load test/i.test(h.textContent));
    const data = state.data;
    for (const heading of headings) {
      let box = heading.parentElement.querySelector(".mh-form-facts");
      if (!box) {
        box = document.createElement("div");
        box.className = "mh-form-facts";
        heading.after(box);
      }
      box.innerHTML = data ? factsHtml(data, true) : "";
    }
  }

  function factsHtml(data, withLastRun) {
    const t = data.target || {};
    const s = data.scenario || {};
    let html = `<div class="mh-facts"><b>Milvus ${esc(t.milvus_version || "")}</b> (${esc(t.target)})` +
      (t.address ? ` at ${esc(t.address)}` : "") +
      ` · memory limit <b>${bytes(t.memory_limit_bytes)}</b>` +
      (t.isolation ? ` (${esc(t.isolation)})` : "") +
      ` · scenario <b>${esc(s.name)}</b> · ${esc(data.phase)}` +
      (data.message ? ` · <span class="mh-bad">${esc(data.message)}</span>` : "") + "</div>";
    const last = (data.runs || [])[0];
    if (withLastRun && last) {
      html += `<div class="mh-facts">last run ${esc(last.run_id)}: ${verdictBadge(last.verdict, true)} ` +
        (last.report_urls && last.report_urls.html
          ? `<a href="${esc(last.report_urls.html)}" target="_blank" rel="noopener">report</a>` : "") + "</div>";
    }
    return html;
  }

  // --- drawing ---------------------------------------------------------------------------

  function verdictBadge(value, final) {
    if (!value) return `<span class="mh-badge mh-badge-none">no verdict yet</span>`;
    return `<span class="mh-badge mh-badge-${esc(value)}">${esc(value)}${final ? "" : " so far"}</span>`;
  }

  function niceStep(span, ticks) {
    const raw = span / Math.max(ticks, 1);
    const power = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 2.5, 5, 10].find((m) => m * power >= raw) * power;
  }

  function timeStep(span, ticks) {
    // Whole seconds and minutes on the time axis: 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1 h ...
    const raw = span / Math.max(ticks, 1);
    return [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400].find((s) => s >= raw) || 28800;
  }

  const plural = (n, word) => `${int(n)} ${word}${n === 1 ? "" : "s"}`;

  function chart({ width, height, t0, t1, yMax, yFormat, yStep, series, hlines, events, title }) {
    const pad = { left: 64, right: 16, top: 26, bottom: 28 };
    const w = Math.max(width, 320);
    const x = (t) => pad.left + ((t - t0) / Math.max(t1 - t0, 1e-9)) * (w - pad.left - pad.right);
    const y = (v) => height - pad.bottom - (v / yMax) * (height - pad.top - pad.bottom);
    const parts = [`<svg class="mh-chart" width="${w}" height="${height}" viewBox="0 0 ${w} ${height}" role="img" aria-label="${esc(title)}">`];
    parts.push(`<text class="mh-chart-title" x="${pad.left}" y="16">${esc(title)}</text>`);
    for (let v = 0; v <= yMax * 1.0001; v += yStep) {
      parts.push(`<line class="mh-grid" x1="${pad.left}" x2="${w - pad.right}" y1="${y(v)}" y2="${y(v)}"/>`,
        `<text class="mh-tick" x="${pad.left - 6}" y="${y(v) + 4}" text-anchor="end">${esc(yFormat(v))}</text>`);
    }
    const xStep = timeStep(t1 - t0, Math.floor((w - pad.left) / 90));
    for (let s = 0; t0 + s <= t1 + 1e-9; s += xStep) {
      parts.push(`<line class="mh-grid" x1="${x(t0 + s)}" x2="${x(t0 + s)}" y1="${pad.top}" y2="${height - pad.bottom}"/>`,
        `<text class="mh-tick" x="${x(t0 + s)}" y="${height - pad.bottom + 16}" text-anchor="middle">${duration(s)}</text>`);
    }
    for (const line of hlines) {
      parts.push(`<line class="mh-limit" x1="${pad.left}" x2="${w - pad.right}" y1="${y(line.value)}" y2="${y(line.value)}" stroke="${line.color}"/>`,
        `<text class="mh-limit-label" x="${w - pad.right - 4}" y="${y(line.value) - 5}" text-anchor="end" fill="${line.color}">${esc(line.label)}</text>`);
    }
    for (const event of events) {
      const marker = MARKERS[event.type];
      if (!marker || event.t < t0 || event.t > t1) continue;
      parts.push(`<line class="mh-marker" x1="${x(event.t)}" x2="${x(event.t)}" y1="${pad.top}" y2="${height - pad.bottom}" stroke="${marker.color}"><title>${esc(clock(event.t))} ${esc(event.component)}: ${esc(event.type)} ${esc(event.detail)}</title></line>`,
        `<text class="mh-marker-label" x="${x(event.t) + 3}" y="${pad.top + 10}" fill="${marker.color}">${esc(marker.label)}</text>`);
    }
    series.forEach((line, i) => {
      const points = line.points.filter((p) => p[1] !== null && p[1] !== undefined)
        .map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
      if (points) parts.push(`<polyline class="mh-line" data-series="${esc(line.name)}" points="${points}" stroke="${line.color}"/>`);
      parts.push(`<text class="mh-legend" x="${w - pad.right - (series.length - 1 - i) * 150}" y="16" text-anchor="end" fill="${line.color}">━ ${esc(line.name)}</text>`);
    });
    parts.push("</svg>");
    return parts.join("");
  }

  function render() {
    formFacts();
    const node = panel();
    const data = state.data;
    if (!node || !data) return;
    const run = data.run;
    node.dataset.phase = data.phase || "";
    if (!run) {
      node.dataset.runId = "";
      node.dataset.samples = "0";
      node.innerHTML = `<header class="mh-head"><h3>Milvus memory</h3></header>${factsHtml(data, false)}` +
        `<p class="mh-muted">No run yet: start one with the form.</p>`;
      return;
    }
    if (node.hidden) return; // drawn when the tab is shown
    const components = Object.keys(state.samples).sort();
    const total = components.reduce((n, c) => n + state.samples[c].length, 0);
    node.dataset.runId = run.run_id;
    node.dataset.samples = String(total);
    node.dataset.verdict = run.verdict && run.verdict.value ? run.verdict.value : "";
    node.dataset.final = run.verdict && run.verdict.final ? "true" : "false";

    const width = Math.max(node.clientWidth - 2, 320);
    // Live: a window of at least 30 s that grows with the run; judged: the run's own span.
    const t0 = run.load_started || run.started || firstT() || data.now;
    const t1 = run.load_stopped && run.verdict.final ? Math.max(run.load_stopped, lastT(), t0 + 5) + 1
      : Math.max(data.now, lastT(), t0 + 30);
    function firstT() { return Math.min(...components.map((c) => (state.samples[c][0] || {}).t || Infinity)); }
    function lastT() { return Math.max(0, ...components.map((c) => (state.samples[c].at(-1) || {}).t || 0)); }

    const limits = [...new Set(components.map((c) => run.components[c] && run.components[c].limit_bytes).filter(Boolean))];
    const peak = Math.max(0, ...components.map((c) => (run.components[c] || {}).peak_memory_bytes || 0));
    const yTop = Math.max(peak * 1.1, ...limits.map((l) => l * 1.08), 256 * 2 ** 20);
    const unit = yTop < 2 * GIB ? 2 ** 20 : GIB;  // MiB ticks under 2 GiB, GiB above
    const yStepBytes = niceStep(yTop / unit, 5) * unit;
    const memoryChart = chart({
      width, height: 300, t0, t1, yMax: Math.ceil(yTop / yStepBytes) * yStepBytes, yStep: yStepBytes,
      yFormat: (v) => (unit === GIB ? `${(v / GIB).toFixed(yStepBytes < GIB / 2 ? 2 : 1)} GiB` : `${Math.round(v / 2 ** 20)} MiB`),
      title: "memory per component (the limit dashed; restart and OOM markers)",
      series: components.map((c, i) => ({ name: c, color: COLORS[i % COLORS.length],
        points: state.samples[c].filter((s) => s.t >= t0 - 5).map((s) => [s.t, s.memory_bytes]) })),
      hlines: limits.map((l) => ({ value: l, color: "#f85149", label: `limit ${bytes(l)}` })),
      events: run.events,
    });
    const planned = run.rows.planned || 0;
    const acked = run.acked || [];
    const rowsTop = Math.max(planned, run.rows.acked, 1) * 1.15;  // room for the "planned" label
    const rowsStep = niceStep(rowsTop, 3);
    const rowsChart = chart({
      width, height: 170, t0, t1, yMax: Math.ceil(rowsTop / rowsStep) * rowsStep, yStep: rowsStep,
      yFormat: (v) => (v >= 1e6 ? `${(v / 1e6).toFixed(1)}M` : v >= 1e3 ? `${Math.round(v / 1e3)}k` : `${v}`),
      title: "rows acknowledged",
      series: [{ name: "rows acked", color: "#3fb950", points: [[t0, 0], ...acked] }],
      hlines: planned ? [{ value: planned, color: "#8b949e", label: `planned ${int(planned)}` }] : [],
      events: run.events.filter((e) => e.type === "OOMKilled" || e.type === "Restarted"),
    });

    const verdict = run.verdict || {};
    const cards = [];
    const share = planned ? Math.min(100, (100 * run.rows.acked) / planned) : 0;
    cards.push(`<div class="mh-card"><div class="mh-label">rows acked</div>` +
      `<div class="mh-value" id="harness-rows-acked">${int(run.rows.acked)} <small>/ ${int(planned)}</small></div>` +
      `<div class="mh-bar"><span style="width:${share.toFixed(1)}%"></span></div>` +
      `<div class="mh-sub">${int(run.rows.rows_per_s)} rows/s · ${plural(run.rows.failed_inserts, "failed insert")}</div></div>`);
    for (const name of components) {
      const c = run.components[name] || {};
      const latest = state.samples[name].at(-1) || {};
      const used = latest.memory_bytes;
      const ratio = c.limit_bytes && used ? used / c.limit_bytes : 0;
      cards.push(`<div class="mh-card"><div class="mh-label">${esc(name)} memory</div>` +
        `<div class="mh-value ${ratio > 0.9 ? "mh-bad" : ""}">${bytes(used)} <small>/ ${bytes(c.limit_bytes)}</small></div>` +
        `<div class="mh-bar ${ratio > 0.9 ? "mh-bar-hot" : ""}"><span style="width:${(100 * Math.min(ratio, 1)).toFixed(1)}%"></span></div>` +
        `<div class="mh-sub">peak ${bytes(c.peak_memory_bytes)} · restarts ${int(c.restarts)} · ` +
        `<span class="${c.oom_kills ? "mh-bad" : ""}">OOM kills ${int(c.oom_kills)}</span> · ${int(c.count)} samples</div></div>`);
    }
    const report = run.report_urls || {};
    const links = Object.entries({ html: "report.html", md: "report.md", summary: "summary.json", junit: "junit.xml", locust: "locust.html" })
      .filter(([key]) => report[key])
      .map(([key, name]) => `<a ${key === "html" ? 'id="harness-report-link" ' : ""}href="${esc(report[key])}" target="_blank" rel="noopener">${name}</a>`);
    const shown = run.events.filter((e) => e.type !== "Ready" || e.t >= (run.started || 0)).slice(-12);
    const earlier = (data.runs || []).filter((r) => r.run_id !== run.run_id).slice(0, 5);
    node.innerHTML = [
      `<header class="mh-head"><h3>Milvus memory <span class="mh-phase">${esc(data.phase)}</span></h3>`,
      `<div id="harness-verdict">${verdictBadge(verdict.value, verdict.final)}</div></header>`,
      factsHtml(data, false),
      `<div class="mh-facts mh-muted">run <b>${esc(run.run_id)}</b> · ${int(run.scenario.total_rows)} rows in ${int(run.scenario.batch_rows)}-row batches · ` +
        `${plural(run.scenario.shards, "shard")} · ${plural(run.scenario.partitions, "partition")} · ${plural(run.scenario.users, "user")}` +
        (run.stop_reason ? ` · load stopped: ${esc(run.stop_reason)}` : "") + "</div>",
      data.unreachable ? `<p class="mh-bad">the harness does not answer (${esc(data.unreachable)})</p>` : "",
      (verdict.reasons || []).length ? `<ul class="mh-reasons">${verdict.reasons.map((r) => `<li>${esc(r)}</li>`).join("")}</ul>` : "",
      links.length ? `<div class="mh-report" id="harness-report">Report: ${links.join(" · ")} <span class="mh-muted">in ${esc(run.run_dir)}</span></div>`
        : `<div class="mh-report mh-muted">The report is written when the run stops.</div>`,
      `<div class="mh-cards">${cards.join("")}</div>`,
      memoryChart,
      rowsChart,
      shown.length ? `<table class="mh-events"><thead><tr><th>time</th><th>component</th><th>event</th><th>detail</th></tr></thead><tbody>` +
        shown.map((e) => `<tr class="mh-event-${esc(e.type)}"><td>${clock(e.t)}</td><td>${esc(e.component)}</td><td>${esc(e.type)}</td><td>${esc(e.detail)}</td></tr>`).join("") +
        "</tbody></table>" : "",
      earlier.length ? `<div class="mh-runs">Earlier runs: ${earlier.map((r) => `${esc(r.run_id)} ${verdictBadge(r.verdict, true)}` +
        (r.report_urls && r.report_urls.html ? ` <a href="${esc(r.report_urls.html)}" target="_blank" rel="noopener">report</a>` : "")).join(" · ")}</div>` : "",
    ].join("");
  }

  // React replaces nodes when tabs change; look again often, fetch once a second.
  setInterval(poll, POLL_MS);
  setInterval(() => { if (state.data) { const n = panel(); if (n && !n.hidden && !n.firstChild) render(); formFacts(); } }, 250);
  document.addEventListener("click", () => setTimeout(render, 50), true);
  poll();
})();
