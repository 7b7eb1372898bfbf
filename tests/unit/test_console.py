"""The tables the CLI prints, all from harness/console.py: the matrix's cells and the cluster's pods."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from harness.compare.matrix import Cell, CellResult, MatrixResult
from harness.console import print_matrix, print_pods
from harness.judge.verdict import Verdict

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
