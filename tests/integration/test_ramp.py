"""The default load ramps the users until the server is saturated; --users pins them (real embedded Milvus)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.rundir import read_jsonl

pytestmark = pytest.mark.milvus


def _run(cli, tmp_path: Path, *args: str) -> tuple[str, Path]:
    report_dir = tmp_path / "reports"
    result = cli.run("run", "--report-dir", str(report_dir), "--scenario", "smoke", *args)
    runs = sorted(report_dir.iterdir()) if report_dir.exists() else []
    assert result.returncode == 0 and len(runs) == 1, result.stdout + result.stderr
    return result.stdout, runs[0]


def _most_inserts_in_flight(acks: list[dict]) -> int:
    """The most inserts the server had at once, from each attempt's send and answer times."""
    edges = sorted([(a["t_start"], 1) for a in acks] + [(a["t"], -1) for a in acks], key=lambda e: (e[0], e[1]))
    most = current = 0
    for _, change in edges:
        current += change
        most = max(most, current)
    return most


def test_without_users_the_run_ramps_and_holds_its_best_step(tmp_path, milvus_version, harness_cli):
    out, run_dir = _run(harness_cli, tmp_path, "--set", "total_rows=500000")
    summary = json.loads((run_dir / "summary.json").read_text())
    ramp = summary["concurrency"]
    assert ramp["mode"] == "ramp", ramp
    steps = ramp["steps"]
    rates = [s["rows_per_s"] for s in steps]
    assert [s["users"] for s in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 2
    acks = list(read_jsonl(run_dir / "acks.jsonl"))
    if ramp["settled"]:
        # The rule: every step but the last grew by at least 10 % over the one before; the last
        # did not; the run holds the best step.
        assert all(rates[i] >= 1.1 * rates[i - 1] for i in range(1, len(rates) - 1)), rates
        assert rates[-1] < 1.1 * rates[-2], rates
        assert ramp["users"] == max(range(len(rates)), key=lambda i: rates[i]) + 1
        assert f"{ramp['users']} user" in out and "the ramp's best step" in out
        said = f"{ramp['users']} user{'s' * (ramp['users'] != 1)}, the ramp's best step"
    else:
        # A server still gaining at every step when the 50 batches ran out (a quiet machine
        # can be): every step grew by 10 % or more, and the run says which step it was on.
        assert all(rates[i] >= 1.1 * rates[i - 1] for i in range(1, len(rates))), rates
        assert ramp["users"] == len(steps) + 1
        said = f"the load ended while the ramp measured {ramp['users']} users"
    # Locust really ran each measured step's users: that many inserts were in flight at once.
    assert _most_inserts_in_flight(acks) >= len(steps)
    # The batches stay those of a pinned run: each once, none skipped.
    assert sorted(a["batch"] for a in acks if a["ok"]) == list(range(50))
    assert f"| **Concurrency** | {said}" in (run_dir / "report.md").read_text()


def test_with_users_the_run_does_not_ramp(tmp_path, milvus_version, harness_cli):
    out, run_dir = _run(harness_cli, tmp_path, "--users", "2", "--set", "total_rows=100000")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["concurrency"] == {"mode": "pinned", "users": 2}
    assert not (run_dir / "ramp.jsonl").exists()
    acks = list(read_jsonl(run_dir / "acks.jsonl"))
    assert _most_inserts_in_flight(acks) == 2
    assert "2 users (pinned)" in out
