"""The tables the CLI prints, all from harness/console.py: a run's result, the matrix's cells and the cluster's pods."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from harness.compare.matrix import Cell, CellResult, MatrixResult
from harness.console import print_matrix, print_pods, print_result
from harness.judge.verdict import Verdict
from harness.report.model import RunReport
from harness.report.tables import rows_table
from harness.run.lifecycle import RunResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


def _recording() -> Console:
    return Console(record=True, width=200, no_color=True)


def test_the_matrix_table_has_a_row_per_cell_with_its_figures(tmp_path):
    oom = json.loads((FIXTURES / "oom-kill" / "summary.json").read_text())
    passed = json.loads((FIXTURES / "pass" / "summary.json").read_text())
    result = MatrixResult(tmp_path / "matrix-t1", [
        CellResult(Cell("2.3.5", (("shards", "1"),)), Verdict.FAIL, FIXTURES / "oom-kill", oom),
        CellResult(Cell("2.3.5", (("shards", "4"),)), Verdict.PASS, FIXTURES / "pass", passed, reused=True),
    ])
    console = _recording()
    print_matrix(console, result, ["shards"])
    text = console.export_text()
    rows = [line for line in text.splitlines() if "2.3.5" in line]
    assert len(rows) == 2
    assert "FAIL" in rows[0] and f"{oom['first_oom']['rows_acked_before']:,}" in rows[0]
    assert "PASS (reused)" in rows[1]
    assert "matrix: 2 cells: 1 PASS, 1 FAIL" in text
    assert f"report: {tmp_path / 'matrix-t1' / 'index.html'}" in text


def test_the_pod_table_lists_pods_by_name():
    pods = [{"name": "milvus-proxy-1", "component": "proxy", "phase": "Running", "ready": True, "restarts": 0,
             "waiting": None},
            {"name": "milvus-datanode-0", "component": "datanode", "phase": "Running", "ready": False,
             "restarts": 3, "waiting": "CrashLoopBackOff"}]
    console = _recording()
    print_pods(console, "kind-x / default / release milvus", pods)
    lines = [line for line in console.export_text().splitlines() if "milvus-" in line and "release" not in line]
    assert len(lines) == 2 and "datanode" in lines[0] and "proxy" in lines[1]
    assert "no" in lines[0] and "3" in lines[0] and "CrashLoopBackOff" in lines[0]


def test_rows_present_twice_are_shown_apart_from_the_verified_rows(tmp_path):
    summary = json.loads((FIXTURES / "pass" / "summary.json").read_text())
    console = _recording()
    print_result(console, RunResult(Verdict.PASS, "FINISHED", tmp_path, summary))
    assert "present twice" not in console.export_text()
    summary["rows"].update(duplicated=27_369, duplicated_batches=[3, 9, 11])
    console = _recording()
    print_result(console, RunResult(Verdict.PASS, "FINISHED", tmp_path, summary))
    [line] = [line for line in console.export_text().splitlines() if "acked of" in line]
    assert f"verified {summary['rows']['verified']:,}; 27,369 present twice (retried inserts)" in line
    table = dict(rows_table(RunReport(tmp_path, {}, summary)))
    assert table["Present twice"].startswith("27,369 rows of 3 retried batches")
