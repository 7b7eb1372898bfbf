"""The report's "where the memory went" section: a stacked chart of one component's memory
split over time (harness.judge.memory_split), the split at its peak, and the top allocation
sites of its last heap profile before the death when the run has profiles.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from harness.judge.memory_split import PARTS, has_split, split_memory
from harness.profiles import store
from harness.profiles.sites import Site
from harness.report.chart_kit import legend_above, new_figure, trim, unit_for
from harness.report.model import RunReport
from harness.units import format_bytes

#: Colours of the stacked parts, bottom first (PARTS order).
PART_COLORS = ("#cbd5e1", "#0d9488", "#2563eb", "#ca8a04")
TITLE = "Where the memory went"
NOT_READ = "not read"


def top_allocation_sites(report: RunReport) -> list[Site]:
    """The top allocation sites at the last heap profile before the first death (or at a
    stall, or the end), with their growth since the first capture; [] without profiles."""
    return store.top_sites(report.path)


def split_component(report: RunReport) -> str | None:
    """The component the section is about: the first one OOM-killed, else the one with the
    highest peak among those whose memory could be split; None when none could."""
    splittable = [c for c in report.component_names if any(has_split(_parts(s)) for s in report.samples_of(c))]
    if not splittable:
        return None
    first = report.summary.get("first_oom")
    if isinstance(first, dict) and first.get("component") in splittable:
        return str(first["component"])
    peaks = {c.name: c.peak_memory_bytes or 0 for c in report.components}
    return max(splittable, key=lambda c: peaks.get(c, 0))


def memory_split_chart(report: RunReport) -> Figure | None:
    """Stacked areas of the split over elapsed seconds during the load (gids `split-<part>`),
    with the component's memory as a line (`split-memory`) and its limit dashed. A sample
    missing a part the others have (/metrics did not answer) is a gap, not a dip."""
    component = split_component(report)
    if component is None:
        return None
    verify_started = report.summary.get("verify_started")
    samples = [s for s in report.samples_of(component)
               if has_split(_parts(s)) and (not isinstance(verify_started, (int, float)) or s.t < verify_started)]
    if not samples:
        return None
    parts = [_parts(s) for s in samples]
    xs = [report.elapsed(s.t) for s in samples]
    memory = [float(s.memory_bytes) if s.memory_bytes is not None else math.nan for s in samples]
    totals = [sum(p[k] or 0 for k, _ in PARTS) for p in parts]
    top = max([*totals, *(m for m in memory if not math.isnan(m)), float(report.limit_of(component) or 0), 1.0])
    unit, unit_name = unit_for(top)
    figure, ax = new_figure(10, 3.9)
    present = [i for i, (key, _) in enumerate(PARTS) if any(p[key] is not None for p in parts)]
    drawn = [key for i, (key, _) in enumerate(PARTS) if i in present and key != "write_buffer"]
    whole = [all(p[key] is not None for key in drawn) for p in parts]
    stacks = [[(p[key] or 0) / unit if ok else math.nan for p, ok in zip(parts, whole)] for key, _ in PARTS]
    ax.stackplot(xs, *[stacks[i] for i in present], colors=[PART_COLORS[i] for i in present],
                 labels=[PARTS[i][1] for i in present], alpha=0.9, lw=0)
    for artist, i in zip(ax.collections, present):
        artist.set_gid(f"split-{PARTS[i][0]}")
    ax.plot(xs, [m / unit for m in memory], color="#111827", lw=1.4, gid="split-memory",
            label=f"{component} memory ({samples[0].source or 'sampled'})")
    limit = report.limit_of(component)
    if limit:
        ax.axhline(limit / unit, color="#475569", ls=(0, (6, 3)), lw=1.3, label=f"limit {format_bytes(limit)}")
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: trim(v)))
    ax.set_ylabel(f"memory ({unit_name})")
    ax.set_xlabel("elapsed (s)")
    ax.set_ylim(0, top / unit * 1.16)
    ax.set_xlim(left=0)
    legend_above(ax, max_cols=3)
    return figure


def split_rows(report: RunReport) -> list[tuple[str, str]]:
    """Label/value rows of the split at the component's peak (summary.json memory_split)."""
    component = split_component(report)
    split = (report.summary.get("components", {}).get(component or "", {}) or {}).get("memory_split")
    if not component or not isinstance(split, Mapping):
        return []
    peak = split.get("at_peak") or {}
    rows = [("Component", component), ("Memory at its peak", _bytes(peak.get("memory_bytes")))]
    rows += [(label, _bytes(peak.get(key))) for key, label in PARTS]
    rows += [("Resident set (RSS)", _bytes(peak.get("rss"))), ("Go heap in use", _bytes(peak.get("go_heap_inuse"))),
             ("Go sys (reserved from the OS)", _bytes(peak.get("go_sys"))),
             ("Flow graphs", NOT_READ if peak.get("flowgraphs") is None else f"{peak['flowgraphs']:,}"),
             ("Read from", ", ".join(split.get("sources") or []) or NOT_READ)]
    return rows


def sites_table(sites: Sequence[Site]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the allocation sites table (empty rows: no sites given)."""
    header = ["Function", "In use", "Growth"]
    rows = [[s.name, format_bytes(s.bytes),
             "-" if s.growth_bytes is None else ("+" if s.growth_bytes >= 0 else "-") + format_bytes(abs(s.growth_bytes))]
            for s in sites]
    return header, rows


def _parts(sample: Any) -> dict[str, int | None]:
    return split_memory(sample.memory_stat, sample.metrics, sample.rss_bytes)


def _bytes(value: Any) -> str:
    return NOT_READ if value is None else format_bytes(int(value))
