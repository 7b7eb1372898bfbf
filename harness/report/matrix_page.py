"""The pages of a matrix: reports/matrix-<id>/index.html and matrix.md, from files alone.

`render_matrix(matrix_dir)` reads the matrix's summary.json (written by harness.compare.matrix) and,
for the charts, each cell's samples.jsonl and acks.jsonl through its relative run_dir link.
Like render_report it only reads files, so a matrix page can be rendered again anywhere the
report dir is copied whole. index.html is self-contained (inline CSS and SVG); matrix.md
links PNG copies of the charts, which every Markdown viewer shows.

The charts are matrix_charts.py's. SVG ids tests and users can look for: `cell-<n>` (a cell's line in the memory chart, n its
position in summary.json "cells"), `oom-<n>` (its first OOM kill), `limit` (a limit shared
by every cell), `growth-<axis>-<m>` (one series of a growth chart).
"""

from __future__ import annotations

import html
import math
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.load import ramp
from harness.profiles.capture import describe_schedule
from harness.report.chart_kit import Chart
from harness.report.matrix_charts import MatrixCell, build_matrix_charts
from harness.report.model import RunReport, load_run
from harness.rundir import read_json, write_text
from harness.units import format_bytes

__all__ = ["render_matrix"]

MEMORY_PNG = "memory-vs-rows.png"
VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE")

_EXTRA_CSS = """
.v-PASS { color: var(--pass); font-weight: 700; }
.v-FAIL { color: var(--fail); font-weight: 700; }
.v-INCONCLUSIVE { color: var(--amber); font-weight: 700; }
.v-PENDING { color: var(--muted); }
.banner.v-running { background: #f3f4f6; border-color: #d1d5db; border-left-color: var(--grey); }
.banner.v-running .verdict { background: var(--grey); }
table.grid td, table.grid th { text-align: center; }
table.grid th:first-child, table.grid td:first-child { text-align: left; }
table.grid td a { display: block; color: inherit; }
table.grid td .fig { display: block; color: var(--muted); font-size: 12px; font-weight: 400; }
td.reasons { font-size: 12.5px; color: #374151; max-width: 34em; }
"""


def render_matrix(matrix_dir: Path, *, images: bool = True) -> list[Path]:
    """Write index.html, matrix.md and the charts' PNGs into matrix_dir; return the pages' paths.

    images=False leaves the PNGs (and matrix.md's charts) out: the matrix renders its page
    after every cell, and only the last rendering needs them.
    """
    matrix_dir = Path(matrix_dir)
    summary = read_json(matrix_dir / "summary.json")
    cells = [MatrixCell(i, c, _load(matrix_dir, c)) for i, c in enumerate(summary.get("cells") or [])]
    axes = _axes(summary)
    charts = build_matrix_charts(cells, axes)
    pngs: dict[str, str] = {}
    if images:
        for chart in charts:
            name = f"{chart.name}.png"
            chart.save_png(matrix_dir / name)
            pngs[chart.name] = name
        for stale in matrix_dir.glob("*.png"):  # charts that no longer have data
            if stale.name not in pngs.values():
                stale.unlink()
    pages = (
        (matrix_dir / "index.html", _html(summary, cells, axes, charts)),
        (matrix_dir / "matrix.md", _markdown(summary, cells, axes, charts, pngs)),
    )
    for path, text in pages:
        write_text(path, text)
    return [path for path, _ in pages]


def _load(matrix_dir: Path, cell: Mapping[str, Any]) -> RunReport | None:
    link = cell.get("run_dir")
    if not link:
        return None
    path = matrix_dir / link
    return load_run(path) if path.is_dir() else None


def _axes(summary: Mapping[str, Any]) -> list[str]:
    """The axes charts are drawn against: the version when several, then each --vary key."""
    axes = [k for k, values in (summary.get("axes") or {}).items() if len(values) > 1]
    return (["version"] if len(summary.get("versions") or []) > 1 else []) + axes


# -- shared figures -------------------------------------------------------------------------


def _dash(value: Any, fmt: str = "{:,}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt.format(value)
    return str(value)


def _peak(cell: Mapping[str, Any]) -> str:
    peak, limit = cell.get("peak_memory_bytes"), cell.get("limit_bytes")
    if peak is None:
        return "-"
    return format_bytes(peak) + (f" of {format_bytes(limit)}" if limit else "")


def _figures(cell: Mapping[str, Any]) -> list[str]:
    """The per-cell figures of the tables, in column order (see _COLUMNS)."""
    return [
        _dash(cell.get("rows_acked")),
        _dash(cell.get("rows_acked_at_first_oom")),
        _peak(cell),
        _dash(cell.get("memory_growth_mb_per_100k_rows"), "{:,.0f}"),
        _dash(cell.get("rows_per_s"), "{:,.0f}"),
        _dash(cell.get("insert_p50_ms"), "{:,.0f}"),
        _dash(cell.get("time_to_verdict_s"), "{:,.1f}"),
        _dash(cell.get("verify_s"), "{:,.1f}"),
    ]


_COLUMNS = ("rows acked", "rows acked at first OOM", "peak memory", "MB per 100k rows", "rows/s", "insert p50 ms",
            "verdict after s", "verification s")


def _combos(cells: Sequence[MatrixCell]) -> list[tuple[tuple[str, str], ...]]:
    """The distinct axis combinations, in cell order: the verdict grid's columns."""
    seen: dict[tuple[tuple[str, str], ...], None] = {}
    for cell in cells:
        seen.setdefault(tuple((str(k), str(v)) for k, v in (cell.data.get("values") or {}).items()), None)
    return list(seen)


def _grid(cells: Sequence[MatrixCell]) -> tuple[list[str], list[tuple[str, list[MatrixCell | None]]]]:
    """Rows of versions by columns of axis combinations."""
    combos = _combos(cells)
    by_key = {(str(c.data.get("version")), tuple((str(k), str(v)) for k, v in (c.data.get("values") or {}).items())): c
              for c in cells}
    versions = list(dict.fromkeys(str(c.data.get("version")) for c in cells))
    header = [" ".join(f"{k}={v}" for k, v in combo) or "verdict" for combo in combos]
    return header, [(v, [by_key.get((v, combo)) for combo in combos]) for v in versions]


def _headline(summary: Mapping[str, Any], cells: Sequence[MatrixCell]) -> tuple[str, str]:
    """(banner word, one sentence) for the page's top."""
    status = str(summary.get("status") or "RUNNING")
    counts = {v: sum(1 for c in cells if c.verdict == v) for v in (*VERDICTS, "PENDING")}
    text = ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no cells"
    if status == "RUNNING":
        return "RUNNING", f"{len(cells) - counts['PENDING']} of {len(cells)} cells done: {text}"
    if status == "ABORTED":
        return "ABORTED", f"stopped before every cell ran: {text}"
    word = "FAIL" if counts["FAIL"] else ("INCONCLUSIVE" if counts["INCONCLUSIVE"] else "PASS")
    return word, f"{len(cells)} cells: {text} (exit {summary.get('exit_code')})"


def _inputs(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    axes = summary.get("axes") or {}
    overrides = summary.get("overrides") or {}
    limit = summary.get("memory_limit_bytes")
    return [
        ("scenario", str(summary.get("scenario"))),
        ("target", str(summary.get("target"))),
        ("versions", ", ".join(summary.get("versions") or [])),
        *((f"--vary {k}", ", ".join(v)) for k, v in axes.items()),
        ("memory limit", format_bytes(limit) if limit else ("varied" if "memory_limit" in axes else "none")),
        ("overrides", ", ".join(f"{k}={v}" for k, v in overrides.items()) or "none"),
        ("users", ramp.describe_setting(summary.get("users")) if "users" in summary else "-"),
        ("heap profiles", describe_schedule(summary.get("profile_every_s")) if "profile_every_s" in summary else "-"),
        ("command", str(summary.get("command") or "-")),
    ]


# -- index.html -----------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _run_link(cell: Mapping[str, Any], text: str) -> str:
    link = cell.get("run_dir")
    if not link:
        return _e(text)
    return f'<a href="{_e(link)}/report.html">{_e(text)}</a>'


def _html(summary: Mapping[str, Any], cells: Sequence[MatrixCell], axes: Sequence[str], charts: Sequence[Chart]) -> str:
    word, sentence = _headline(summary, cells)
    value_axes = list((summary.get("axes") or {}))
    header, grid = _grid(cells)
    grid_rows = []
    for version, row in grid:
        tds = []
        for cell in row:
            if cell is None:
                tds.append("<td>-</td>")
                continue
            fig = cell.data.get("rows_acked_at_first_oom")
            note = (f"OOM at {fig:,} rows" if isinstance(fig, int) else
                    (_peak(cell.data) if cell.data.get("peak_memory_bytes") else ""))
            tds.append(f'<td class="v-{_e(cell.verdict)}" data-cell="{cell.index}">'
                       + _run_link(cell.data, cell.verdict)
                       + (f'<span class="fig">{_e(note)}</span>' if note else "") + "</td>")
        grid_rows.append(f"<tr><th><code>{_e(version)}</code></th>{''.join(tds)}</tr>")
    grid_html = ('<table class="grid"><thead><tr><th>version</th>'
                 + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead><tbody>"
                 + "".join(grid_rows) + "</tbody></table>")

    head = ["version", *value_axes, "verdict", *_COLUMNS, "run", "crash", "reasons"]
    rows = []
    for cell in cells:
        d = cell.data
        values = d.get("values") or {}
        numbers = "".join(f'<td class="num">{_e(x)}</td>' for x in _figures(d))
        run_text = (d.get("run_id") or "run") + (" (reused)" if d.get("reused") else "")
        rows.append(
            f'<tr class="cell" data-cell="{cell.index}" data-verdict="{_e(cell.verdict)}">'
            f"<td><code>{_e(d.get('version'))}</code></td>"
            + "".join(f"<td>{_e(values.get(a, ''))}</td>" for a in value_axes)
            + f'<td class="v-{_e(cell.verdict)}">{_e(cell.verdict)}</td>' + numbers
            + f"<td>{_run_link(d, run_text) if d.get('run_dir') else '-'}</td>"
            + f'<td class="crash">{_e(d.get("crash") or "-")}</td>'
            + f'<td class="reasons">{_e("; ".join(d.get("reasons") or []) or "-")}</td></tr>')
    table = ("<table><thead><tr>" + "".join(
        f'<th class="num">{_e(h)}</th>' if h in _COLUMNS else f"<th>{_e(h)}</th>" for h in head)
        + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")

    by_name = {c.name: c for c in charts}
    memory = by_name.get("memory-vs-rows")
    growth = [c for c in charts if c.name.startswith("growth-")]
    inputs = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v) if k != 'command' else f'<code>{_e(v)}</code>'}</td></tr>"
                     for k, v in _inputs(summary))
    body = [
        '<header class="top"><div><div class="brand">milvus-harness matrix</div>'
        f"<h1>{_e(summary.get('scenario'))} across {len(summary.get('versions') or [])} version(s)"
        f' <span class="sub">({_e(summary.get("target"))}, {len(cells)} cells)</span></h1></div>'
        f'<div class="runid">matrix <code>{_e(summary.get("id"))}</code></div></header>',
        f'<section class="banner v-{word.lower()}" id="verdict" data-verdict="{_e(word)}">'
        f'<div class="verdict">{_e(word)}</div><div class="what"><ul class="reasons"><li>{_e(sentence)}</li></ul>'
        "</div></section>",
        _card("Verdicts", grid_html, "each links to the cell's run report"),
        _card("Memory against rows acked", memory.svg() if memory else
              '<p class="empty">No cell recorded memory while inserting.</p>',
              "highest component of each cell; cross: first OOM kill; fainter: after a restart"),
        _growth_cards(growth),
        _card("Cells", table),
        _card("Inputs", f'<table class="kv">{inputs}</table>'),
        "<footer>Rendered by milvus-harness from <code>summary.json</code> and each cell's run directory. "
        "Cells reuse a finished run with the same key (target, version, scenario hash, limit, overrides).</footer>",
    ]
    css = resources.files("harness.report").joinpath("report.css").read_text() + _EXTRA_CSS
    refresh = '<meta http-equiv="refresh" content="30">\n' if word == "RUNNING" else ""
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n" + refresh
            + f"<title>{_e(word)} · matrix {_e(summary.get('id'))} · milvus-harness</title>\n"
            f"<style>\n{css}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(part for part in body if part) + "\n</main>\n</body>\n</html>\n")


def _growth_cards(growth: Sequence[Chart]) -> str:
    """One growth chart full width; several two a row."""
    cards = "".join(_card(c.title, c.svg(), "straight-line fit up to the first OOM kill") for c in growth)
    return f'<div class="grid2">{cards}</div>' if len(growth) > 1 else cards


def _card(title: str, content: str, hint: str = "") -> str:
    hint_html = f'<span class="hint">{_e(hint)}</span>' if hint else ""
    return f'<section class="card"><h2>{_e(title)}{hint_html}</h2>{content}</section>'


# -- matrix.md ------------------------------------------------------------------------------


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(summary: Mapping[str, Any], cells: Sequence[MatrixCell], axes: Sequence[str], charts: Sequence[Chart],
              pngs: Mapping[str, str]) -> str:
    word, sentence = _headline(summary, cells)
    lines = [f"# Matrix {summary.get('id')}: {summary.get('scenario')}", "", f"**{word}**: {_md(sentence)}", ""]
    lines += [f"- {k}: {('`' + _md(v) + '`') if k == 'command' else _md(v)}" for k, v in _inputs(summary)]
    header, grid = _grid(cells)
    lines += ["", "## Verdicts", "", "| version | " + " | ".join(_md(h) for h in header) + " |",
              "| --- |" + " --- |" * len(header)]
    for version, row in grid:
        parts = []
        for cell in row:
            if cell is None:
                parts.append("-")
                continue
            link = cell.data.get("run_dir")
            parts.append(f"[{cell.verdict}]({link}/report.md)" if link else cell.verdict)
        lines.append(f"| `{_md(version)}` | " + " | ".join(parts) + " |")
    value_axes = list((summary.get("axes") or {}))
    head = ["version", *value_axes, "verdict", *_COLUMNS, "run", "crash"]
    lines += ["", "## Cells", "", "| " + " | ".join(head) + " |",
              "| " + " | ".join("---:" if h in _COLUMNS else "---" for h in head) + " |"]
    for cell in cells:
        d = cell.data
        values = d.get("values") or {}
        run = (f"[{_md(d.get('run_id') or 'run')}]({d['run_dir']}/report.md)" if d.get("run_dir") else "-")
        lines.append("| " + " | ".join([f"`{_md(d.get('version'))}`", *(_md(values.get(a, "")) for a in value_axes),
                                        cell.verdict, *(_md(x) for x in _figures(d)),
                                        run + (" (reused)" if d.get("reused") else ""), _md(d.get("crash") or "-")])
                     + " |")
    reasons = [(cell, d) for cell in cells if (d := cell.data).get("reasons") and cell.verdict != "PASS"]
    if reasons:
        lines += ["", "## Why not PASS", ""]
        lines += [f"- {_md(cell.label)}: {_md('; '.join(d['reasons']))}" for cell, d in reasons]
    if pngs:
        lines += ["", "## Charts", ""]
        lines += [f"![{_md(c.title)}]({pngs[c.name]})" for c in charts if c.name in pngs]
    return "\n".join(lines) + "\n"
