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


def render_report(run_dir: Path, with_charts: bool = True) -> list[Path]:
    """Write report.md, report.html and junit.xml into `run_dir` and return their paths.

    memory.png, the memory chart report.md links to, is written next to them when there are
    memory samples to draw. Without charts (a run interrupted while rendering) the pages take
    well under a second; `milvus-harness report RUN_DIR` draws them later.
    """
    run_dir = Path(run_dir)
    report = load_run(run_dir)
    charts = build_charts(report) if with_charts else []
    memory = next((c for c in charts if c.name == "memory"), None)
    png = run_dir / MEMORY_PNG
    if memory is not None:
        memory.save_png(png, title=f"{report.banner}: {report.scenario_name} on Milvus "
                                   f"{report.milvus_version or '?'}, memory over time")
    elif png.exists():
        png.unlink()  # a stale chart from an earlier rendering would contradict the report
    outputs = (
        (run_dir / "report.md", render_markdown(report, MEMORY_PNG if memory is not None else None)),
        (run_dir / "report.html", render_html(report, charts)),
        (run_dir / "junit.xml", render_junit(report)),
    )
    for path, text in outputs:
        write_text(path, text)
    return [path for path, _ in outputs]

