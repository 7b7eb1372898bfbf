"""A real bisect across published embedded Milvus versions (slow tier: `pytest -m slow`).

The rule is insert latency: with 16 shards x 16 partition-key partitions and no ARRAY field
(scenario no-arrays), every 2.2.x measured here answered a 50,000-row insert in about
0.4 to 0.75 s and 2.3.0 in about 0.7 to 1.2 s, about 1.5x slower under the same machine load
(docs/bisect.md has the figures and commands). A p50 bound between the two must put the
first bad version at 2.3.0. Latency depends on what else the machine runs, so the bound can
be set with MILVUS_HARNESS_BISECT_P50_MS; a wrong bound shows as good not PASSing or bad not
FAILing (exit 2), never as a wrong answer from the endpoints.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import psutil
import pytest

from harness import cli
from harness.rundir import read_json

pytestmark = [pytest.mark.slow, pytest.mark.milvus]

P50_BOUND_MS = os.environ.get("MILVUS_HARNESS_BISECT_P50_MS", "650")


def test_real_bisect_finds_where_inserts_got_slower(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = tmp_path / "reports"
    args = ["bisect", "--good", "2.2.14", "--bad", "2.3.0", "--scenario", "no-arrays",
            "--set", "total_rows=500000", "--set", f"rules.max_insert_p50_ms={P50_BOUND_MS}",
            "--memory-limit", "8GiB", "--report-dir", str(reports), "--id", "real"]
    code = cli.main(args)
    out = capsys.readouterr().out
    summary = read_json(reports / "bisect-real" / "summary.json")
    tested = {row["version"]: row for row in summary["tested"]}
    assert code == 0, (out, {v: (r["verdict"], r["reasons"]) for v, r in tested.items()})
    assert summary["first_bad"]["version"] == "2.3.0" and summary["last_good"]["version"] == "2.2.16"
    assert "first bad version: 2.3.0 (last good: 2.2.16)" in out
    # The range 2.2.14, 2.2.15, 2.2.16, 2.3.0: the endpoints and ceil(log2 4) = 2 midpoints at most.
    assert summary["range"] == ["2.2.14", "2.2.15", "2.2.16", "2.3.0"]
    assert set(tested) <= set(summary["range"]) and len(tested) <= 4
    assert tested["2.3.0"]["verdict"] == "FAIL" and tested["2.2.16"]["verdict"] == "PASS"
    assert any(re.search(r"insert latency p50 [\d,]+ ms \(bound", r) for r in tested["2.3.0"]["reasons"])
    for row in tested.values():
        assert row["run_dir"] and (Path(row["run_dir"]) / "summary.json").exists()
    assert (reports / "bisect-real" / "index.html").exists()
    assert psutil.Process().children(recursive=True) == []  # every server stopped
    # The same bisect again reuses every run and starts nothing.
    assert cli.main([*args[:-1], "again"]) == 0
    again = read_json(reports / "bisect-again" / "summary.json")
    assert all(row["reused"] for row in again["tested"])
    assert again["first_bad"]["version"] == "2.3.0"
