"""`milvus-harness report` on a plain-locust run's directory: its acks.jsonl (and the samples and
events `milvus-harness watch --out` wrote there) judged by the scenario's rules; the rows were
not checked, so the verdict is never PASS."""

import json
import subprocess
import sys

from harness.rundir import read_json


def _acks(path, batches, t0=1_000.0):
    lines = [{"t": t0 + 2 * k + 1.5, "t_start": t0 + 2 * k, "batch": k, "first_pk": k * 10_000,
              "last_pk": k * 10_000 + 9_999, "rows": 10_000, "ok": True, "latency_ms": 1500.0, "worker": "h:1:1"}
             for k in range(batches)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _report(*args):
    return subprocess.run([sys.executable, "-m", "harness.cli", "report", *args], capture_output=True, text=True,
                          timeout=300)


def test_a_plain_locust_run_is_judged_inconclusive_without_its_row_check(tmp_path):
    _acks(tmp_path / "acks.jsonl", 20)
    done = _report(str(tmp_path), "--scenario", "smoke")
    assert done.returncode == 0, done.stderr
    summary = read_json(tmp_path / "summary.json")
    assert summary["verdict"] == "INCONCLUSIVE" and "not checked against Milvus" in summary["reasons"][0]
    assert summary["rows"]["acked"] == summary["rows"]["planned"] == 200_000
    assert summary["duration_s"] == 39.5  # first send to last ack, not until the report ran
    assert "INCONCLUSIVE" in (tmp_path / "report.md").read_text()
    # Rendering again keeps the judged summary.
    assert _report(str(tmp_path)).returncode == 0 and read_json(tmp_path / "summary.json") == summary


def test_an_oom_kill_that_watch_recorded_fails_it(tmp_path):
    _acks(tmp_path / "acks.jsonl", 5)
    (tmp_path / "events.jsonl").write_text(json.dumps(
        {"t": 1_004.0, "component": "streamingnode-0", "type": "OOMKilled", "detail": "OOMKilled (exit 137)"}) + "\n")
    assert _report(str(tmp_path), "--scenario", "smoke").returncode == 0
    summary = read_json(tmp_path / "summary.json")
    assert summary["verdict"] == "FAIL" and "OOM" in summary["reasons"][0]


def test_a_directory_with_neither_is_refused_in_one_line(tmp_path):
    done = _report(str(tmp_path))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "nor a plain-locust run's (no acks.jsonl)" in done.stderr
