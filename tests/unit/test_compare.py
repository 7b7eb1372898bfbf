"""`compare` on run directories captured from real runs (tests/fixtures/runs/real-*)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.compare.two_runs import compare_runs
from harness.errors import UsageError

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
FAIL = RUNS / "real-oom-2.3.5"
PASS_A, PASS_B = RUNS / "real-pass-a", RUNS / "real-pass-b"


def _summary(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text())


def _row(comparison, name):
    return next(r for r in comparison.rows if r.name == name)


def test_fail_against_pass_is_worse():
    comparison = compare_runs(PASS_A, FAIL)
    assert comparison.exit_code == 1
    assert _row(comparison, "verdict").change == "worse"
    oom = _row(comparison, "rows at the first OOM kill")
    assert oom.a == "no OOM kill" and oom.change == "worse"
    assert oom.b == f"{_summary(FAIL)['first_oom']['rows_acked_before']:,}"
    assert _row(comparison, "peak / limit").change == "worse"  # 100 % of 2 GiB against a fraction of 8 GiB
    assert "the memory limits differ" in comparison.notes


def test_pass_against_fail_is_better():
    comparison = compare_runs(FAIL, PASS_A)
    assert _row(comparison, "verdict").change == "better"
    assert _row(comparison, "rows at the first OOM kill").change == "better"
    # The PASS grew faster per 100k rows than the FAIL did before its OOM kill: that is flagged
    # at 1.1, and passes at a factor above the ratio.
    growth = _row(comparison, "memory growth (MB per 100k rows)")
    assert growth.change == "worse" and comparison.exit_code == 1 and growth.ratio > 1.1
    assert compare_runs(FAIL, PASS_A, factor=growth.ratio * 1.01).exit_code == 0


def test_two_pass_runs_within_the_factor():
    # Two identical runs on the loaded 2-core machine that captured them differ by 1.27 in
    # insert rate (fixtures' README): 1.5 is the factor such a machine needs.
    comparison = compare_runs(PASS_A, PASS_B, factor=1.5)
    assert [r.name for r in comparison.worse] == [] and comparison.exit_code == 0
    assert comparison.notes == ["top allocation sites: neither run has heap profiles"]  # same settings


def test_the_factor_decides_what_moved():
    """Just below the observed rate ratio the same pair is worse (or better); just above it, not."""
    a, b = (_summary(p)["inserts"]["rows_per_s"] for p in (PASS_A, PASS_B))
    ratio = max(a, b) / min(a, b)
    assert ratio > 1.0
    tight = _row(compare_runs(PASS_A, PASS_B, factor=(1 + ratio) / 2), "insert rows/s")
    loose = _row(compare_runs(PASS_A, PASS_B, factor=ratio * 1.01), "insert rows/s")
    assert tight.change == ("worse" if b < a else "better") and loose.change == ""
    assert tight.ratio == pytest.approx(b / a)


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    with pytest.raises(UsageError, match="not a finished run directory"):
        compare_runs(PASS_A, tmp_path)
    with pytest.raises(UsageError, match="at least 1.0"):
        compare_runs(PASS_A, PASS_B, factor=0.9)
    result = subprocess.run([sys.executable, "-m", "harness.cli", "compare", str(PASS_A), str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "RUN_B" in result.stderr


def test_cli_prints_the_table_and_exits_1_on_worse():
    result = subprocess.run([sys.executable, "-m", "harness.cli", "compare", str(PASS_A), str(FAIL)],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 1, result.stderr
    assert "rows at the first OOM kill" in result.stdout and "worse past the factor" in result.stdout
