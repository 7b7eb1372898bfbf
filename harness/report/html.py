"""report.html: one self-contained page (inline CSS and SVG, no URL outside the run directory).

It is opened from disk and uploaded as a CI artifact, so nothing may be fetched: the charts
are inline SVG, the stylesheet is inlined from report.css, links point at run-dir files.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import Collection, Sequence

from harness.report import memory_section, tables
from harness.report.chart_kit import Chart
from harness.report.model import RunReport
from harness.units import format_bytes, plural

#: Shown when a run did not get far enough to draw a chart.
NO_DATA = {
    "memory": "No memory samples were recorded.",
    "rows": "No insert was answered.",
    "latency": "No insert was answered.",
    "memory-vs-rows": "Needs memory samples while rows were being inserted.",
}


def render_html(report: RunReport, charts: Sequence[Chart]) -> str:
    """The whole page as text."""
    by_name = {chart.name: chart for chart in charts}
    title = f"{report.banner} · {report.scenario_name} · Milvus {report.milvus_version or '?'} · milvus-harness"
    body = [
        _header(report),
        _banner(report),
        _cards(report),
        _card("Memory over time", _chart(by_name, "memory"),
              hint="per component; dashed: limit; vertical lines: events; shaded: load running"),
        '<div class="grid2">',
        _card("Rows acked", _chart(by_name, "rows"), hint=_rows_hint(report)),
        _card("Insert latency", _chart(by_name, "latency")),
        _card("Memory against rows acked", _chart(by_name, "memory-vs-rows"),
              hint="while the server was alive"),
        _card("Inserts", _kv(tables.inserts_table(report))),
        "</div>",
        _card("Components", _components(report)),
        _memory_split(report, by_name),
        _card("Recovery after each restart", _recoveries(report),
              hint="from the restart to Ready, or to its death while recovering; shaded on the memory chart")
        if report.recoveries else "",
        '<div class="grid2">',
        _card("Rows", _kv(tables.rows_table(report))),
        _card("Rules", _rules(report)) if report.rules else "",
        _card("Run", _kv(tables.facts(report), code={"Command", "Run id"})),
        _card("Scenario parameters", _params(report)),
        "</div>",
        _card("Events", _events(report)),
        _card("Files", _files(report)),
        f"<footer>Rendered by milvus-harness {_e(str(report.run.get('harness_version') or ''))} "
        f"from <code>{_e(report.path.name)}</code>. Times are UTC; elapsed seconds count from the "
        "start of the command.</footer>",
    ]
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)}</title>\n<style>\n{_css()}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(part for part in body if part)
        + "\n</main>\n</body>\n</html>\n"
    )


def _css() -> str:
    return resources.files("harness.report").joinpath("report.css").read_text()


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _header(report: RunReport) -> str:
    limit = report.memory_limit_bytes
    sub = ", ".join(p for p in (report.target, f"{format_bytes(limit)} limit" if limit else None) if p)
    return (
        '<header class="top"><div><div class="brand">milvus-harness report</div>'
        f"<h1>{_e(report.scenario_name)} on Milvus {_e(report.milvus_version or '?')}"
        + (f' <span class="sub">({_e(sub)})</span>' if sub else "")
        + f'</h1></div><div class="runid">run <code>{_e(report.run_id)}</code>'
        f" · started {_e(tables.fmt_clock(report.started))}</div></header>"
    )


def _banner(report: RunReport) -> str:
    banner = report.banner
    status = [f"status {report.status}"]
    if report.verdict and report.verdict != banner:
        status.append(f"verdict {report.verdict}")
    ttv = report.summary.get("time_to_verdict_s")
    if isinstance(ttv, (int, float)):
        status.append(f"verdict after {tables.fmt_seconds(ttv)}")
    if report.duration_s is not None:
        status.append(f"ran {tables.fmt_seconds(report.duration_s)}")
    reasons = "".join(f"<li>{_e(r)}</li>" for r in report.reasons)
    return (
        f'<section class="banner v-{banner.lower()}" id="verdict" data-verdict="{_e(banner)}">'
        f'<div class="verdict">{_e(banner)}</div><div class="what">'
        f'<div class="status">{_e(" · ".join(status))}</div>'
        + (f'<ul class="reasons">{reasons}</ul>' if reasons else "")
        + "</div></section>"
    )


def _stat(label: str, value: str, note: str = "", tone: str = "") -> str:
    return (f'<div class="stat {tone}"><div class="label">{_e(label)}</div>'
            f'<div class="value">{_e(value)}</div><div class="note">{_e(note)}</div></div>')


def _cards(report: RunReport) -> str:
    rows = report.rows
    components = report.components
    cards = []
    planned = rows.get("planned")
    note = f"of {tables.fmt_count(planned)} planned" if planned else ""
    if rows.get("verified") is not None:
        note += f" · {tables.fmt_count(rows['verified'])} verified"
    lost = rows.get("lost") or 0
    cards.append(_stat("Rows acked", tables.fmt_count(rows.get("acked")), note.strip(" ·"),
                       "bad" if lost else ""))
    peaks = [c for c in components if c.peak_memory_bytes is not None]
    if peaks:
        top = max(peaks, key=lambda c: (c.peak_memory_bytes or 0) / (c.limit_bytes or float("inf")))
        share = (top.peak_memory_bytes or 0) / top.limit_bytes if top.limit_bytes else None
        note = (f"{100 * share:.0f} % of the {format_bytes(top.limit_bytes)} limit" if share is not None
                else "no limit")
        if len(components) > 1:
            note = f"{top.name}, {note}"
        cards.append(_stat("Peak memory", format_bytes(top.peak_memory_bytes), note,
                           "bad" if share is not None and share >= 0.95 else ""))
    oom = sum(c.oom_kills for c in components)
    restarts = sum(c.restarts for c in components)
    stalls = sum(c.stalls for c in components)
    cards.append(_stat("OOM kills", str(oom), f"{plural(restarts, 'restart')} · "
                       f"{plural(stalls, 'stall')}", "bad" if oom or restarts or stalls else "good"))
    inserts = report.inserts
    if isinstance(inserts.get("rows_per_s"), (int, float)):
        p95 = (inserts.get("latency_ms") or {}).get("p95")
        cards.append(_stat("Rows per second", f"{inserts['rows_per_s']:,.0f}",
                           f"inserted; p95 batch {tables.fmt_ms(p95)}" if p95 is not None else "inserted"))
    growth = report.summary.get("memory_growth_mb_per_100k_rows")
    if isinstance(growth, (int, float)):
        cards.append(_stat("Memory growth", f"{growth:,.0f} MB", "per 100k rows acked"))
    ttv = report.summary.get("time_to_verdict_s")
    if isinstance(ttv, (int, float)):
        cards.append(_stat("Time to verdict", tables.fmt_seconds(ttv), tables.phase_times(report.summary)))
    return f'<section class="cards">{"".join(cards)}</section>'


def _rows_hint(report: RunReport) -> str:
    rows = report.rows
    if rows.get("planned") is None:
        return ""
    return f"{tables.fmt_count(rows.get('acked') or 0)} of {tables.fmt_count(rows['planned'])} planned"


def _card(title: str, content: str, hint: str = "") -> str:
    hint_html = f'<span class="hint">{_e(hint)}</span>' if hint else ""
    return f'<section class="card"><h2>{_e(title)}{hint_html}</h2>\n{content}\n</section>'


def _chart(charts: dict[str, Chart], name: str) -> str:
    chart = charts.get(name)
    if chart is None:
        return f'<p class="empty">{_e(NO_DATA[name])}</p>'
    return f'<figure id="chart-{name}">{chart.svg()}</figure>'


def _kv(rows: Sequence[tuple[str, str]], code: Collection[str] = ()) -> str:
    cells = "".join(
        f"<tr><th>{_e(label)}</th><td>{f'<code>{_e(value)}</code>' if label in code else _e(value)}</td></tr>"
        for label, value in rows)
    return f'<table class="kv"><tbody>{cells}</tbody></table>'


def _components(report: RunReport) -> str:
    header, rows = tables.component_table(report)
    if not rows:
        return '<p class="empty">No components were watched.</p>'
    head = "".join(f'<th{" class=num" if i else ""}>{_e(h)}</th>' for i, h in enumerate(header))
    body = []
    for row in rows:
        cells = [f"<td>{_e(row[0])}</td>"]
        for i, value in enumerate(row[1:], start=1):
            tone = " bad" if header[i] in ("Restarts", "OOM kills", "Stalls") and value not in ("0", "-") else ""
            cells.append(f'<td class="num{tone}">{_e(value)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table id="components"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _memory_split(report: RunReport, charts: dict[str, Chart]) -> str:
    """The "where the memory went" card; "" when the run has nothing to show in it."""
    rows = memory_section.split_rows(report)
    header, sites = memory_section.sites_table(memory_section.top_allocation_sites(report))
    if "memory-split" not in charts and not rows and not sites:
        return ""
    parts = [_chart(charts, "memory-split") if "memory-split" in charts else "", _kv(rows) if rows else ""]
    if sites:
        head = "".join(f"<th>{_e(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in sites)
        parts.append(f'<table id="allocation-sites"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
    return _card(memory_section.TITLE, "\n".join(p for p in parts if p),
                 hint="page cache not mapped, resident outside the Go heap, Go heap, write buffer; line: memory")


def _recoveries(report: RunReport) -> str:
    header, rows = tables.recovery_table(report)
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="{"bad" if i == 3 and row[3] != "ready" else ""}">{_e(v)}</td>'
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f'<table id="recoveries"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _rules(report: RunReport) -> str:
    rows = "".join(
        f'<tr><td>{_e(r.name)}</td><td><span class="badge {"passed" if r.passed else "failed"}">'
        f'{"passed" if r.passed else "failed"}</span></td><td>{_e(r.message)}</td></tr>'
        for r in report.rules or [])
    return f"<table><thead><tr><th>Rule</th><th>Result</th><th>Detail</th></tr></thead><tbody>{rows}</tbody></table>"


def _params(report: RunReport) -> str:
    parameters = tables.scenario_parameters(report)
    if not parameters:
        return '<p class="empty">run.json does not list the scenario\'s parameters.</p>'
    description = report.scenario_fields.get("description")
    items = "".join(f"<div><span>{_e(k)}</span><span>{_e(v)}</span></div>" for k, v in parameters)
    return ((f"<p>{_e(str(description))}</p>" if description else "")
            + f'<div class="params">{items}</div>')


def _events(report: RunReport) -> str:
    if not report.events:
        return '<p class="empty">No events were recorded.</p>'
    rows = "".join(
        f'<tr><td class="t">+{report.elapsed(e.t):.1f} s</td><td class="t">{_e(tables.fmt_clock(e.t)[11:19])}</td>'
        f'<td>{_e(e.component)}</td><td><span class="badge {_e(e.type)}">{_e(e.type)}</span></td>'
        f"<td>{_e(e.detail)}</td></tr>"
        for e in report.events)
    return ('<table id="events"><thead><tr><th>Elapsed</th><th>UTC</th><th>Component</th><th>Event</th>'
            f"<th>Detail</th></tr></thead><tbody>{rows}</tbody></table>")


def _files(report: RunReport) -> str:
    links = "".join(
        f'<a href="{_e(name)}{"/" if name == "logs" else ""}"><b>{_e(name)}{"/" if name == "logs" else ""}</b>'
        f"<span>{_e(what)}</span></a>"
        for name, what in tables.run_files(report, exclude="report.html"))
    return f'<div class="files">{links}</div>'
