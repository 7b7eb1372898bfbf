"""`milvus-harness ui --workers`: two runs in a row through the web UI's /swarm, each inserting
every batch exactly once across the worker processes (every run gets its own dispenser)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from harness.rundir import read_jsonl

pytestmark = [pytest.mark.ui, pytest.mark.milvus]


def _run_to_the_end(server, rows: int) -> Path:
    form = {"user_count": "4", "spawn_rate": "4", "host": "", "total_rows": str(rows), "batch_rows": "10000",
            "shards": "2", "partitions": "4"}
    started = requests.post(server.url + "/swarm", data=form, timeout=300).json()
    assert started["success"] is True, started
    deadline = time.monotonic() + 300
    while True:
        run = requests.get(server.url + "/harness/memory", timeout=30).json()["run"]
        if run and run["rows"]["planned"] == rows and "html" in (run.get("report_urls") or {}):
            return Path(run["run_dir"])
        assert time.monotonic() < deadline, run
        time.sleep(1)


def test_two_runs_with_two_workers_insert_every_batch_once(no_leftovers, milvus_version, ui_server):
    server = ui_server("--scenario", "smoke", "--milvus-version", milvus_version, "--workers", "2")
    for rows in (200_000, 100_000):
        run_dir = _run_to_the_end(server, rows)
        acks = [a for a in read_jsonl(run_dir / "acks.jsonl") if a["ok"]]
        assert sorted(a["batch"] for a in acks) == list(range(rows // 10_000))
        assert len({a["worker"].rsplit(":", 1)[0] for a in acks}) == 2  # both worker processes inserted
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["verdict"] == "PASS" and summary["rows"]["verified"] == rows
    assert len(server.runs()) == 2
