"""The run report's four charts, drawn with matplotlib (Agg canvas, no pyplot state) from a RunReport;
the drawing kit they share with the matrix page is chart_kit.py.

Every figure is built on its own `Figure`, never through pyplot, so rendering a report from a
thread of a running harness touches no global figure registry. Artists that tests and users
look for carry stable gids, which become SVG element ids: `memory-<component>`,
`limit-<component>`, `oom-marker`, `restart-marker`, `stall-marker`, `injected-marker`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from harness.report.chart_kit import (COMPONENT_COLORS, STYLE, Chart, count, legend_above, new_figure, segments,
                                      thin, trim, unit_for)
from harness.report.memory_section import memory_split_chart
from harness.report.model import MARKER_TYPES, RunReport
from harness.units import format_bytes
from harness.watch import events

MARKER_STYLE: dict[str, dict[str, Any]] = {
    events.OOM_KILLED: {"color": "#dc2626", "label": "OOM kill", "gid": "oom-marker", "ls": "-", "lw": 1.8},
    events.RESTARTED: {"color": "#ea580c", "label": "restart", "gid": "restart-marker", "ls": "-", "lw": 1.4},
    events.MEMORY_STALL: {"color": "#9333ea", "label": "memory stall", "gid": "stall-marker", "ls": "-", "lw": 1.4},
    events.INJECTED: {"color": "#6b7280", "label": "injected", "gid": "injected-marker", "ls": ":", "lw": 1.4},
    events.CRASH_LOOP: {"color": "#7f1d1d", "label": "crash loop", "gid": "crash-loop-marker", "ls": "--", "lw": 2.0},
    events.NOT_RECOVERED: {"color": "#7f1d1d", "label": "not recovered", "gid": "not-recovered-marker", "ls": ":",
                           "lw": 2.0},
}
RECOVERY_SHADE = "#fde7d4"
FAIL_COLOR = "#dc2626"
LOAD_SHADE = "#eef2f7"
#: Figure size in inches of the half-width charts (the memory chart is 10 x 3.9).
SMALL = (5.6, 3.5)


def build_charts(report: RunReport) -> list[Chart]:
    """Every chart the run has data for, in page order: memory, rows, latency, memory vs rows,
    and where the memory went (harness.report.memory_section)."""
    charts = []
    for name, title, draw in (
        ("memory", "Memory over time", memory_chart),
        ("rows", "Rows acked over time", rows_chart),
        ("latency", "Insert latency per batch", latency_chart),
        ("memory-vs-rows", "Memory against rows acked", memory_vs_rows_chart),
        ("memory-split", "Where the memory went", memory_split_chart),
    ):
        with matplotlib.rc_context(STYLE):
            figure = draw(report)
        if figure is not None:
            charts.append(Chart(name, title, figure))
    return charts


# -- the four charts ----------------------------------------------------------------------

def memory_chart(report: RunReport) -> Figure | None:
    """Memory per component over elapsed seconds, its limit dashed, event markers upright."""
    components = [c for c in report.component_names if any(
        s.memory_bytes is not None for s in report.samples_of(c))]
    if not components:
        return None
    peak = max(float(s.memory_bytes or 0) for s in report.samples)
    top = max([peak] + [float(report.limit_of(c) or 0) for c in components])
    # plot in the unit shown, so the tick locator picks round GiB / MiB steps
    unit, unit_name = unit_for(top)
    figure, ax = new_figure(10, 3.9)
    for component in components:
        color = _color(report, component)
        samples = report.samples_of(component)
        xs = [report.elapsed(s.t) for s in samples]
        ys = [math.nan if s.memory_bytes is None else s.memory_bytes / unit for s in samples]
        xs, ys = thin(xs, ys)
        ax.plot(xs, ys, color=color, lw=1.8, label=component, gid=f"memory-{component}",
                solid_joinstyle="round", zorder=5)
        ax.fill_between(xs, ys, color=color, alpha=0.07, lw=0)
    _limit_lines(ax, report, components, unit, with_gids=True)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: trim(v)))
    ax.set_ylabel(f"memory ({unit_name})")
    ax.set_ylim(0, top / unit * 1.16 if top else 1)
    _shade_load(ax, report)
    _shade_recoveries(ax, report)
    _markers(ax, report, with_gids=True)
    _annotate_first_oom(ax, report)
    _finish(ax, report)
    legend_above(ax, max_cols=4)
    return figure


def rows_chart(report: RunReport) -> Figure | None:
    """Cumulative rows acked over elapsed seconds; failed inserts as red crosses."""
    times, totals = report.acked_series()
    failed = [a for a in report.acks if not a.ok]
    if not times and not failed:
        return None
    figure, ax = new_figure(*SMALL)
    start = min([a.t_start for a in report.acks])
    xs = [report.elapsed(start)] + [report.elapsed(t) for t in times]
    ys = [0] + totals
    ax.plot(xs, ys, drawstyle="steps-post", color=COMPONENT_COLORS[0], lw=1.8, gid="rows-acked",
            label="rows acked")
    if failed:
        at = report.rows_acked_at(a.t for a in failed)
        ax.plot([report.elapsed(a.t) for a in failed], at, ls="none", marker="x", ms=8, mew=2,
                color=FAIL_COLOR, gid="rows-failed", label=f"failed insert ({len(failed)})")
    planned = report.rows.get("planned")
    top = max(ys)
    # the planned line only helps when it is on the same scale as what was acked
    if planned and top and planned <= 2 * top:
        ax.axhline(planned, color="#64748b", ls=(0, (6, 3)), lw=1.2, label=f"planned {planned:,}")
        top = max(top, planned)
    ax.set_ylim(0, (top or 1) * 1.12)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: count(v)))
    ax.set_ylabel("rows acked")
    _shade_load(ax, report)
    _markers(ax, report, with_gids=False)
    _finish(ax, report)
    legend_above(ax)
    return figure


def latency_chart(report: RunReport) -> Figure | None:
    """Each insert's latency at the time it was answered; failed ones as red crosses."""
    acks = [a for a in report.acks if not math.isnan(a.latency_ms)]
    if not acks:
        return None
    figure, ax = new_figure(*SMALL)
    ok = [a for a in acks if a.ok]
    failed = [a for a in acks if not a.ok]
    if ok:
        ax.plot([report.elapsed(a.t) for a in ok], [a.latency_ms for a in ok], color=COMPONENT_COLORS[0],
                lw=1, marker="o", ms=3.5, gid="latency-ok", label="insert")
    if failed:
        ax.plot([report.elapsed(a.t) for a in failed], [a.latency_ms for a in failed], ls="none",
                marker="x", ms=8, mew=2, color=FAIL_COLOR, gid="latency-failed",
                label=f"failed insert ({len(failed)})")
    percentiles = report.inserts.get("latency_ms") or {}
    for key, style in (("p50", (0, (1, 2))), ("p95", (0, (5, 3)))):
        value = percentiles.get(key)
        if isinstance(value, (int, float)):
            ax.axhline(value, color="#64748b", ls=style, lw=1.1, label=f"{key} {value:,.0f} ms")
    ax.set_ylim(0, max(max(a.latency_ms for a in acks), 1.0) * 1.18)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel("latency (ms)")
    _shade_load(ax, report)
    _markers(ax, report, with_gids=False)
    _finish(ax, report)
    legend_above(ax, max_cols=4)
    return figure


def memory_vs_rows_chart(report: RunReport) -> Figure | None:
    """Memory against rows acked while the component was alive: growth per row, at a glance."""
    first_send = min((a.t_start for a in report.acks), default=None)
    if first_send is None:
        return None
    series = []
    for component in report.component_names:
        alive = [s for s in report.samples_of(component)
                 if s.memory_bytes is not None and s.t >= first_send and _alive(report, component, s.t)]
        if alive:
            series.append((component, alive))
    if not series:
        return None
    peak = max(float(s.memory_bytes or 0) for _, samples in series for s in samples)
    top = max([peak] + [float(report.limit_of(c) or 0) for c, _ in series])
    unit, unit_name = unit_for(top)
    figure, ax = new_figure(*SMALL)
    first_segment: tuple[list[float], list[float]] | None = None
    for component, samples in series:
        color = _color(report, component)
        rows = report.rows_acked_at(s.t for s in samples)
        for n, segment in enumerate(segments(samples, rows)):
            xs = [float(r) for r, _ in segment]
            ys = [(s.memory_bytes or 0) / unit for _, s in segment]
            if n and len(set(xs)) < 2:
                continue  # a restarted process that got no rows says nothing about growth
            xs, ys = thin(xs, ys, max_points=800)
            ax.plot(xs, ys, color=color, lw=1.4, marker="o" if len(xs) <= 200 else None, ms=3,
                    alpha=1.0 if n == 0 else 0.45,
                    label=component if n == 0 else f"{component} after restart {n}",
                    gid=f"growth-{component}" if n == 0 else None)
            if first_segment is None and n == 0:
                first_segment = (xs, ys)
    _limit_lines(ax, report, [c for c, _ in series], unit, with_gids=False)
    if first_segment is not None:
        _growth_line(ax, report, *first_segment, unit=unit)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: trim(v)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: count(v)))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    ax.set_ylim(0, (top / unit or 1) * 1.16)
    ax.set_xlim(left=0)
    ax.set_ylabel(f"memory ({unit_name})")
    ax.set_xlabel("rows acked")
    legend_above(ax)
    return figure


# -- helpers ------------------------------------------------------------------------------

def _color(report: RunReport, component: str) -> str:
    """The component's colour, the same on every chart."""
    names = report.component_names
    return COMPONENT_COLORS[names.index(component) % len(COMPONENT_COLORS) if component in names else 0]


def _limit_lines(ax: Axes, report: RunReport, components: Sequence[str], unit: float,
                 with_gids: bool) -> None:
    """A dashed line at each component's limit; one shared grey line's label when all agree."""
    limits = {c: report.limit_of(c) for c in components}
    present = [limit for limit in limits.values() if limit]
    shared = len(present) > 1 and len(set(present)) == 1
    labelled = False
    for component in components:
        limit = limits[component]
        if not limit:
            continue
        if shared:
            color, label = "#475569", None if labelled else f"limit {format_bytes(limit)}"
            labelled = True
        else:
            color = _color(report, component)
            label = f"{component} limit {format_bytes(limit)}" if with_gids else f"limit {format_bytes(limit)}"
        ax.axhline(limit / unit, color=color, ls=(0, (6, 3)), lw=1.3, label=label,
                   gid=f"limit-{component}" if with_gids else None)


def _finish(ax: Axes, report: RunReport) -> None:
    ax.set_xlabel("elapsed (s)")
    ax.set_xlim(left=0, right=_x_end(report))


def _x_end(report: RunReport) -> float | None:
    """The right end of time axes: the end of the run, or the last thing recorded."""
    times = [s.t for s in report.samples] + [e.t for e in report.events] + [a.t for a in report.acks]
    if report.ended is not None:
        times.append(report.ended)
    return report.elapsed(max(times)) * 1.01 if times else None


def _shade_load(ax: Axes, report: RunReport) -> None:
    """Shade each LoadStarted..LoadStopped window, so idle time reads as idle."""
    start = None
    for event in report.events:
        if event.type == events.LOAD_STARTED and start is None:
            start = event.t
        elif event.type == events.LOAD_STOPPED and start is not None:
            ax.axvspan(report.elapsed(start), report.elapsed(event.t), color=LOAD_SHADE, lw=0, zorder=0)
            start = None
    if start is not None:  # load never stopped (killed run): shade to the last ack
        end = max((a.t for a in report.acks), default=start)
        ax.axvspan(report.elapsed(start), report.elapsed(end), color=LOAD_SHADE, lw=0, zorder=0)


def _shade_recoveries(ax: Axes, report: RunReport) -> None:
    """Shade each restart's recovery, from the restart to Ready or to its death."""
    for i, phase in enumerate(report.recoveries):
        end = phase.get("end") or phase["start"]
        ax.axvspan(report.elapsed(phase["start"]), report.elapsed(end), color=RECOVERY_SHADE, lw=0, zorder=1,
                   label="recovering" if i == 0 else None, gid=f"recovery-{i + 1}")


def _markers(ax: Axes, report: RunReport, with_gids: bool) -> None:
    """One vertical line per marker event; one artist per event type, for legend and gid."""
    for event_type in MARKER_TYPES:
        xs = [report.elapsed(e.t) for e in report.marker_events if e.type == event_type]
        if not xs:
            continue
        style = MARKER_STYLE[event_type]
        ax.vlines(xs, 0, 1, transform=ax.get_xaxis_transform(), colors=style["color"],
                  linestyles=style["ls"], lw=style["lw"], label=style["label"] if with_gids else None,
                  gid=style["gid"] if with_gids else None, zorder=3)


def _annotate_first_oom(ax: Axes, report: RunReport) -> None:
    """Name the first OOM kill where it happened: the one fact this chart exists for."""
    first = report.summary.get("first_oom")
    if not isinstance(first, dict) or first.get("t") is None:
        return
    text = "OOM kill"
    if first.get("rows_acked_before") is not None:
        text += f" after {int(first['rows_acked_before']):,} rows"
    ax.annotate(text, xy=(report.elapsed(float(first["t"])), 0.985), xycoords=("data", "axes fraction"),
                xytext=(-6, 0), textcoords="offset points", ha="right", va="top", fontsize=9,
                fontweight="bold", color=MARKER_STYLE[events.OOM_KILLED]["color"], gid="oom-label")


def _alive(report: RunReport, component: str, t: float) -> bool:
    """False between a component's OOM kill or exit and its restart (or next Ready)."""
    alive = True
    for event in report.events:
        if event.t > t:
            break
        if event.component != component:
            continue
        if event.type in (events.OOM_KILLED, events.EXITED):
            alive = False
        elif event.type in (events.RESTARTED, events.READY):
            alive = True
    return alive


def _growth_line(ax: Axes, report: RunReport, xs: list[float], ys: list[float], unit: float) -> None:
    """The growth slope as a dashed line: summary's figure when there is one, else a fit."""
    points = [(x, y) for x, y in zip(xs, ys) if x > 0]
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return
    mb_per_100k = report.summary.get("memory_growth_mb_per_100k_rows")
    if isinstance(mb_per_100k, (int, float)):
        slope = mb_per_100k * 1e6 / 1e5 / unit  # units per row
        label = f"{mb_per_100k:,.0f} MB per 100k rows"
    else:
        n = len(points)
        mean_x = sum(x for x, _ in points) / n
        mean_y = sum(y for _, y in points) / n
        slope = (sum((x - mean_x) * (y - mean_y) for x, y in points)
                 / sum((x - mean_x) ** 2 for x, _ in points))
        label = f"fit: {slope * unit * 1e5 / 1e6:,.0f} MB per 100k rows"
    intercept = sum(y - slope * x for x, y in points) / len(points)
    x0, x1 = 0.0, max(x for x, _ in points)
    ax.plot([x0, x1], [intercept + slope * x0, intercept + slope * x1], color="#111827", lw=1.1,
            ls=(0, (4, 3)), gid="growth-fit", label=label, zorder=4)


