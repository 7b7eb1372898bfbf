"""A Locust user's directory holds a locust.conf, which Locust reads by itself: `milvus-harness run`
started there still inserts what it was told (its Locust runs in a directory of its own).
Apart from test_plain_locust.py, whose module-wide server would count as left running here."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from harness.rundir import read_jsonl

pytestmark = pytest.mark.milvus


def test_a_locust_conf_in_the_users_directory_does_not_change_a_harness_run(tmp_path, milvus_version, no_leftovers):
    """Locust reads ./locust.conf by itself; `milvus-harness run` from a directory holding one
    (as a Locust user's may) still inserts what the harness was told, and writes nothing there."""
    (tmp_path / "locust.conf").write_text("csv = out\nusers = 7\nscenario = seed\nset = [total_rows=100000]\n")
    report_dir = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--report-dir", str(report_dir),
                             "--milvus-version", milvus_version, "--scenario", "smoke", "--set", "total_rows=50000",
                             "--users", "1", "--workers", "1"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # it stops its Milvus and Locust itself
            proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    [run_dir] = list(report_dir.iterdir())
    ok = [a for a in read_jsonl(run_dir / "acks.jsonl") if a["ok"]]
    assert sorted(a["batch"] for a in ok) == list(range(5)) and {a["rows"] for a in ok} == {10_000}
    assert not list(tmp_path.glob("out*")), "Locust wrote the user's locust.conf's --csv files"
