"""The drawing kit the report's charts share (run charts in charts.py, the matrix page's in
matrix_page.py): the look (STYLE), a Chart and its SVG/PNG output, figures on their own Agg
canvas (no pyplot state), units, legends, thinning and number labels.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

GIB = 2**30
MIB = 2**20

#: One colour per component; red, orange, purple and grey are kept for event markers.
COMPONENT_COLORS = ("#2563eb", "#0d9488", "#ca8a04", "#4f46e5", "#0891b2", "#be185d", "#65a30d", "#1e3a8a")

#: The look of every chart of the harness (matplotlib rc parameters).
STYLE = {
    "font.size": 9.5,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.titlepad": 10,
    "axes.labelsize": 9.5,
    "axes.labelcolor": "#374151",
    "axes.edgecolor": "#cbd5e1",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.8,
    "xtick.color": "#4b5563",
    "ytick.color": "#4b5563",
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    # Text stays text in the SVG: smaller, selectable, searchable; the page's font renders it.
    "svg.fonttype": "none",
    # Clip-path ids are hashes salted with this: same input, same SVG.
    "svg.hashsalt": "milvus-harness",
}


@dataclass(frozen=True)
class Chart:
    """One rendered chart: its stable name (file stem and SVG id prefix), title and figure."""

    name: str
    title: str
    figure: Figure

    @property
    def gids(self) -> set[str]:
        """The gids set on this chart's artists (kept verbatim as SVG ids)."""
        return {a.get_gid() for a in self.figure.findobj(lambda a: a.get_gid() is not None)}

    def svg(self) -> str:
        """The chart as an inline <svg> element for an HTML page."""
        return to_svg(self.figure, prefix=self.name, keep=self.gids, title=self.title)

    def save_png(self, path: Path, title: str = "", dpi: int = 110) -> Path:
        """Write the chart as a PNG (Markdown viewers do not all show inline SVG).

        `title` is drawn on the PNG only: the PNG travels alone (pasted into an issue), the
        SVG sits under a heading of its page.
        """
        with matplotlib.rc_context(STYLE):
            heading = self.figure.suptitle(title, x=0.01, ha="left", fontweight="bold") if title else None
            try:
                self.figure.savefig(path, format="png", dpi=dpi, facecolor="white")
            finally:
                if heading is not None:
                    heading.remove()
        return path


def new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure of its own (width x height inches) with one axes; no pyplot registry involved."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)  # PNG through Agg; SVG switches canvas by format
    return figure, figure.add_subplot()


def unit_for(top: float) -> tuple[float, str]:
    """GiB for gigabyte-scale charts, MiB below."""
    return (GIB, "GiB") if top >= GIB else (MIB, "MiB")


def legend_above(ax: Axes, max_cols: int = 3) -> None:
    """The legend in rows above the plot, where it hides no data, read left to right."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    ncols = min(len(handles), max_cols)
    # matplotlib fills a legend column by column; reorder so that rows read in plot order
    order = [i for c in range(ncols) for i in range(c, len(handles), ncols)]
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="lower left",
              bbox_to_anchor=(0, 1.01), ncols=ncols, borderaxespad=0, handlelength=2.2,
              columnspacing=1.4)


def segments(samples: Sequence[Any], rows: Sequence[int]) -> Iterator[list[tuple[int, Any]]]:
    """Split a component's samples where its restart count changes (a new process)."""
    segment: list[tuple[int, Any]] = []
    for sample, acked in zip(samples, rows):
        if segment and sample.restarts != segment[-1][1].restarts:
            yield segment
            segment = []
        segment.append((acked, sample))
    if segment:
        yield segment


def thin(xs: list[float], ys: list[float], max_points: int = 1500) -> tuple[list[float], list[float]]:
    """At most about max_points points, keeping each bucket's min and max (peaks matter)."""
    if len(xs) <= max_points:
        return xs, ys
    size = math.ceil(len(xs) / (max_points / 2))
    out_x: list[float] = []
    out_y: list[float] = []
    for start in range(0, len(xs), size):
        bucket = [(x, y) for x, y in zip(xs[start:start + size], ys[start:start + size]) if not math.isnan(y)]
        if not bucket:
            out_x.append(xs[start])
            out_y.append(math.nan)  # keep a gap a gap
            continue
        low = min(bucket, key=lambda p: p[1])
        high = max(bucket, key=lambda p: p[1])
        for x, y in sorted({low, high}):
            out_x.append(x)
            out_y.append(y)
    return out_x, out_y


def trim(value: float) -> str:
    """1.0 -> '1', 2.5 -> '2.5': axis labels without trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def count(value: float) -> str:
    """650000 -> '650k', 6680000 -> '6.68M'."""
    if abs(value) >= 1e6:
        return trim(value / 1e6) + "M"
    if abs(value) >= 1e3:
        return trim(value / 1e3) + "k"
    return trim(value)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


_ID_REF = re.compile(r'(\bid="|url\(#|href="#)([^")]+)')


def to_svg(figure: Figure, prefix: str, keep: set[str] | None = None, title: str = "") -> str:
    """An inline <svg> element: no XML prolog or metadata, ids unique within the page.

    matplotlib numbers its ids per figure (axes_1, line2d_1, ...), so several charts on one
    page would repeat them; every id but the gids in `keep` is prefixed with `prefix`.
    """
    buffer = io.StringIO()
    with matplotlib.rc_context(STYLE):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, facecolor="white")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)
    keep = keep or set()
    svg = _ID_REF.sub(lambda m: m.group(1) + (m.group(2) if m.group(2) in keep else f"{prefix}-{m.group(2)}"),
                      svg)
    # size from the page's CSS; the viewBox keeps the aspect ratio
    svg = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"',
                 lambda m: f'<svg {m.group(1)}class="chart" role="img" aria-label="{_attr(title)}"',
                 svg, count=1)
    return svg.strip()
