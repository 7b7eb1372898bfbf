"""`milvus-harness run` end to end on real embedded Milvus, run as a process."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from harness.profiles import sites, store
from harness.rundir import read_jsonl

pytestmark = pytest.mark.milvus


def _run(cli, tmp_path: Path, *args: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess, Path]:
    report_dir = tmp_path / "reports"
    result = cli.run("run", "--report-dir", str(report_dir), *args, timeout=timeout)
    runs = sorted(report_dir.iterdir()) if report_dir.exists() else []
    assert len(runs) == 1, result.stdout + result.stderr
    return result, runs[0]


def test_default_run_reproduces_the_oom(tmp_path, milvus_version, harness_cli):
    began = time.time()
    result, run_dir = _run(harness_cli, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "FAIL" and summary["status"] == "FINISHED"
    assert "OOM-killed" in summary["reasons"][0] and "acked rows" in summary["reasons"][0]
    assert summary["first_oom"]["rows_acked_before"] >= 100_000
    assert summary["components"]["standalone"]["oom_kills"] == 1
    assert summary["time_to_verdict_s"] < time.time() - began
    # Decided by the OOM kill, not by the check after the load.
    assert summary["time_to_verdict_basis"] == "the first OOMKilled (standalone) failed the run"
    assert summary["time_to_verdict_s"] == round(summary["first_oom"]["t"] - summary["started"], 1)
    # the acked rows were checked after the server came back
    assert summary["rows"]["verified"] == summary["rows"]["acked"] and summary["rows"]["lost"] == 0
    assert "time to verdict" in result.stdout and str(run_dir) in result.stdout.splitlines()[-1]
    for name in ("run.json", "samples.jsonl", "events.jsonl", "acks.jsonl", "report.html", "report.md",
                 "junit.xml", "locust_stats.csv", "locust.html", "logs/milvus-stdout.log"):
        assert (run_dir / name).exists(), name
    assert any(e["type"] == "OOMKilled" for e in read_jsonl(run_dir / "events.jsonl"))
    # Where the memory went, read from memory.stat and /metrics before the kill.
    split = summary["components"]["standalone"]["memory_split"]
    assert split["sources"] == ["/metrics", "cgroup memory.stat"]
    peak = split["at_peak"]
    assert peak["t"] <= summary["first_oom"]["t"]
    for part in ("page_cache", "outside_go_heap", "go_heap_other", "write_buffer", "rss", "go_heap_inuse"):
        assert isinstance(peak[part], int), part
    assert peak["go_heap_other"] + peak["write_buffer"] == peak["go_heap_inuse"] <= peak["rss"]
    page = (run_dir / "report.html").read_text()
    assert "Where the memory went" in page and 'id="chart-memory-split"' in page
    assert all(f'id="split-{p}"' in page for p in ("page_cache", "outside_go_heap", "go_heap_other", "write_buffer"))
    assert "## Where the memory went" in (run_dir / "report.md").read_text()
    assert (run_dir / "memory-split.png").stat().st_size > 0
    run = json.loads((run_dir / "run.json").read_text())
    assert run["facts"]["isolation"].startswith("cgroup") and run["key"]["memory_limit_bytes"] == 2 * 2**30
    # Heap profiles on the way up, all before the kill; the evidence's sites add up to its heap.
    captured = {c.label: c for c in store.captures(run_dir)}
    oom_at = summary["first_oom"]["t"]
    assert {"50", "80"} <= set(captured) and all(c.t <= oom_at for c in captured.values()), captured
    evidence, first = store.evidence(run_dir)
    assert first.label == "50" and evidence.label in ("80", "95")
    assert sites.total_of(store.top_sites(run_dir, 5)) == evidence.profile().total() > 0


def test_eight_gib_passes_and_verifies_every_row(tmp_path, milvus_version, harness_cli):
    result, run_dir = _run(harness_cli, tmp_path, "--memory-limit", "8GiB", "--set", "total_rows=300000")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "PASS"
    assert summary["rows"] == {**summary["rows"], "planned": 300_000, "acked": 300_000, "verified": 300_000, "lost": 0}
    # Nothing was in doubt: the persisted row count decided, with no index and no load.
    check = summary["rows"]["check"]
    assert check["check"] == "rows" and check["fast"] is True and check["doubts"] == [], check
    assert check["why"].startswith("fast path: every insert was acked at its first try")
    assert summary["rows"]["persisted"] == 300_000 and "count_queries" not in summary["rows"]
    # The verdict was known when the check ended, not when the load stopped; the phases are recorded.
    events = list(read_jsonl(run_dir / "events.jsonl"))
    load_stopped = next(e["t"] for e in events if e["type"] == "LoadStopped")
    verify_finished = next(e["t"] for e in events if e["type"] == "VerifyFinished")
    assert summary["time_to_verdict_basis"] == "the end of the check of the acked rows"
    assert summary["time_to_verdict_s"] == round(verify_finished - summary["started"], 1)
    assert summary["load_s"] > 0 and 0 < summary["verify_s"] < summary["after_load_s"]
    assert summary["after_load_s"] == round(summary["ended"] - load_stopped, 1)
    print(f"load end to the end of the run: {summary['after_load_s']} s (verification {summary['verify_s']} s)")
    stats = (run_dir / "locust_stats.csv").read_text()
    assert "insert 50000 rows" in stats
    assert "end" in {c.label for c in store.captures(run_dir)}  # the heap a PASS left


def test_workers_and_users_insert_every_batch_exactly_once(tmp_path, milvus_version, harness_cli):
    result, run_dir = _run(harness_cli, tmp_path, "--scenario", "smoke", "--workers", "2", "--users", "4",
                           "--set", "total_rows=300000")
    assert result.returncode == 0, result.stdout + result.stderr
    acks = [a for a in read_jsonl(run_dir / "acks.jsonl") if a["ok"]]
    batches = sorted(a["batch"] for a in acks)
    assert batches == list(range(30))  # every batch once: none twice, none skipped
    assert len({a["worker"].rsplit(":", 1)[0] for a in acks}) == 2  # both worker processes inserted
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rows"]["verified"] == 300_000 and summary["rows"]["lost"] == 0
