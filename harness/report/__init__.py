"""Reports of a run, rendered from its run directory alone (docs/design.md, "Contracts").

`render_report(run_dir)` writes report.md (with memory.png), report.html and junit.xml. It
reads only files, so `milvus-harness report RUN_DIR` renders a finished, aborted or
half-written run again, on any machine.
"""

from __future__ import annotations

from pathlib import Path

from harness.report.charts import build_charts
from harness.report.model import RunReport, load_run
from harness.report.html import render_html
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown
from harness.rundir import write_text

__all__ = ["RunReport", "load_run", "render_report"]

MEMORY_PNG = "memory.png"
MEMORY_SPLIT_PNG = "memory-split.png"


def render_report(run_dir: Path, with_charts: bool = True) -> list[Path]:
    """Write report.md, report.html and junit.xml into `run_dir` and return their paths.

    memory.png and memory-split.png, the charts report.md links to, are written next to them
    when there are samples to draw. Without charts (a run interrupted while rendering) the pages take
    well under a second; `milvus-harness report RUN_DIR` draws them later.
    """
    run_dir = Path(run_dir)
    report = load_run(run_dir)
    charts = build_charts(report) if with_charts else []
    pngs = {}
    for name, file_name, what in (("memory", MEMORY_PNG, "memory over time"),
                                  ("memory-split", MEMORY_SPLIT_PNG, "where the memory went")):
        chart = next((c for c in charts if c.name == name), None)
        png = run_dir / file_name
        if chart is not None:
            chart.save_png(png, title=f"{report.banner}: {report.scenario_name} on Milvus "
                                      f"{report.milvus_version or '?'}, {what}")
            pngs[name] = file_name
        elif png.exists():
            png.unlink()  # a stale chart from an earlier rendering would contradict the report
    outputs = (
        (run_dir / "report.md", render_markdown(report, pngs.get("memory"), pngs.get("memory-split"))),
        (run_dir / "report.html", render_html(report, charts)),
        (run_dir / "junit.xml", render_junit(report)),
    )
    for path, text in outputs:
        write_text(path, text)
    return [path for path, _ in outputs]

