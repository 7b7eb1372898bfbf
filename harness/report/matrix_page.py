"""The pages of a matrix: reports/matrix-<id>/index.html and matrix.md, from files alone.

`render_matrix(matrix_dir)` reads the matrix's summary.json (written by harness.compare.matrix) and,
for the charts, each cell's samples.jsonl and acks.jsonl through its relative run_dir link.
Like render_report it only reads files, so a matrix page can be rendered again anywhere the
report dir is copied whole. index.html is self-contained (inline CSS and SVG); matrix.md
links PNG copies of the charts, which every Markdown viewer shows.

SVG ids tests and users can look for: `cell-<n>` (a cell's line in the memory chart, n its
position in summary.json "cells"), `oom-<n>` (its first OOM kill), `limit` (a limit shared
by every cell), `growth-<axis>-<m>` (one series of a growth chart).
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

from harness.report import chart_kit
from harness.report.chart_kit import Chart
from harness.report.model import RunReport, load_run
from harness.rundir import read_json, write_text
from harness.units import format_bytes
from harness.watch import events

__all__ = ["render_matrix", "memory_chart", "growth_chart"]

MEMORY_PNG = "memory-vs-rows.png"
VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE")
FAIL_RING = "#dc2626"

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


@dataclass(frozen=True)
class _Cell:
    """One cell of summary.json with its position and, when its run dir is readable, the run."""

    index: int
    data: Mapping[str, Any]
    run: RunReport | None

    @property
    def verdict(self) -> str:
        return str(self.data.get("verdict") or self.data.get("status") or "PENDING")

    @property
    def label(self) -> str:
        return str(self.data.get("label") or self.data.get("version"))

    def coordinate(self, axis: str) -> str:
        if axis == "version":
            return str(self.data.get("version"))
        return str((self.data.get("values") or {}).get(axis, ""))


def render_matrix(matrix_dir: Path, *, images: bool = True) -> list[Path]:
    """Write index.html, matrix.md and the charts' PNGs into matrix_dir; return the pages' paths.

    images=False leaves the PNGs (and matrix.md's charts) out: the matrix renders its page
    after every cell, and only the last rendering needs them.
    """
    matrix_dir = Path(matrix_dir)
    summary = read_json(matrix_dir / "summary.json")
    cells = [_Cell(i, c, _load(matrix_dir, c)) for i, c in enumerate(summary.get("cells") or [])]
    axes = _axes(summary)
    charts: list[Chart] = []
    with matplotlib.rc_context(chart_kit.STYLE):
        figure = memory_chart(cells)
        if figure is not None:
            charts.append(Chart("memory-vs-rows", "Memory against rows acked, every cell", figure))
        for axis in axes:
            figure = growth_chart(cells, axis)
            if figure is not None:
                charts.append(Chart(f"growth-{_slug(axis)}", f"Memory growth against {axis}", figure))
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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)



# -- charts ---------------------------------------------------------------------------------


def _colours(n: int) -> list[Any]:
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["viridis"](i / max(1, n - 1)) for i in range(n)]


def _main_component(run: RunReport) -> str | None:
    """The component whose memory matters most: the one with the highest peak."""
    best, peak = None, -1
    for comp in run.components:
        value = comp.peak_memory_bytes or 0
        if value > peak and any(s.memory_bytes is not None for s in run.samples_of(comp.name)):
            best, peak = comp.name, value
    return best


def memory_chart(cells: Sequence[_Cell]) -> Figure | None:
    """Every cell's memory (its highest component) against rows acked, while the load ran.

    A restart starts a new, fainter segment of the same colour; a cross marks the first OOM
    kill at the rows acked before it. One limit shared by all cells is one dashed line.
    """
    drawn = [c for c in cells if c.run is not None and c.run.acks and _main_component(c.run)]
    if not drawn:
        return None
    figure, ax = chart_kit.new_figure(10, 4.4)
    colours = _colours(len(cells))
    top = 0.0
    limits: set[int] = set()
    for cell in drawn:
        run = cell.run
        assert run is not None
        component = _main_component(run)
        assert component is not None
        # From the first insert to the end of the load: memory still climbing after the last
        # ack (rows flat, memory up) is what a stall before an OOM kill looks like.
        first_send = min(a.t_start for a in run.acks)
        stopped = [e.t for e in run.events if e.type == events.LOAD_STOPPED]
        end = stopped[0] if stopped else max(a.t for a in run.acks)
        samples = [s for s in run.samples_of(component)
                   if s.memory_bytes is not None and first_send <= s.t <= end]
        if not samples:
            continue
        rows = run.rows_acked_at(s.t for s in samples)
        colour = colours[cell.index]
        for n, segment in enumerate(chart_kit.segments(samples, rows)):
            xs = [float(r) for r, _ in segment]
            ys = [float(s.memory_bytes or 0) for _, s in segment]
            ax.plot(xs, ys, color=colour, lw=1.6, alpha=1.0 if n == 0 else 0.4,
                    label=cell.label if n == 0 else None, gid=f"cell-{cell.index}" if n == 0 else None)
            top = max([top] + ys)
        first_oom = run.summary.get("first_oom")
        if isinstance(first_oom, Mapping) and first_oom.get("t") is not None:
            before = [s for s in samples if s.t <= float(first_oom["t"])]
            y = float(before[-1].memory_bytes or 0) if before else top
            ax.plot([float(first_oom.get("rows_acked_before") or 0)], [y], ls="none", marker="X", ms=9,
                    color=colour, mec=FAIL_RING, mew=1.2, gid=f"oom-{cell.index}")
        limit = run.limit_of(component)
        if limit:
            limits.add(limit)
    if len(limits) == 1:
        limit = next(iter(limits))
        ax.axhline(limit, color="#64748b", ls=(0, (6, 3)), lw=1.2, gid="limit", label=f"limit {format_bytes(limit)}")
        top = max(top, float(limit))
    elif limits:  # different limits per cell: the table says which; a tick per limit here
        for limit in sorted(limits):
            ax.axhline(limit, color="#94a3b8", ls=(0, (2, 3)), lw=0.9)
        top = max([top, *map(float, limits)])
    unit_name = _byte_axis(ax, top)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: chart_kit.count(v)))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8))
    ax.set_ylim(0, (top or 1) * 1.1)
    ax.set_xlim(left=0)
    ax.set_ylabel(f"memory ({unit_name})")
    ax.set_xlabel("rows acked")
    ax.set_title("Memory against rows acked, every cell")
    handles = len(ax.get_legend_handles_labels()[0])
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), ncols=1 if handles <= 16 else 2, fontsize=8)
    return figure


def _byte_axis(ax: Any, top: float) -> str:
    """Y ticks at round binary steps (256 MiB, 512 MiB, 1 GiB, ...), at most six; returns the unit name."""
    unit, unit_name = chart_kit.unit_for(top)
    step = float(2**20)
    while top / step > 6:
        step *= 2
    ax.yaxis.set_major_locator(MultipleLocator(step))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: chart_kit.trim(v / unit)))
    return unit_name


def growth_chart(cells: Sequence[_Cell], axis: str) -> Figure | None:
    """Memory growth (MB per 100k rows) against one axis's values, one line per other coordinate.

    The axis's values are categories in the order given (versions oldest first). A FAILed
    cell's point gets a red ring. None when no cell has a growth figure.
    """
    points = [c for c in cells if isinstance(c.data.get("memory_growth_mb_per_100k_rows"), (int, float))]
    if not points:
        return None
    positions: dict[str, int] = {}
    for cell in cells:
        positions.setdefault(cell.coordinate(axis), len(positions))
    if len(positions) < 2:
        return None
    others = [a for a in ["version", *(cells[0].data.get("values") or {})] if a != axis]
    series: dict[str, list[_Cell]] = {}
    for cell in points:
        key = " ".join(f"{a}={cell.coordinate(a)}" if a != "version" else cell.coordinate(a) for a in others)
        series.setdefault(key, []).append(cell)
    figure, ax = chart_kit.new_figure(6.4, 3.4)
    colours = _colours(len(series))
    top = 0.0
    failed_x: list[float] = []
    failed_y: list[float] = []
    for m, (name, members) in enumerate(series.items()):
        members = sorted(members, key=lambda c: positions[c.coordinate(axis)])
        xs = [float(positions[c.coordinate(axis)]) for c in members]
        ys = [float(c.data["memory_growth_mb_per_100k_rows"]) for c in members]
        ax.plot(xs, ys, color=colours[m], lw=1.4, marker="o", ms=5, label=name or "growth",
                gid=f"growth-{_slug(axis)}-{m}")
        for cell, x, y in zip(members, xs, ys):
            if cell.verdict == "FAIL":
                failed_x.append(x)
                failed_y.append(y)
        top = max([top, *ys])
    if failed_x:
        ax.plot(failed_x, failed_y, ls="none", marker="o", ms=11, mfc="none", mec=FAIL_RING, mew=1.6, label="FAIL")
    ax.set_xticks(range(len(positions)), list(positions), rotation=45 if len(positions) > 6 else 0,
                  ha="right" if len(positions) > 6 else "center")
    ax.set_xlim(-0.5, len(positions) - 0.5)
    ax.set_ylim(min(0.0, *[float(c.data["memory_growth_mb_per_100k_rows"]) for c in points]) * 1.1,
                (top or 1) * 1.18)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel("MB per 100k rows")
    ax.set_xlabel(axis)
    ax.set_title(f"Memory growth against {axis}")
    if len(series) > 1 or failed_x:
        ax.legend(loc="upper left", fontsize=8, ncols=2 if len(series) > 4 else 1)
    return figure


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
    ]


_COLUMNS = ("rows acked", "rows acked at first OOM", "peak memory", "MB per 100k rows", "rows/s", "insert p50 ms")


def _combos(cells: Sequence[_Cell]) -> list[tuple[tuple[str, str], ...]]:
    """The distinct axis combinations, in cell order: the verdict grid's columns."""
    seen: dict[tuple[tuple[str, str], ...], None] = {}
    for cell in cells:
        seen.setdefault(tuple((str(k), str(v)) for k, v in (cell.data.get("values") or {}).items()), None)
    return list(seen)


def _grid(cells: Sequence[_Cell]) -> tuple[list[str], list[tuple[str, list[_Cell | None]]]]:
    """Rows of versions by columns of axis combinations."""
    combos = _combos(cells)
    by_key = {(str(c.data.get("version")), tuple((str(k), str(v)) for k, v in (c.data.get("values") or {}).items())): c
              for c in cells}
    versions = list(dict.fromkeys(str(c.data.get("version")) for c in cells))
    header = [" ".join(f"{k}={v}" for k, v in combo) or "verdict" for combo in combos]
    return header, [(v, [by_key.get((v, combo)) for combo in combos]) for v in versions]


def _headline(summary: Mapping[str, Any], cells: Sequence[_Cell]) -> tuple[str, str]:
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


def _html(summary: Mapping[str, Any], cells: Sequence[_Cell], axes: Sequence[str], charts: Sequence[Chart]) -> str:
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

    head = ["version", *value_axes, "verdict", *_COLUMNS, "run", "reasons"]
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


def _markdown(summary: Mapping[str, Any], cells: Sequence[_Cell], axes: Sequence[str], charts: Sequence[Chart],
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
    head = ["version", *value_axes, "verdict", *_COLUMNS, "run"]
    lines += ["", "## Cells", "", "| " + " | ".join(head) + " |",
              "| " + " | ".join("---:" if h in _COLUMNS else "---" for h in head) + " |"]
    for cell in cells:
        d = cell.data
        values = d.get("values") or {}
        run = (f"[{_md(d.get('run_id') or 'run')}]({d['run_dir']}/report.md)" if d.get("run_dir") else "-")
        lines.append("| " + " | ".join([f"`{_md(d.get('version'))}`", *(_md(values.get(a, "")) for a in value_axes),
                                        cell.verdict, *(_md(x) for x in _figures(d)),
                                        run + (" (reused)" if d.get("reused") else "")]) + " |")
    reasons = [(cell, d) for cell in cells if (d := cell.data).get("reasons") and cell.verdict != "PASS"]
    if reasons:
        lines += ["", "## Why not PASS", ""]
        lines += [f"- {_md(cell.label)}: {_md('; '.join(d['reasons']))}" for cell, d in reasons]
    if pngs:
        lines += ["", "## Charts", ""]
        lines += [f"![{_md(c.title)}]({pngs[c.name]})" for c in charts if c.name in pngs]
    return "\n".join(lines) + "\n"
