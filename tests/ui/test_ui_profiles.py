"""Heap profiles of a run started in the web UI, with real embedded Milvus: captured by the same
listeners as `run` (run/listeners.py), stored in the run's directory, and read by its report."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
import requests

from harness.profiles import sites, store
from harness.profiles.capture import HEAP_PROFILE, THRESHOLDS
from harness.rundir import read_jsonl
from waiting import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.milvus]


def _events(run_dir: Path) -> list[dict]:
    return list(read_jsonl(run_dir / "events.jsonl")) if (run_dir / "events.jsonl").exists() else []


def test_a_ui_run_captures_heap_profiles_and_its_report_names_the_sites(no_leftovers, milvus_version, ui_server):
    server = ui_server("--scenario", "smoke", "--milvus-version", milvus_version, "--profile-every", "10s")
    form = {"user_count": "1", "spawn_rate": "1", "host": "", "total_rows": "3000000", "batch_rows": "10000",
            "shards": "1", "partitions": "4"}
    assert requests.post(server.url + "/swarm", data=form, timeout=300).json()["success"] is True
    [run_dir] = server.runs()
    # The periodic capture (--profile-every), then the Stop button: a clean end of the load.
    wait_for(lambda: any(e["type"] == HEAP_PROFILE and e["data"]["trigger"] == "every 10 s"
                         for e in _events(run_dir)), 120, "a periodic heap profile of the UI run")
    assert requests.post(server.url + "/stop", timeout=180).json()["success"] is True
    wait_for(lambda: (run_dir / "report.html").exists() and (run_dir / "summary.json").exists(), 300,
             "the UI run's report")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "PASS", summary["reasons"]

    labels = {c.label for c in store.captures(run_dir)}
    assert "end" in labels and any(label.startswith("t") for label in labels), labels
    # Every threshold the memory crossed during the load was captured, as in `run`.
    load_stopped = next(e["t"] for e in _events(run_dir) if e["type"] == "LoadStopped")
    peak = max(s["memory_bytes"] / s["limit_bytes"] for s in read_jsonl(run_dir / "samples.jsonl")
               if s["component"] == "standalone" and s["t"] < load_stopped and s.get("limit_bytes"))
    assert {str(p) for p in THRESHOLDS if 100 * peak >= p + 1} <= labels, (peak, labels)
    assert json.loads((run_dir / "run.json").read_text())["profile_every_s"] == 10.0
    assert not [e for e in _events(run_dir) if e["type"] == "WatchGap"]

    evidence, first = store.evidence(run_dir)
    assert evidence.label == "end"
    top = store.top_sites(run_dir, 5)
    assert top and sites.total_of(top) == evidence.profile().total() > 0
    page = (run_dir / "report.html").read_text()
    assert "Where the memory went" in page and 'id="allocation-sites"' in page
    assert html.escape(top[0].name) in page
    assert "Top allocation sites at the last heap profile" in (run_dir / "report.md").read_text()
