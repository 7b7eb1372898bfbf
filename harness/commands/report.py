"""`milvus-harness report`: render report.md, report.html and junit.xml again from a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import UsageError

EXAMPLES = """examples:
  milvus-harness report reports/20261129-164530-seed-2.3.5
  milvus-harness report reports/RUN-ID                           # the pages again; nothing is re-run"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render report.md, report.html and junit.xml again from a run directory",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a run directory, e.g. reports/20261127-181500-seed-2.3.5")
    p.set_defaults(func=lambda args: run(Path(args.run_dir)))


def run(run_dir: Path) -> int:
    """Render the reports of a finished run directory and print the files written."""
    from harness.report import render_report

    if not (run_dir / "summary.json").exists():
        raise UsageError(f"{run_dir} is not a finished run directory (no summary.json)")
    for written in render_report(run_dir):
        print(written)
    return 0
