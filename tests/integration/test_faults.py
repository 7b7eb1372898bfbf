"""Faults on real embedded Milvus: injected kills and pauses, and the harness interrupted in
each phase (partial report, exit 130/143, nothing left running)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.rundir import read_jsonl

pytestmark = pytest.mark.milvus


def _start(report_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--report-dir", str(report_dir), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _only_run(report_dir: Path) -> Path:
    runs = list(report_dir.iterdir())
    assert len(runs) == 1
    return runs[0]


def _wait_for(check, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_injected_kill_is_marked_apart_and_the_load_carries_on(tmp_path, milvus_version, no_leftovers):
    proc = _start(tmp_path, "--scenario", "smoke", "--inject", "kill@rows=60000", "--restart-backoff", "2s")
    out, err = proc.communicate(timeout=600)
    run_dir = _only_run(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    events = list(read_jsonl(run_dir / "events.jsonl"))
    types = [e["type"] for e in events]
    assert "Injected" in types and "Restarted" in types and "OOMKilled" not in types
    exited = [e for e in events if e["type"] == "Exited"]
    assert exited and exited[0]["data"]["injected"] is True
    comp = summary["components"]["standalone"]
    assert comp["oom_kills"] == 0 and comp["injected_kills"] == 1 and comp["restarts"] == 1
    # the load went on after the kill: rows were acked after it, and no acked row was lost
    kill_t = next(e["t"] for e in events if e["type"] == "Injected")
    assert any(a["ok"] and a["t"] > kill_t for a in read_jsonl(run_dir / "acks.jsonl"))
    assert summary["rows"]["lost"] == 0 and summary["rows"]["verified"] == summary["rows"]["acked"]
    assert summary["verdict"] == "PASS" and proc.returncode == 0, out + err


def test_injected_pause_is_recorded_and_survived(tmp_path, milvus_version, no_leftovers):
    proc = _start(tmp_path, "--scenario", "smoke", "--inject", "stop@3s:5s")
    out, err = proc.communicate(timeout=600)
    run_dir = _only_run(tmp_path)
    injected = [e for e in read_jsonl(run_dir / "events.jsonl") if e["type"] == "Injected"]
    assert [e["data"]["action"] for e in injected] == ["stop", "cont"]
    assert 4.5 < injected[1]["t"] - injected[0]["t"] < 8
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["components"]["standalone"]["restarts"] == 0
    assert summary["rows"]["acked"] > 0 and summary["rows"]["lost"] == 0, out + err


@pytest.mark.parametrize("phase,sig,code", [
    ("start", signal.SIGTERM, 143),
    ("load", signal.SIGINT, 130),
    ("verify", signal.SIGINT, 130),
])
def test_interrupt_in_each_phase_leaves_a_partial_report_and_nothing_running(
        phase, sig, code, tmp_path, milvus_version, no_leftovers):
    proc = _start(tmp_path, "--scenario", "smoke", "--set", "total_rows=400000")
    try:
        if phase == "start":
            _wait_for(lambda: any(tmp_path.glob("*/run.json")))
        elif phase == "load":
            _wait_for(lambda: any(p.stat().st_size for p in tmp_path.glob("*/acks.jsonl")))
        else:
            _wait_for(lambda: any(e["type"] == "LoadStopped" for p in tmp_path.glob("*/events.jsonl")
                                  for e in read_jsonl(p)))
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, out + err
    run_dir = _only_run(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ABORTED" and summary["verdict"] == "ABORTED"
    assert (run_dir / "report.html").exists()
    assert "Traceback" not in err


def test_interrupt_during_install_removes_the_half_install(tmp_path, milvus_version, no_leftovers):
    cache = tmp_path / "cache"
    env = {**__import__("os").environ, "MILVUS_HARNESS_CACHE": str(cache)}
    report_dir = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--milvus-version", milvus_version,
                             "--report-dir", str(report_dir)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (cache / "milvus" / milvus_version).exists(), timeout=120)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, out + err
    assert not (cache / "milvus" / milvus_version / "install.json").exists()
    assert not (cache / "milvus" / milvus_version).exists()  # no half install left to trust later
    summary = json.loads((_only_run(report_dir) / "summary.json").read_text())
    assert summary["status"] == "ABORTED"
