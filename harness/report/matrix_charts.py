"""The matrix page's charts: every cell's memory against rows acked, and memory growth against each
varied axis (SVG ids `cell-<n>`, `oom-<n>`, `limit`, `growth-<axis>-<m>`; see matrix_page.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import matplotlib
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

from harness.report import chart_kit
from harness.report.chart_kit import Chart
from harness.report.model import RunReport
from harness.units import format_bytes
from harness.watch import events

FAIL_RING = "#dc2626"


@dataclass(frozen=True)
class MatrixCell:
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


def slug(text: str) -> str:
    """An axis name as an id or file-name part."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)


def build_matrix_charts(cells: Sequence[MatrixCell], axes: Sequence[str]) -> list[Chart]:
    """The memory chart, then one growth chart per axis, each only when it has data."""
    charts: list[Chart] = []
    with matplotlib.rc_context(chart_kit.STYLE):
        figure = memory_chart(cells)
        if figure is not None:
            charts.append(Chart("memory-vs-rows", "Memory against rows acked, every cell", figure))
        for axis in axes:
            figure = growth_chart(cells, axis)
            if figure is not None:
                charts.append(Chart(f"growth-{slug(axis)}", f"Memory growth against {axis}", figure))
    return charts


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


def memory_chart(cells: Sequence[MatrixCell]) -> Figure | None:
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


def growth_chart(cells: Sequence[MatrixCell], axis: str) -> Figure | None:
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
    series: dict[str, list[MatrixCell]] = {}
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
                gid=f"growth-{slug(axis)}-{m}")
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
