"""Soak (slow tier, not in CI): 30 minutes of load with a SIGKILL every 90 s.

    .venv/bin/pytest -m slow tests/slow/test_soak.py
    MILVUS_HARNESS_SOAK=5m .venv/bin/pytest -m slow tests/slow/test_soak.py   # shorter

The harness must not crash, every injected kill must be marked apart from OOM kills, every
restart during the load must be followed by a row check that counted (while the load was
held, none short), and at the end the harness's lost-row accounting must match a direct
count(*) of every acked batch's range on the server (tests/conftest.py: direct_count).
"""

from __future__ import annotations

import io
import os

import pytest
from rich.console import Console

from harness.judge.summary import acked_batches
from harness.rundir import read_jsonl
from harness.run.lifecycle import RunOptions, run
from harness.targets.protocol import TargetOptions
from harness.units import parse_duration

pytestmark = [pytest.mark.slow, pytest.mark.milvus]
GiB = 2**30


def test_soak_with_kills_every_90s(tmp_path, milvus_version, no_leftovers, direct_count):
    duration = parse_duration(os.environ.get("MILVUS_HARNESS_SOAK", "30m"), "MILVUS_HARNESS_SOAK")
    result = run(RunOptions(scenario="smoke", overrides={"total_rows": "20000000", "wait_s": "2"},
                            run_time=duration, inject=["kill-every=90s"], report_dir=tmp_path,
                            target=TargetOptions(milvus_version=milvus_version, memory_limit=12 * GiB,
                                                 restart_backoff=5.0, restart_backoff_max=20.0)),
                 console=Console(file=io.StringIO()))
    summary, run_dir = result.summary, result.run_dir
    assert summary["status"] == "FINISHED" and result.exit_code in (0, 1), summary["reasons"]
    comp = summary["components"]["standalone"]
    assert comp["injected_kills"] >= 1 and comp["oom_kills"] == 0
    # The end check against the server itself: a direct count(*) of every acked batch's range.
    acked = acked_batches(list(read_jsonl(run_dir / "acks.jsonl")))
    assert direct_count.per_batch is not None and len(direct_count.per_batch) == len(acked)
    assert summary["rows"]["acked"] == sum(a["rows"] for a in acked)
    present = direct_count.present()  # retried inserts may have been applied twice
    assert summary["rows"]["verified"] == sum(present)
    assert summary["rows"]["lost"] == sum(a["rows"] - n for a, n in zip(acked, present))
    assert summary["rows"].get("duplicated", 0) == sum(max(0, n - a["rows"]) for a, n in zip(acked, direct_count.per_batch))
    # Every restart that came back while the load ran was followed by a check that counted.
    events = list(read_jsonl(run_dir / "events.jsonl"))
    load_stopped = next(e["t"] for e in events if e["type"] == "LoadStopped")
    ready_again = [e for e in events if e["type"] == "Ready" and e["component"] == "standalone"
                   and e["t"] < load_stopped][1:]  # the first Ready is the start
    checks = [e for e in events if e["type"] == "RowsChecked"]
    assert len(checks) >= len(ready_again) >= 1
    assert all("missing" in c["data"] for c in checks), [c["detail"] for c in checks if "missing" not in c["data"]]
    assert all(c["data"]["missing"] == 0 for c in checks)
