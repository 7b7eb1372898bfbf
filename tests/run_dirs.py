"""The one helper that builds run directories for tests: scripted ones with only the files a test
gives, and scratch copies of the checked-in fixture runs (tests/fixtures/runs/)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.rundir import RunDir, write_json

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runs"
#: What `milvus-harness report` renders into a run directory.
RENDERED = ("report.md", "report.html", "junit.xml", "memory.png", "memory-split.png")


def _jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def write_run_dir(path: Path, *, run: Mapping[str, Any] | None = None, summary: Mapping[str, Any] | None = None,
                  acks: Iterable[Mapping[str, Any]] | None = None,
                  samples: Iterable[Mapping[str, Any]] | None = None,
                  events: Iterable[Mapping[str, Any]] | None = None,
                  files: Mapping[str, str] | None = None, summary_mtime_ns: int | None = None) -> Path:
    """A run directory at `path` as the harness writes one, holding only what is given:
    run.json and summary.json (through rundir.write_json), the three JSON-lines files, and
    any other `files` by name."""
    path.mkdir(parents=True, exist_ok=True)
    layout = RunDir(path)
    if run is not None:
        write_json(layout.run_json, dict(run))
    for target, records in ((layout.acks, acks), (layout.samples, samples), (layout.events, events)):
        if records is not None:
            _jsonl(target, records)
    for name, text in (files or {}).items():
        (path / name).write_text(text)
    if summary is not None:
        write_json(layout.summary, dict(summary))
        if summary_mtime_ns is not None:
            os.utime(layout.summary, ns=(summary_mtime_ns, summary_mtime_ns))
    return path


def copy_fixture(name: str, parent: Path) -> Path:
    """A scratch copy of the fixture run `name` under `parent`, without reports rendered into it."""
    target = parent / name
    shutil.copytree(FIXTURES / name, target, ignore=shutil.ignore_patterns(*RENDERED))
    return target


def only_run(report_dir: Path) -> Path:
    """The one run directory a command made in `report_dir` (fails when there are more or none)."""
    runs = [p for p in report_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]
